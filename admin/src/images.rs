//! `DELETE /admin/funkos/<name>/images`: removes a funko's images once it has no instances, the
//! last half of `faaso purge` (the first is scaling it to 0).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::delete;
use axum::{Json, Router};
use faaso_reconciler::InstanceState;

use crate::AdminState;
use crate::funkos::{error, funko_name};
use crate::instances::instances;

/// The route `/funkos/{name}/images`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/funkos/{name}/images", delete(remove))
}

async fn remove(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let name = match funko_name(&name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    if !state.funkos_dir.join(name.as_str()).is_dir() {
        return error(StatusCode::NOT_FOUND, format!("there is no funko `{name}`"));
    }
    // A stopped one holds nothing: on Swarm, the ended tasks it keeps as history.
    let holding = match instances(&state, &name).await {
        Ok(instances) => instances
            .into_iter()
            .filter(|i| i.state != InstanceState::Stopped)
            .count(),
        Err(response) => return response,
    };
    if holding > 0 {
        return error(
            StatusCode::CONFLICT,
            format!("funko `{name}` still has {holding} instances; scale it to 0 first"),
        );
    }
    match state.builder.remove_funko_images(name.as_str()).await {
        Ok(removed) => {
            tracing::info!(funko = %name, images = removed.len(), "A funko's images were removed.");
            Json(serde_json::json!({ "funko": name.as_str(), "removed": removed })).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
