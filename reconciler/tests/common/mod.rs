//! A throwaway faaso environment on the real Docker engine: its own network, name prefix and
//! label namespace, a funkos folder in a tempdir, and cleanup of everything it made on drop.

#![allow(dead_code)]

pub mod relay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use faaso_reconciler::{
    Backend, BasePolicy, DockerEngine, Instance, InstanceState, Namespace, Reconciler, Settings,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// One isolated environment.
pub struct Env {
    pub docker: Docker,
    pub namespace: Namespace,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh environment; fails loudly if the base images are missing.
    pub async fn new() -> Self {
        let docker = Docker::connect_with_defaults()
            .expect("a Docker engine must answer")
            .negotiate_version()
            .await
            .expect("a Docker engine must answer");
        assert!(
            docker
                .inspect_image("faaso-base/python:bookworm")
                .await
                .is_ok(),
            "faaso-base/python:bookworm is missing: run scripts/base-images first"
        );
        let id = format!(
            "t{:x}",
            std::process::id() as u64 * 1_000_003 + rand_suffix()
        );
        let namespace = Namespace {
            network: format!("{id}-net"),
            prefix: id.clone(),
            labels: id,
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("funkos")).unwrap();
        Self {
            docker,
            namespace,
            dir,
        }
    }

    pub fn funkos(&self) -> PathBuf {
        self.dir.path().join("funkos")
    }

    /// A python funko answering `body` at `/`, with extra funko.yml lines.
    pub fn python_funko(&self, name: &str, body: &str, extra_yml: &str) -> PathBuf {
        let dir = self.funkos().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("funko.yml"),
            format!("name: {name}\nruntime: python\n{extra_yml}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("handler.py"),
            format!("def handle(request):\n    return {body:?}\n"),
        )
        .unwrap();
        dir
    }

    /// A funko with its own Dockerfile.
    pub fn dockerfile_funko(&self, name: &str, dockerfile: &str, extra_yml: &str) -> PathBuf {
        let dir = self.funkos().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("funko.yml"), format!("name: {name}\n{extra_yml}")).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        dir
    }

    pub fn settings(&self) -> Settings {
        Settings {
            funkos_dir: self.funkos(),
            namespace: self.namespace.clone(),
            base_policy: BasePolicy::Local,
            secrets_dir: self.dir.path().join("state/secrets"),
            state_dir: Some(self.dir.path().join("state")),
            concurrency: 4,
        }
    }

    pub async fn reconciler(&self) -> Reconciler<DockerEngine> {
        Reconciler::new(self.engine().await, self.settings())
    }

    /// The Docker backend in this environment's namespace.
    pub async fn engine(&self) -> DockerEngine {
        DockerEngine::connect(self.namespace.clone()).await.unwrap()
    }

    /// A reconciler talking to the engine through the socket at `socket` (a relay, say).
    pub async fn reconciler_at(&self, socket: &Path) -> Reconciler<DockerEngine> {
        let engine = DockerEngine::connect_at(socket, self.namespace.clone());
        Reconciler::new(engine.await.unwrap(), self.settings())
    }

    /// Every container of this environment (managed or named with its prefix).
    pub async fn instances(&self) -> Vec<Instance> {
        self.engine().await.observe().await.unwrap().instances
    }

    /// Every container of `funko`, whatever its state.
    pub async fn instances_of(&self, funko: &str) -> Vec<Instance> {
        self.instances()
            .await
            .into_iter()
            .filter(|i| i.funko == funko)
            .collect()
    }

    /// The running managed instances of `funko`.
    pub async fn running(&self, funko: &str) -> Vec<Instance> {
        self.instances_of(funko)
            .await
            .into_iter()
            .filter(|i| i.managed && i.state == InstanceState::Running)
            .collect()
    }

    /// Waits until `check` holds, or panics after `limit`.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !check().await {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cleanup(docker: Docker, namespace: Namespace) {
        let filters = HashMap::from([("label", vec![namespace.managed_filter()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let mut ids: Vec<String> = docker
            .list_containers(Some(options))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        let named = HashMap::from([("name", vec![format!("{}-", namespace.prefix)])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&named)
            .build();
        ids.extend(
            docker
                .list_containers(Some(options))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    c.names.iter().flatten().any(|n| {
                        n.trim_start_matches('/')
                            .starts_with(&format!("{}-", namespace.prefix))
                    })
                })
                .filter_map(|c| c.id),
        );
        for id in ids {
            let options = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
        let _ = docker.remove_network(&namespace.network).await;
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        for image in docker.list_images(Some(options)).await.unwrap_or_default() {
            let options = RemoveImageOptionsBuilder::new().force(true).build();
            let _ = docker.remove_image(&image.id, Some(options), None).await;
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let namespace = self.namespace.clone();
        // Drop may run inside a runtime (end of a test) or during a panic; clean up on a thread
        // of its own so neither blocks the other.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Env::cleanup(docker, namespace));
        })
        .join();
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) % 1_000_000
}

/// Watch mode running in the background until [`Watching::stop`].
pub struct Watching {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Watching {
    /// Starts `faaso_reconciler::watch` on its own task.
    pub fn start(
        mut reconciler: Reconciler<DockerEngine>,
        timing: faaso_reconciler::WatchTiming,
    ) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                faaso_reconciler::watch(
                    &mut reconciler,
                    std::sync::Arc::new(faaso_reconciler::Quiet),
                    timing,
                    Default::default(),
                    stop,
                )
                .await
                .unwrap();
            })
        };
        Self { stop, task }
    }

    /// Stops watching and waits for the loop to end.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

impl Env {
    /// Whether a running instance of `funko` other than `not` answers `/` with 200 and `body`.
    pub async fn serves(&self, funko: &str, body: &str, not: Option<&str>) -> bool {
        for instance in self.running(funko).await {
            if Some(instance.id.as_str()) != not {
                return get(&instance, "/").await == Some((200, body.to_owned()));
            }
        }
        false
    }
}

/// `GET path` on an instance: the status and body, or `None` when it does not answer.
pub async fn get(instance: &Instance, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::new(instance.ip?, faaso_reconciler::FUNKO_PORT);
    let stream = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "test")
        .body(Empty::new())
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Writes a file, creating its folder.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
