//! `faaso server` end to end: a real server process, the real engine, real HTTP through the
//! proxy. Planned changes under load (a redeploy, a scale-down) must fail no request.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "server-test-token-0123456789";

/// A `faaso server` process with its own namespace, killed and cleaned up on drop.
struct Server {
    child: Mutex<Child>,
    id: String,
    port: u16,
    admin_port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let id = format!(
            "srv{:x}",
            std::process::id() as u64 * 7919 + nanos() % 100_000
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("funkos")).unwrap();
        let free_port = common::process::free_port;
        let (port, admin_port) = (free_port(), free_port());
        let child = Self::spawn(&id, (port, admin_port), dir.path());
        Self {
            child: Mutex::new(child),
            id,
            port,
            admin_port,
            dir,
        }
    }

    /// SIGKILLs the server (no chance to clean up) and starts a new one on the same state.
    fn kill_and_restart(&self) {
        let mut child = self.child.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        *child = Self::spawn(&self.id, (self.port, self.admin_port), self.dir.path());
    }

    /// Starts the server with its funkos on `ports.0` and its admin on `ports.1`.
    fn spawn(id: &str, ports: (u16, u16), dir: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_faaso"))
            .args([
                "server",
                "funkos",
                "--listen",
                &format!("127.0.0.1:{}", ports.0),
            ])
            .args(["--admin-listen", &format!("127.0.0.1:{}", ports.1)])
            .current_dir(dir)
            .env("FAASO_PREFIX", id)
            .env("FAASO_LABELS", id)
            .env("FAASO_NETWORK", format!("{id}-net"))
            .env("FAASO_STATE_DIR", dir.join("state"))
            .env("FAASO_BASE_IMAGES", "local")
            .env("FAASO_TOKEN", TOKEN)
            .env("FAASO_NO_ACCESS_LOG", "true")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("faaso server starts")
    }

    /// This server's instances (not build containers), as `<funko> <config hash> <state>`.
    fn containers(&self) -> Vec<String> {
        let id = &self.id;
        let format = format!(
            "{{{{.Label \"{id}.funko\"}}}} {{{{.Label \"{id}.config-hash\"}}}} {{{{.State}}}}"
        );
        let output = Command::new("docker")
            .args(["ps", "-a", "--filter", &format!("label={id}.instance")])
            .args(["--format", &format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// This server's images, as `repo:tag`.
    fn images(&self) -> Vec<String> {
        let output = Command::new("docker")
            .args([
                "images",
                "--filter",
                &format!("label={}.managed=true", self.id),
            ])
            .args(["--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn funkos(&self) -> PathBuf {
        self.dir.path().join("funkos")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn python_funko(&self, name: &str, body: &str, scale: u32) {
        python_funko(&self.funkos(), name, body, scale);
    }

    /// GET through the proxy: the status and body.
    async fn get(&self, client: &reqwest::Client, path: &str) -> Option<(u16, String)> {
        let response = client.get(self.url(path)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn wait_for(&self, what: &str, limit: Duration, check: impl AsyncFn() -> bool) {
        let start = Instant::now();
        while !check().await {
            let exited = self.child.lock().unwrap().try_wait().ok().flatten();
            assert!(
                exited.is_none(),
                "faaso server exited ({exited:?})\n--- server log\n{}",
                self.log()
            );
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}\n--- server log\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The admin view of one funko.
    async fn status(&self, client: &reqwest::Client, funko: &str) -> serde_json::Value {
        let response = client
            .get(self.admin_url(&format!("/admin/funkos/{funko}")))
            .bearer_auth(TOKEN)
            .send()
            .await;
        match response {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        drop(Cleanup(self.id.clone()));
    }
}

/// reqwest is built without a default TLS crypto provider; plain HTTP still needs one chosen.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// Writes a Python funko answering `body` into `funkos`.
fn python_funko(funkos: &Path, name: &str, body: &str, scale: u32) {
    let dir = funkos.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_atomically(
        &dir.join("handler.py"),
        &format!("def handle(request):\n    return {body:?}\n"),
    );
    write_atomically(
        &dir.join("funko.yml"),
        &format!("name: {name}\nruntime: python\nscale: {scale}\n"),
    );
}

/// Writes via a rename, as an editor or `git pull` would: the watcher never sees half a file.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Sends `rate` requests per second to `path` until stopped; tallies every answer.
struct Load {
    tally: Arc<Mutex<BTreeMap<String, u32>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(url: String, rate: u32) -> Self {
        let tally = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = {
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(async move {
                let client = client();
                let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
                let mut inflight = tokio::task::JoinSet::new();
                while !stop.is_cancelled() {
                    tick.tick().await;
                    let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
                    inflight.spawn(async move {
                        let outcome = match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                format!("200 {}", r.text().await.unwrap_or_default())
                            }
                            Ok(r) => format!(
                                "{} {}",
                                r.status().as_u16(),
                                r.text().await.unwrap_or_default()
                            ),
                            Err(e) => format!("error {e}"),
                        };
                        *tally.lock().unwrap().entry(outcome).or_default() += 1;
                    });
                }
                while inflight.join_next().await.is_some() {}
            })
        };
        Self { tally, stop, task }
    }

    async fn finish(self) -> BTreeMap<String, u32> {
        self.stop.cancel();
        self.task.await.unwrap();
        Arc::try_unwrap(self.tally).unwrap().into_inner().unwrap()
    }
}

fn failures(tally: &BTreeMap<String, u32>) -> u32 {
    tally
        .iter()
        .filter(|(k, _)| !k.starts_with("200 "))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_and_scale_down_under_load_fail_no_request() {
    let server = Server::start();
    let client = client();
    server.python_funko("steady", "v1", 2);
    server
        .wait_for(
            "v1 to serve through the proxy",
            Duration::from_secs(120),
            async || server.get(&client, "/funko/steady/").await == Some((200, "v1".into())),
        )
        .await;
    server
        .wait_for(
            "both instances ready",
            Duration::from_secs(60),
            async || server.status(&client, "steady").await["ready"] == 2,
        )
        .await;

    // Redeploy with changed code while 100 requests/s flow.
    let load = Load::start(server.url("/funko/steady/"), 100);
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.python_funko("steady", "v2", 2);
    server
        .wait_for("the rollout to v2", Duration::from_secs(120), async || {
            let s = server.status(&client, "steady").await;
            s["ready"] == 2
                && s["outdated"] == 0
                && server.get(&client, "/funko/steady/").await == Some((200, "v2".into()))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tally = load.finish().await;
    assert_eq!(
        failures(&tally),
        0,
        "requests failed during the redeploy: {tally:?}\n{}",
        server.log()
    );
    assert!(
        tally.contains_key("200 v1") && tally.contains_key("200 v2"),
        "{tally:?}"
    );
    let total: u32 = tally.values().sum();
    assert!(total > 500, "the load ran: {tally:?}");

    // Scale down under load.
    let load = Load::start(server.url("/funko/steady/"), 100);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scaled = client
        .post(server.admin_url("/admin/funkos/steady/scale"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"scale": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(scaled.status(), 202);
    server
        .wait_for("the scale-down", Duration::from_secs(60), async || {
            let s = server.status(&client, "steady").await;
            s["ready"] == 1 && s["desired"] == 1
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tally = load.finish().await;
    assert_eq!(
        failures(&tally),
        0,
        "requests failed during the scale-down: {tally:?}\n{}",
        server.log()
    );
}

/// GitOps from CI on one host: `faaso reconcile --once` rolls changed code out while a
/// standalone `faaso proxy` routes what Docker runs, with no word between the two: the proxy
/// learns of the old instances' end from their refused connects and the engine's events.
#[tokio::test(flavor = "multi_thread")]
async fn rollouts_by_reconcile_once_behind_a_standalone_proxy_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let funkos = dir.path().join("funkos");
    let port = common::process::free_port();
    let listen = format!("127.0.0.1:{port}");
    let quiet = [("FAASO_NO_ACCESS_LOG", "true")];
    let proxy =
        common::process::Running::start(dir.path(), &["proxy", "--listen", &listen], &quiet);
    let local_base_images = [("FAASO_BASE_IMAGES", "local")];
    let reconcile = || proxy.faaso(&["reconcile", "--once", "funkos"], &local_base_images);
    python_funko(&funkos, "gitops", "v1", 3);
    reconcile().success();
    let (client, url) = (client(), format!("http://{listen}/funko/gitops/"));
    let started = Instant::now();
    loop {
        let answer = match client.get(&url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if answer == "v1" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the proxy never routed v1\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ~20 requests a second, as the Swarm backend's rollout test sends.
    let load = Load::start(url, 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for version in ["v2", "v3"] {
        python_funko(&funkos, "gitops", version, 3);
        reconcile().success();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let tally = load.finish().await;
    assert_eq!(
        failures(&tally),
        0,
        "requests failed during the rollouts: {tally:?}\n{}",
        proxy.log()
    );
    for version in ["v1", "v2", "v3"] {
        assert!(tally.contains_key(&format!("200 {version}")), "{tally:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_funkos_404_and_scale_zero_funkos_503_with_retry_after() {
    let server = Server::start();
    let client = client();
    server.python_funko("sleepy", "zzz", 0);
    server
        .wait_for("the first pass", Duration::from_secs(60), async || {
            server.status(&client, "sleepy").await["desired"] == 0
        })
        .await;
    let unknown = client
        .get(server.url("/funko/nobody/"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let idle = client
        .get(server.url("/funko/sleepy/"))
        .send()
        .await
        .unwrap();
    assert_eq!(idle.status(), 503);
    assert!(idle.headers().contains_key("retry-after"));
    let body: serde_json::Value = idle.json().await.unwrap();
    assert!(body["error"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_rollout_converges_after_restart_without_leaks() {
    let server = Server::start();
    let client = client();
    server.python_funko("phoenix", "v1", 2);
    server
        .wait_for("v1 ready", Duration::from_secs(120), async || {
            server.status(&client, "phoenix").await["ready"] == 2
        })
        .await;
    server.python_funko("phoenix", "v2", 2);
    // Kill it the moment the rollout has started a v2 instance beside the two v1 ones.
    server
        .wait_for(
            "the rollout to start",
            Duration::from_secs(120),
            async || server.containers().len() > 2,
        )
        .await;
    server.kill_and_restart();
    server
        .wait_for(
            "convergence after the restart",
            Duration::from_secs(120),
            async || {
                let s = server.status(&client, "phoenix").await;
                s["ready"] == 2 && s["outdated"] == 0
            },
        )
        .await;
    let containers = server.containers();
    assert_eq!(
        containers.len(),
        2,
        "no duplicates, nothing leaked: {containers:?}"
    );
    assert!(
        containers.iter().all(|c| c.ends_with(" running")),
        "{containers:?}"
    );
    let hashes: std::collections::BTreeSet<_> = containers
        .iter()
        .map(|c| c.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        hashes.len(),
        1,
        "every instance runs the same (new) config: {containers:?}"
    );
    assert_eq!(
        server.get(&client, "/funko/phoenix/").await,
        Some((200, "v2".into()))
    );
    let images = server.images();
    assert!(
        images.len() <= 2,
        "only the current and previous images: {images:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_up_serves_from_its_container_and_down_removes_it() {
    let id = format!("sup{:x}", nanos() % 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let funko = dir.path().join("funkos/up-hello");
    std::fs::create_dir_all(&funko).unwrap();
    std::fs::write(funko.join("funko.yml"), "name: up-hello\nruntime: python\n").unwrap();
    std::fs::write(
        funko.join("handler.py"),
        "def handle(request):\n    return 'from the container'\n",
    )
    .unwrap();
    // The example that reads its secret file.
    let example = common::repo_root().join("funkos/config-python");
    let config = dir.path().join("funkos/config-python");
    std::fs::create_dir_all(&config).unwrap();
    for file in ["funko.yml", "handler.py"] {
        std::fs::copy(example.join(file), config.join(file)).unwrap();
    }
    let free_port = common::process::free_port;
    let (port, admin_port) = (free_port(), free_port());
    let faaso = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_faaso"))
            .args(args)
            .current_dir(dir.path())
            .env("FAASO_PREFIX", &id)
            .env("FAASO_LABELS", &id)
            .env("FAASO_NETWORK", format!("{id}-net"))
            .env("FAASO_STATE_DIR", dir.path().join("state"))
            .env("FAASO_BASE_IMAGES", "local")
            .output()
            .unwrap()
    };
    let cleanup = Cleanup(id.clone());
    let up = faaso(&[
        "server",
        "funkos",
        "--token",
        TOKEN,
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
        "up",
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let client = client();
    let url = format!("http://127.0.0.1:{port}/funko/up-hello/");
    let start = Instant::now();
    loop {
        let answer = client
            .get(&url)
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200);
        if let Some(answer) = answer {
            assert_eq!(answer.text().await.unwrap(), "from the container");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the containerised server never served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The admin is published on its own (loopback) port, and not on the funkos' one.
    let admin = client
        .get(format!("http://127.0.0.1:{admin_port}/admin/funkos"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    let not_here = client
        .get(format!("http://127.0.0.1:{port}/admin/funkos"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(not_here.status(), 404);

    // A secret set through the containerised server's admin API is handed to the funko's uid
    // and read back for its version, so the funko reads it through the proxy.
    let secret = "s3cr3t-from-server-up";
    let set = client
        .put(format!(
            "http://127.0.0.1:{admin_port}/admin/secrets/config-python/api-key"
        ))
        .bearer_auth(TOKEN)
        .body(secret)
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.status());
    let url = format!("http://127.0.0.1:{port}/funko/config-python/");
    let start = Instant::now();
    loop {
        let answer = match client.get(&url).send().await {
            Ok(answer) if answer.status() == 200 => answer.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if answer.contains(&format!("api-key: {secret}")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the funko never read its secret; last answer: {answer:?}\n{}",
            String::from_utf8_lossy(
                &Command::new("docker")
                    .args(["logs", "--tail", "30", &format!("{id}-proxy")])
                    .output()
                    .unwrap()
                    .stderr
            )
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let token_file = dir.path().join("state/token");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        TOKEN,
        "the token sits in the state folder"
    );
    let inspect = Command::new("docker")
        .args(["inspect", &format!("{id}-proxy")])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&inspect.stdout).contains(TOKEN),
        "the token is not in docker inspect"
    );
    let down = faaso(&["server", "funkos", "down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        client.get(&url).send().await.is_err(),
        "nothing listens after down"
    );
    drop(cleanup);
}

/// Removes what a test's namespace created: containers, images, network.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::cleanup::remove_namespace(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_funkos_cors_block_is_applied_by_the_proxy_and_a_change_of_it_rolls_out() {
    let server = Server::start();
    let client = client();
    let dir = server.funkos().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    write_atomically(
        &dir.join("handler.py"),
        "def handle(request):\n    return 'shared'\n",
    );
    let spec = |origin: &str| {
        format!(
            "name: shared\nruntime: python\ncors:\n  origins: [\"{origin}\"]\n  methods: [GET, PUT]\n  headers: [Content-Type]\n  max_age: 10m\n"
        )
    };
    write_atomically(&dir.join("funko.yml"), &spec("https://app.example"));
    let preflight = async |origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, server.url("/funko/shared/"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .send()
            .await
            .ok()
    };
    let allowed = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    server
        .wait_for("the funko to serve", Duration::from_secs(120), async || {
            server.get(&client, "/funko/shared/").await == Some((200, "shared".into()))
        })
        .await;
    let answer = preflight("https://app.example").await.unwrap();
    assert_eq!(answer.status(), 204);
    assert_eq!(allowed(&answer).as_deref(), Some("https://app.example"));
    assert_eq!(answer.headers()["access-control-allow-methods"], "GET, PUT");
    assert_eq!(answer.headers()["access-control-max-age"], "600");
    let answer = preflight("https://evil.example").await.unwrap();
    assert_eq!(allowed(&answer), None);
    let get = client
        .get(server.url("/funko/shared/"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(allowed(&get).as_deref(), Some("https://app.example"));

    // Another origin in funko.yml: the instance is replaced, and the proxy follows.
    write_atomically(&dir.join("funko.yml"), &spec("https://new.example"));
    server
        .wait_for(
            "the new CORS policy",
            Duration::from_secs(120),
            async || match preflight("https://new.example").await {
                Some(answer) => allowed(&answer).as_deref() == Some("https://new.example"),
                None => false,
            },
        )
        .await;
    let answer = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed(&answer),
        None,
        "the old origin is no longer allowed"
    );
}
