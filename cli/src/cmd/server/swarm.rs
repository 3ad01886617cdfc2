//! `faaso server --backend swarm`: the control plane of a Swarm. It reconciles the funkos folder
//! onto the Swarm (a `Reconciler<SwarmEngine>` watching, as on one engine) and serves the admin
//! API on its own listener (`--admin-listen`, as on one engine). The data plane is the global proxy service (`faaso proxy up --backend swarm`) on port
//! 8888 of every node: the funkos' tasks sit on an overlay network that a process outside the
//! Swarm's containers cannot reach, so this server routes no funko and answers `/funko/…` with
//! 421 and where to send it instead.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use faaso_admin::{StatusBoard, Traffic};
use faaso_reconciler::{Listener, PassReport, StepInfo, Triggers, WatchTiming};
use tokio_util::sync::CancellationToken;

use super::{ServerArgs, admin_state, log_step, proxy_config, serve_until_signal};
use crate::cmd::Global;

/// Why a funko request reached the wrong place, and where it belongs.
const ELSEWHERE: &str = "this faaso server runs a Docker Swarm and routes no funko: send \
                         `/funko/…` requests to port 8888 of any Swarm node (the proxy service, \
                         `faaso proxy up --backend swarm`)";

/// Runs until SIGINT or SIGTERM; the services keep running after it stops.
pub async fn run(global: &Global, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let mut reconciler = crate::backend::swarm_reconciler(global, &args.funkos.dir).await?;
    let board = StatusBoard::with_progress({
        let in_flight = reconciler.in_flight();
        Arc::new(move |funko: &str| in_flight.get(funko))
    });
    let triggers = Triggers::new();
    let engine = reconciler.backend();
    let admin = admin_state(
        global,
        &args,
        &board,
        &triggers,
        Arc::new(engine.clone()),
        engine.builder().clone(),
        Traffic::none(),
    )?;
    // Everything is answered here: the proxy in front only brings TLS and its limits. The
    // admin has its own listener; this one only points funko requests elsewhere.
    let front = axum::Router::new()
        .route("/funko", any(elsewhere))
        .route("/funko/{*rest}", any(elsewhere))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(|| async { answer(StatusCode::NOT_FOUND, "no such path") });
    let config = proxy_config(global, &args)?;
    let proxy = crate::cmd::proxy::bind(config, faaso_proxy::Routes::new())
        .await?
        .with_local("/", front)
        .with_admin(faaso_admin::router(admin))?;
    let listener = BoardListener { board };
    let stop = CancellationToken::new();
    let reconciling = faaso_reconciler::watch(
        &mut reconciler,
        Arc::new(listener),
        WatchTiming::default(),
        triggers,
        stop.clone(),
    );
    serve_until_signal(proxy, reconciling, stop, "the funko services").await?;
    Ok(ExitCode::SUCCESS)
}

async fn elsewhere() -> axum::response::Response {
    answer(StatusCode::MISDIRECTED_REQUEST, ELSEWHERE)
}

/// An error answer with faaso's JSON body.
fn answer(status: StatusCode, error: &str) -> axum::response::Response {
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

/// Keeps the admin board in step with the reconciler; Swarm routes and rolls the tasks itself.
struct BoardListener {
    board: StatusBoard,
}

impl<S: StepInfo> Listener<S> for BoardListener {
    fn step_finished(&self, step: &S, error: Option<&str>) {
        log_step(step, error);
    }

    fn pass_finished(&self, report: &PassReport<S>) {
        self.board
            .pass_finished(report.funkos.clone(), report.plan.len());
    }
}
