//! Uploading a funko: `PUT /admin/funkos/<name>` with a gzipped tar of the folder's contents.
//!
//! The archive is checked while it streams out of the decompressor (limits, entry kinds, paths)
//! and unpacked into a hidden staging folder inside the funkos folder
//! (`.upload-<name>-<random>/<name>/`; the reconciler skips hidden folders). The staged funko
//! is validated like the reconciler would (funko.yml, name, runtime, template), then swapped in
//! with one `renameat2(RENAME_EXCHANGE)`, so the reconciler sees the old version or the new
//! one, never a missing or half-written folder. Any refusal removes the staging folder.
//!
//! Entries are relative to the funko folder (`funko.yml`, `lib/x.py`; a leading `./` is fine,
//! as `tar czf - -C <dir> .` writes). An archive holding a single top-level folder named like the
//! funko (`tar czf - <name>`) is accepted too and taken as the funko folder.

mod archive;
mod error;
mod stage;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use faaso_schema::FunkoName;
use futures_util::StreamExt;

use crate::funkos::{error, funko_name};
use crate::{AdminEvent, AdminState};
pub use error::{UploadError, UploadLimits};
use stage::deploy;
pub(crate) use stage::stage;

/// The funko named in the path and the archive in the body (read up to the size limit), or the
/// answer refusing them.
pub(crate) async fn named_archive(
    state: &AdminState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(FunkoName, Bytes), Response> {
    let name = funko_name(name)?;
    match read_body(headers, body, state.limits.max_compressed).await {
        Ok(bytes) => Ok((name, bytes)),
        Err(e) => Err(refused(&name, e)),
    }
}

/// Routes for uploads.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/funkos/{name}", put(upload))
}

async fn upload(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (name, compressed) = match named_archive(&state, &name, &headers, body).await {
        Ok(named) => named,
        Err(response) => return response,
    };
    let job = state.clone();
    let job_name = name.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        deploy(&job.funkos_dir, &job_name, &compressed, &job.limits)
    })
    .await;
    match outcome {
        Ok(Ok(deployed)) => {
            tracing::info!(
                funko = %name,
                files = deployed.unpacked.files,
                bytes = deployed.unpacked.bytes,
                replaced = deployed.replaced,
                "A funko was uploaded and swapped in."
            );
            state.changed(AdminEvent::Deployed {
                funko: name.to_string(),
            });
            let answer = serde_json::json!({
                "funko": name.as_str(),
                "status": format!("/admin/funkos/{name}"),
                "events": "/admin/events",
                "replaced": deployed.replaced,
            });
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        Ok(Err(e)) => refused(&name, e),
        Err(join) => {
            tracing::error!(funko = %name, error = ?join, "Checking an upload panicked.");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checking the upload failed unexpectedly; nothing was changed",
            )
        }
    }
}

pub(crate) fn refused(name: &FunkoName, e: UploadError) -> Response {
    if e.status().is_server_error() {
        tracing::error!(funko = %name, error = %e, "An upload failed.");
    } else {
        tracing::info!(funko = %name, error = %e, "An upload was refused.");
    }
    e.into_response()
}

/// The body, up to `max` bytes; a larger one is refused as soon as it is known to be larger.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, UploadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(UploadError::CompressedTooLarge { limit: max });
    }
    let mut stream = body.into_data_stream();
    let mut collected = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| UploadError::Archive(format!("the body could not be read ({e})")))?;
        if collected.len() + chunk.len() > max {
            return Err(UploadError::CompressedTooLarge { limit: max });
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.into())
}
