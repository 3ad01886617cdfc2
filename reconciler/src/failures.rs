//! `Failures`: what failed last, per funko, so the same content is not retried in a loop and
//! `faaso status` can say why. Kept as one JSON file in the state directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Why a funko's current content is on hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The image (for a failed build) or config hash (for an instance that never became ready)
    /// that failed; a different one means the funko changed and may be tried again.
    pub key: String,
    /// What went wrong.
    pub error: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

/// The last failure of each funko, persisted in `<state dir>/last-errors.json`.
#[derive(Debug, Default)]
pub struct Failures {
    path: Option<PathBuf>,
    entries: BTreeMap<String, Failure>,
}

impl Failures {
    /// Loads the failures kept under `state_dir`; `None` keeps them in memory only.
    pub fn load(state_dir: Option<&Path>) -> Self {
        let path = state_dir.map(|d| d.join("last-errors.json"));
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self { path, entries }
    }

    /// The failure recorded for `funko`, if any.
    pub fn get(&self, funko: &str) -> Option<&Failure> {
        self.entries.get(funko)
    }

    /// Every recorded failure.
    pub fn all(&self) -> &BTreeMap<String, Failure> {
        &self.entries
    }

    /// Records that `key` of `funko` failed with `error`.
    pub fn record(&mut self, funko: &str, key: &str, error: String) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.entries.insert(
            funko.to_owned(),
            Failure {
                key: key.to_owned(),
                error,
                at,
            },
        );
        self.save();
    }

    /// Forgets the failure of `funko` (it changed, succeeded, or a retry was asked for).
    pub fn clear(&mut self, funko: &str) {
        if self.entries.remove(funko).is_some() {
            self.save();
        }
    }

    /// Forgets every failure.
    pub fn clear_all(&mut self) {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.save();
        }
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let Ok(text) = serde_json::to_vec_pretty(&self.entries) else {
            return;
        };
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, path).is_err() {
            tracing::warn!(path = %path.display(), "cannot save the last errors");
        }
    }
}
