//! `GET /admin/version`: which faaso the server runs, so a client can tell when it differs, and
//! on which backend.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::AdminState;

/// The version of faaso this server runs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The route `/admin/version`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route(
        "/version",
        get(|State(state): State<Arc<AdminState>>| async move {
            Json(serde_json::json!({ "version": VERSION, "backend": state.backend }))
        }),
    )
}
