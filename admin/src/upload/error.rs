//! The limits on an uploaded funko, and why an upload is refused (each reason its HTTP status).

use std::io;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::archive::{HEADER_BUDGET, TRAILING_BUDGET};
use crate::funkos::error;

/// Limits on an uploaded funko.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// The largest compressed upload.
    pub max_compressed: usize,
    /// The largest total of unpacked file sizes.
    pub max_unpacked: u64,
    /// The most entries.
    pub max_entries: usize,
    /// The most path components in one entry's path.
    pub max_depth: usize,
    /// The longest entry path, in bytes.
    pub max_path_len: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_compressed: 32 << 20,
            max_unpacked: 256 << 20,
            max_entries: 10_000,
            max_depth: 32,
            max_path_len: 1024,
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The archive is not a gzipped tar.
    #[error(
        "the upload is not a gzipped tar: {0}; send the funko folder as `tar czf - -C <folder> .`"
    )]
    Archive(String),
    /// The compressed upload is larger than allowed.
    #[error(
        "the upload is larger than {}; leave build outputs and caches out of it",
        amount(*limit as u64)
    )]
    CompressedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The files unpack to more bytes than allowed.
    #[error(
        "entry `{path}`: the files unpack to more than {}; leave large files out of the funko",
        amount(*limit)
    )]
    UnpackedTooLarge {
        /// The entry that went over.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// The archive holds more entries than allowed.
    #[error("the archive holds more than {limit} entries; leave dependencies and caches out of it")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// An entry's path is longer or deeper than allowed.
    #[error("entry `{path}`: the path is {what}; shorten it")]
    PathTooLong {
        /// The entry's path (cut short when very long).
        path: String,
        /// Which limit, and by how much.
        what: String,
    },
    /// An entry's header data (long name, pax extensions) is implausibly large.
    #[error(
        "an entry's header data (long name or pax extensions) is larger than {HEADER_BUDGET} bytes; this is not a funko archive"
    )]
    HeaderTooLarge,
    /// The decompressed stream goes on long after the archive's end.
    #[error(
        "the archive goes on for more than {TRAILING_BUDGET} bytes after its end marker (a decompression bomb?); send only the tar of the funko"
    )]
    Trailing,
    /// An entry that may not be in a funko.
    #[error("entry `{path}` {reason}")]
    Entry {
        /// The entry's path as the archive gives it.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The unpacked funko is not valid: the problem, relative to the funko folder.
    #[error("{0}")]
    Funko(String),
    /// Reading or writing the staging folder failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        source: io::Error,
    },
    /// The new version could not be swapped in.
    #[error("cannot swap the new version of `{funko}` in: {reason}")]
    Swap {
        /// The funko.
        funko: String,
        /// Why, and what to do.
        reason: String,
    },
}

impl UploadError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Archive(_) | Self::Entry { .. } => StatusCode::BAD_REQUEST,
            Self::CompressedTooLarge { .. }
            | Self::UnpackedTooLarge { .. }
            | Self::TooManyEntries { .. }
            | Self::PathTooLong { .. }
            | Self::HeaderTooLarge
            | Self::Trailing => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Funko(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Io { .. } | Self::Swap { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    pub(super) fn entry(path: &str, reason: impl Into<String>) -> Self {
        Self::Entry {
            path: shorten(path),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        error(self.status(), self.to_string())
    }
}

/// A byte count for a message: whole KiB and MiB as such.
pub(super) fn amount(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// A path or message for an answer: long ones are cut.
pub(super) fn shorten(path: &str) -> String {
    const SHOWN: usize = 200;
    if path.len() <= SHOWN {
        return path.to_owned();
    }
    let mut end = SHOWN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}
