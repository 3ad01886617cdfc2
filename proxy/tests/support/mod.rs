//! Real containers and a real proxy for the end-to-end tests.
//!
//! Each [`Lab`] has its own network, image tag and label; dropping it removes every container,
//! the network and the image it made, also when the test failed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use faaso_proxy::{HealthChecker, ProbeConfig, Proxy, ProxyConfig, Routes};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Any error a test body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type the test client sends.
pub type TestBody = BoxBody<Bytes, BoxError>;

/// Runs `docker` and returns its trimmed stdout; panics with stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("running docker");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The test backend, built once per test process as a static executable.
pub fn backend_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target_dir = workspace.join("target/backend");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&workspace)
            .args([
                "build",
                "--release",
                "-p",
                "faaso-proxy",
                "--example",
                "backend",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .status()
            .expect("running cargo to build the test backend");
        assert!(status.success(), "building the test backend failed");
        target_dir.join("x86_64-unknown-linux-gnu/release/examples/backend")
    })
}

/// One running backend container.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The container id.
    pub id: String,
    /// Its address on the lab network, port 3000.
    pub addr: SocketAddr,
}

/// A test's own Docker network, image and containers.
pub struct Lab {
    tag: String,
    pub network: String,
    pub image: String,
}

impl Lab {
    /// Makes the network and the backend image for one test.
    pub fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "faaso-ptest-{}-{}-{}",
            test,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Self {
            network: tag.clone(),
            image: format!("{tag}:latest"),
            tag,
        };
        let label = lab.label();
        docker(&["network", "create", "--label", &label, &lab.network]);
        let context = std::env::temp_dir().join(&lab.tag);
        std::fs::create_dir_all(&context).expect("creating the build context");
        std::fs::copy(backend_binary(), context.join("backend")).expect("copying the backend");
        std::fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nCOPY backend /backend\nENTRYPOINT [\"/backend\"]\n",
        )
        .expect("writing the Dockerfile");
        let built = std::panic::catch_unwind(|| {
            docker(&[
                "build",
                "-q",
                "--label",
                &label,
                "-t",
                &lab.image,
                context.to_str().expect("utf-8 temp dir"),
            ])
        });
        let _ = std::fs::remove_dir_all(&context);
        if let Err(panic) = built {
            std::panic::resume_unwind(panic);
        }
        lab
    }

    fn label(&self) -> String {
        format!("faaso-test={}", self.tag)
    }

    /// Starts a backend named `instance` with extra environment, and waits for its address.
    pub fn start(&self, instance: &str, env: &[(&str, &str)]) -> Backend {
        let name = format!("{}-{instance}", self.tag);
        let instance_env = format!("INSTANCE={instance}");
        let label = self.label();
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.network,
            "--label",
            &label,
            "-e",
            &instance_env,
        ];
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        args.push(&self.image);
        let id = docker(&args);
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network
        );
        let ip: IpAddr = docker(&["inspect", "-f", &format, &id])
            .parse()
            .expect("container IP");
        Backend {
            id,
            addr: SocketAddr::new(ip, 3000),
        }
    }

    /// Kills a backend at once (SIGKILL), as a crash would.
    pub fn kill(&self, backend: &Backend) {
        docker(&["kill", &backend.id]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label());
        let ids = docker(&["ps", "-aq", "--filter", &filter]);
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// A proxy served in this process, with the handles a feeder uses.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub routes: Routes,
    pub health: HealthChecker,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningProxy {
    /// Binds on 127.0.0.1 with `config` (its `listen` is overridden) and starts serving.
    pub async fn start(mut config: ProxyConfig) -> Self {
        // RUST_LOG=faaso_proxy=debug shows what the proxy did in a failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let routes = Routes::new();
        let health = HealthChecker::new(routes.clone(), ProbeConfig::default());
        let proxy = Proxy::bind(config, routes.clone())
            .await
            .expect("binding the proxy");
        let addr = proxy.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            proxy
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serving");
        });
        Self {
            addr,
            routes,
            health,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a graceful shutdown; the returned handle finishes when the proxy has stopped.
    pub fn shutdown(&mut self) -> JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("shut down once")
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until `funko` has `n` ready instances.
    pub async fn wait_ready(&self, funko: &str, n: usize) {
        self.wait_instances(funko, |count| count == n, &format!("{n}"))
            .await;
    }

    /// Waits until `funko` has at least `n` ready instances.
    pub async fn wait_ready_at_least(&self, funko: &str, n: usize) {
        self.wait_instances(funko, |count| count >= n, &format!("at least {n}"))
            .await;
    }

    async fn wait_instances(&self, funko: &str, enough: impl Fn(usize) -> bool, what: &str) {
        for _ in 0..500 {
            if self
                .routes
                .load()
                .get(funko)
                .is_some_and(|r| enough(r.instances().len()))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("funko {funko} never had {what} ready instances");
    }
}

/// A plain HTTP/1.1 client that keeps connections alive.
pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An empty request body.
pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Sends `req` and reads the whole answer.
pub async fn send(req: Request<TestBody>) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let response: Response<_> = client().request(req).await.expect("request");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    (parts.status, parts.headers, body)
}

/// `GET url`, the whole answer.
pub async fn get(url: &str) -> (StatusCode, hyper::HeaderMap, Bytes) {
    send(Request::get(url).body(empty()).expect("request")).await
}

/// The JSON in a body.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}
