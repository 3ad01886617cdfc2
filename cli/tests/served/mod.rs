//! A real `faaso server` for end-to-end tests: its own name prefix, label namespace and network,
//! its funkos and state folders in a tempdir, a loopback port and a token. Dropping it stops the
//! server (SIGTERM by pid, then SIGKILL) and removes every container, network and image that
//! carries its labels, even after a failed assertion.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::common::{Run, repo_root};

/// One running `faaso server` and everything it owns.
pub struct Served {
    /// The prefix and label namespace of everything it creates.
    pub id: String,
    /// The admin token.
    pub token: String,
    /// The port it serves funkos on, on 127.0.0.1.
    pub port: u16,
    /// The port of its admin API and web UI, on 127.0.0.1.
    pub admin_port: u16,
    /// Scratch space: `funkos/`, `state/`, `config/` (the CLI's XDG_CONFIG_HOME), `server.log`.
    pub tmp: tempfile::TempDir,
    /// The engine, for checks.
    pub docker: Docker,
    child: Child,
}

impl Served {
    /// Starts a server on an empty funkos folder.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server whose funkos folder holds copies of the repository's example funkos
    /// `examples`, and waits until its admin API answers.
    pub async fn start_with(examples: &[&str]) -> Self {
        Self::start_with_env(examples, &[]).await
    }

    /// Like [`Served::start_with`], with `env` added to the server's environment (for example
    /// `DOCKER_HOST` pointing at a relay).
    pub async fn start_with_env(examples: &[&str], env: &[(&str, &str)]) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!(
            "rt{:x}{:x}{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let docker = Docker::connect_with_defaults()
            .expect("DOCKER_HOST should be usable")
            .negotiate_version()
            .await
            .expect("these tests need a running Docker engine");
        for image in ["faaso-base/python:bookworm", "faaso-base/node:bookworm"] {
            assert!(
                docker.inspect_image(image).await.is_ok(),
                "base image {image} is missing: run scripts/base-images first (it builds every base image offline)"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let funkos = tmp.path().join("funkos");
        std::fs::create_dir_all(&funkos).unwrap();
        for example in examples {
            copy_dir(
                &repo_root().join("funkos").join(example),
                &funkos.join(example),
            );
        }
        let token = format!("token-{id}-0123456789abcdef");
        let port = free_port();
        let admin_port = free_port();
        let child = spawn(&id, &token, (port, admin_port), tmp.path(), env);
        let mut served = Self {
            id,
            token,
            port,
            admin_port,
            tmp,
            docker,
            child,
        };
        served.wait_until_listening().await;
        served
    }

    /// SIGKILLs the server (no chance to clean up) and starts a new one on the same funkos,
    /// state, port and namespace, then waits until it answers.
    pub async fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let ports = (self.port, self.admin_port);
        self.child = spawn(&self.id, &self.token, ports, self.tmp.path(), &[]);
        self.wait_until_listening().await;
    }

    async fn wait_until_listening(&mut self) {
        let started = Instant::now();
        let client = http();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("faaso server exited with {status}\n{}", self.log());
            }
            let answer = client
                .get(self.admin_url("/admin/funkos"))
                .bearer_auth(&self.token)
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "faaso server did not answer within 60 s\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `path` on the server's funko listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The admin listener's base URL (what `faaso login` takes).
    pub fn admin_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// `path` on the server's admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin_base())
    }

    /// The funkos folder the server watches.
    pub fn funkos(&self) -> PathBuf {
        self.tmp.path().join("funkos")
    }

    /// The CLI's config folder (XDG_CONFIG_HOME).
    pub fn config_home(&self) -> PathBuf {
        self.tmp.path().join("config")
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default();
        let start = text.len().saturating_sub(8000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        format!("--- server log (tail)\n{}", &text[start..])
    }

    /// Runs the `faaso` CLI as a user of this server would: config in this server's
    /// XDG_CONFIG_HOME, no `FAASO_*` from the caller, `env` added, `stdin` fed in.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_faaso"));
        clear_faaso_env(&mut command);
        let mut child = command
            .args(args)
            .env("XDG_CONFIG_HOME", self.config_home())
            .envs(env.iter().copied())
            .current_dir(self.tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the faaso binary should start");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `GET /admin/funkos` with the token.
    pub async fn board(&self) -> serde_json::Value {
        http()
            .get(self.admin_url("/admin/funkos"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The funko's entry on the board, if any.
    pub async fn status(&self, funko: &str) -> Option<serde_json::Value> {
        let board = self.board().await;
        board["funkos"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == funko)
            .cloned()
    }

    /// The running managed containers of `funko`.
    pub async fn running(&self, funko: &str) -> Vec<ContainerSummary> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{}.managed=true", self.id),
                format!("{}.funko={funko}", self.id),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        self.docker.list_containers(Some(options)).await.unwrap()
    }

    /// Waits until `check` holds, or panics after `limit` with the server's log.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        while !check().await {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for: {what}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SIGTERM to this server's pid only, then SIGKILL if it lingers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        crate::common::cleanup::remove_namespace(&self.id);
    }
}

/// An HTTP client for plain-http loopback calls.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `faaso server` on `<tmp>/funkos` in namespace `id`, funkos and admin on `ports`,
/// logging to `<tmp>/server.log`.
fn spawn(id: &str, token: &str, ports: (u16, u16), tmp: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(tmp.join("server.log"))
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_faaso"));
    clear_faaso_env(&mut command);
    command
        .args(["server", "--listen", &format!("127.0.0.1:{}", ports.0)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", ports.1)])
        .arg(tmp.join("funkos"))
        .env("FAASO_PREFIX", id)
        .env("FAASO_LABELS", id)
        .env("FAASO_NETWORK", format!("{id}-net"))
        .env("FAASO_STATE_DIR", tmp.join("state"))
        .env("FAASO_BASE_IMAGES", "local")
        .env("FAASO_TOKEN", token)
        .env("XDG_CONFIG_HOME", tmp.join("config"))
        .envs(env.iter().copied())
        .current_dir(tmp)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("faaso server should start")
}

fn clear_faaso_env(command: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("FAASO_") {
            command.env_remove(key);
        }
    }
}

/// Copies a folder tree (regular files and folders).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
