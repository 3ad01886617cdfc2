//! Uploading a funko: `PUT /admin/funkos/<name>` with a gzipped tar of the folder.
//! (Being written: checks before anything touches the funkos folder, then an atomic swap.)

use std::sync::Arc;

use axum::Router;

use crate::AdminState;

/// Limits on an uploaded funko.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// The largest compressed upload.
    pub max_compressed: usize,
    /// The largest total of unpacked file sizes.
    pub max_unpacked: u64,
    /// The most entries.
    pub max_entries: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_compressed: 32 << 20,
            max_unpacked: 256 << 20,
            max_entries: 10_000,
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The archive is not a gzipped tar.
    #[error("the upload is not a gzipped tar: {0}")]
    Archive(String),
}

/// Routes for uploads.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new()
}
