//! `POST /admin/funkos/<name>/build`: builds a funko's image on the server from an uploaded
//! folder (`faaso build` with a server configured), without swapping it into the funkos folder,
//! so nothing rolls out. A later deploy of the same files reuses the image (same content hash).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use faaso_reconciler::BuildOutcome;
use faaso_schema::BuildContext;

use crate::AdminState;
use crate::funkos::error;
use crate::upload::{named_archive, refused, stage};

/// The route `/funkos/{name}/build`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/funkos/{name}/build", post(build))
}

async fn build(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (name, compressed) = match named_archive(&state, &name, &headers, body).await {
        Ok(named) => named,
        Err(response) => return response,
    };
    // Staged in a hidden folder of the funkos folder, like an upload (the reconciler never reads
    // hidden folders, and a crash leaves nothing a restart does not sweep), but never swapped in.
    let job = state.clone();
    let job_name = name.clone();
    let staged = tokio::task::spawn_blocking(move || {
        stage(&job.funkos_dir, &job_name, &compressed, &job.limits)
    })
    .await;
    let staging = match staged {
        Ok(Ok((staging, _))) => staging,
        Ok(Err(e)) => return refused(&name, e),
        Err(join) => {
            tracing::error!(funko = %name, error = ?join, "Checking an upload to build panicked.");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checking the upload failed unexpectedly",
            );
        }
    };
    let started = Instant::now();
    let funko = match faaso_schema::load_funko(&staging.path().join(name.as_str())) {
        Ok(funko) => funko,
        Err(problem) => return error(StatusCode::UNPROCESSABLE_ENTITY, problem.message),
    };
    let images = match state.builder.image_tags().await {
        Ok(images) => images,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let policy = state.base_policy;
    let context = BuildContext::assemble_with(&funko, |runtime| policy.choose(runtime, &images));
    let context = match context {
        Ok(context) => context,
        Err(problem) => return error(StatusCode::UNPROCESSABLE_ENTITY, problem.message),
    };
    let image = state
        .namespace
        .image_ref(&funko.spec.name, &context.content_hash());
    let outcome = state
        .builder
        .build_image(&context, &image, |line| {
            tracing::debug!(funko = %name, line, "build output");
        })
        .await;
    drop(staging);
    match outcome {
        Ok(outcome) => {
            let built = outcome == BuildOutcome::Built;
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(funko = %name, %image, built, seconds, "An image was built on request.");
            let answer = serde_json::json!({
                "funko": name.as_str(),
                "image": image,
                "built": built,
                "seconds": seconds,
            });
            Json(answer).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}
