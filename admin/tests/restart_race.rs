//! A restart through the admin API that races the instance's removal (a scale-down, a rollout,
//! the funko's removal) on the real engine: the API finds the instance, the engine removes it,
//! then the restart reaches the engine. The answer is the documented 409 that says what is
//! happening, never a 5xx. Needs a Docker engine and the base image `faaso-base/python`
//! (`scripts/base-images`).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use faaso_admin::{AdminState, Engine, SecretStore, StatusBoard, Token, UploadLimits};
use faaso_reconciler::{
    DockerEngine, EngineError, InstanceDetails, InstanceLog, LogOptions, Namespace,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef0123";

/// The real engine, except that the instance is removed just before its restart reaches it.
struct RemovedBeforeRestart(DockerEngine);

impl Engine for RemovedBeforeRestart {
    fn inspect<'a>(
        &'a self,
        funko: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceDetails>, EngineError>> {
        Engine::inspect(&self.0, funko)
    }

    fn restart<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            docker(&["rm", "-f", id]);
            Engine::restart(&self.0, id).await
        }
        .boxed()
    }

    fn logs<'a>(
        &'a self,
        funko: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<Vec<InstanceLog>, EngineError>> {
        Engine::logs(&self.0, funko, options)
    }
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes the test's container even after a failed assertion.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

#[tokio::test]
async fn a_restart_racing_the_instances_removal_answers_409_saying_so() {
    let id = format!("restart-race-{}", std::process::id());
    let ns = Namespace {
        network: format!("{id}-net"),
        prefix: id.clone(),
        labels: id.clone(),
    };
    let name = format!("{id}-hello-1");
    let _remove = Remove(name.clone());
    let managed = format!("{}=true", ns.label("managed"));
    let funko = format!("{}=hello", ns.label("funko"));
    let instance = format!("{}=1", ns.label("instance"));
    let created = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &managed,
        "--label",
        &funko,
        "--label",
        &instance,
        "faaso-base/python:bookworm",
        "sleep",
        "300",
    ]);
    assert!(!created.is_empty(), "the instance container did not start");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("funkos/hello")).unwrap();
    let engine = DockerEngine::connect(ns.clone()).await.unwrap();
    let admin = AdminState {
        funkos_dir: dir.path().join("funkos"),
        secrets: SecretStore::new(dir.path().join("secrets")),
        token: Token::new(TOKEN).unwrap(),
        board: StatusBoard::default(),
        trigger: tokio::sync::mpsc::unbounded_channel().0,
        engine: Arc::new(RemovedBeforeRestart(engine.clone())),
        builder: engine,
        traffic: faaso_admin::Traffic::none(),
        namespace: ns,
        limits: UploadLimits::default(),
        base_policy: faaso_reconciler::BasePolicy::Local,
        backend: "docker",
    };
    let app = faaso_admin::router(Arc::new(admin));
    let request = Request::post(format!("/admin/funkos/hello/instances/{name}/restart"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(60), app.oneshot(request))
        .await
        .expect("an answer within 60 s")
        .unwrap();
    let status = answer.status();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("is being removed"), "{error}");
    assert!(error.contains(&name), "{error}");

    // Documented as such.
    let spec: serde_json::Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
    let responses =
        &spec["paths"]["/admin/funkos/{name}/instances/{instance}/restart"]["post"]["responses"];
    assert!(responses["409"].is_object(), "409 is not documented");
}
