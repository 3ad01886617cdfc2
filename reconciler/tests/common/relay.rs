//! A relay socket in front of the Docker engine that a test can cut and restore: losing the
//! engine without touching the machine's engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The engine's socket.
const ENGINE: &str = "/var/run/docker.sock";

/// A relay from a socket of its own to the engine's.
pub struct Relay {
    path: PathBuf,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying at `path`.
    pub fn start(path: &Path) -> Self {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("relay socket binds");
        let (up, rx) = watch::channel(true);
        let rx = Arc::new(rx);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut rx = (*rx).clone();
                if !*rx.borrow() {
                    continue; // cut: refuse by closing at once
                }
                tokio::spawn(async move {
                    let Ok(mut engine) = UnixStream::connect(ENGINE).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut engine) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            path: path.to_owned(),
            up,
            task,
        }
    }

    /// The relay's socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.up.send(false);
    }

    /// Relays again.
    pub fn restore(&self) {
        let _ = self.up.send(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}
