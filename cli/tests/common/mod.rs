//! What the end-to-end tests share: running the real `faaso` binary and writing funkos.
// Each test crate compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod certs;
pub mod cleanup;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of `faaso` did.
#[derive(Debug)]
pub struct Run {
    /// The exit status; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with the whole output unless `faaso` exited 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "faaso should succeed\n{self}");
        self
    }

    /// Panics unless `faaso` failed the way a user should see it: exit 1, no panic.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert_eq!(self.code, Some(1), "faaso should exit 1\n{self}");
        assert!(!self.stderr.contains("panicked"), "faaso panicked\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `faaso` with `args` in `cwd`, with `env` added; no `FAASO_*` from the caller leaks in.
pub fn faaso_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faaso"));
    for (key, _) in std::env::vars() {
        if key.starts_with("FAASO_") {
            command.env_remove(key);
        }
    }
    let output = command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("the faaso binary should start");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `faaso` with `args` in the repository root.
pub fn faaso(args: &[&str]) -> Run {
    faaso_in(&repo_root(), args, &[])
}

/// The workspace root (the parent of `cli/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_owned()
}

/// Writes `files` (relative path, contents) under `root/folder` and returns that folder.
pub fn write_funko(root: &Path, folder: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(folder);
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).unwrap();
        std::fs::write(&path, contents).unwrap();
    }
    dir
}

/// `path` as a `&str` for a command line.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}
