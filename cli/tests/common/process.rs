//! A `faaso` process (or any other) that a test starts: its own namespace, its output in a
//! file, stopped by pid when dropped.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Writes `text` to `path` by renaming a finished file in, as certbot and friends do.
pub fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique prefix, label namespace and network name.
pub fn unique_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "tls{:x}{:x}{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `faaso` process of this test, its own namespace, its output in a file. Dropping it
/// stops it by pid and removes whatever carries its labels.
pub struct Running {
    /// Its prefix, label namespace and network name.
    pub id: String,
    /// The process.
    pub child: Child,
    dir: PathBuf,
    log: PathBuf,
}

/// The settings that put a `faaso` in namespace `id`, its state and config under `dir`.
fn namespace_env(id: &str, dir: &Path) -> [(&'static str, String); 6] {
    [
        ("FAASO_PREFIX", id.to_owned()),
        ("FAASO_LABELS", id.to_owned()),
        ("FAASO_NETWORK", format!("{id}-net")),
        ("FAASO_STATE_DIR", dir.join("state").display().to_string()),
        ("XDG_CONFIG_HOME", dir.join("config").display().to_string()),
        ("NO_COLOR", "1".to_owned()),
    ]
}

impl Running {
    /// Starts `faaso args` in `dir`, with `env` added.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let id = unique_id();
        let log = dir.join(format!("{id}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_faaso"));
        for (key, _) in std::env::vars() {
            if key.starts_with("FAASO_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(args)
            .envs(namespace_env(&id, dir))
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the faaso binary should start");
        Self {
            id,
            child,
            dir: dir.to_owned(),
            log,
        }
    }

    /// Runs `faaso args` to its end in this process's directory and namespace, `env` added.
    pub fn faaso(&self, args: &[&str], env: &[(&str, &str)]) -> super::Run {
        let namespace = namespace_env(&self.id, &self.dir);
        let mut all: Vec<(&str, &str)> = namespace.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        super::faaso_in(&self.dir, args, &all)
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to 20 s for a log line containing `needle`.
    pub async fn wait_for_line(&self, needle: &str) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no log line with {needle:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Log lines at warning or error level.
    pub fn complaints(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of {}\n{}", self.id, self.log());
        }
        super::cleanup::remove_namespace(&self.id);
    }
}
