//! The funko routes: status, delete, scale, logs, and the event stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faaso_schema::FunkoName;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::instances::{LogsQuery, log_body};
use crate::{AdminEvent, AdminState};

/// Routes under `/admin/funkos` and `/admin/events`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/funkos", get(list))
        .route("/funkos/{name}", get(one).delete(delete))
        .route("/funkos/{name}/scale", post(scale))
        .route("/funkos/{name}/logs", get(logs))
        .route("/events", get(events))
}

/// A JSON error answer: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Checks a funko name from a URL.
// The error is the handler's answer, built at most once per request: no need to box it.
#[allow(clippy::result_large_err)]
pub(crate) fn funko_name(name: &str) -> Result<FunkoName, Response> {
    FunkoName::new(name).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn list(State(state): State<Arc<AdminState>>) -> Response {
    Json(state.board.current().as_ref().clone()).into_response()
}

async fn one(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let board = state.board.current();
    match board.funkos.iter().find(|f| f.name == name) {
        Some(status) => Json(status.clone()).into_response(),
        None if state.funkos_dir.join(&name).is_dir() => error(
            StatusCode::NOT_FOUND,
            format!("funko `{name}` has not been reconciled yet; ask again shortly"),
        ),
        None => error(StatusCode::NOT_FOUND, format!("there is no funko `{name}`")),
    }
}

async fn delete(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let name = match funko_name(&name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    let dir = state.funkos_dir.join(name.as_str());
    if !dir.is_dir() {
        return error(StatusCode::NOT_FOUND, format!("there is no funko `{name}`"));
    }
    // Renamed out of sight first (hidden folders are not funkos), so the reconciler never sees
    // a half-deleted folder.
    let trash = state
        .funkos_dir
        .join(format!(".deleted-{name}-{}", std::process::id()));
    if let Err(e) = std::fs::rename(&dir, &trash) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot delete `{name}`: {e}"),
        );
    }
    let _ = std::fs::remove_dir_all(&trash);
    state.changed(AdminEvent::Deleted {
        funko: name.to_string(),
    });
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "deleted": name.as_str() })),
    )
        .into_response()
}

/// `{"scale": n}`. Other properties are ignored, as the schema allows them; `n` is a JSON
/// number, checked by [`scale_of`].
#[derive(Deserialize)]
struct ScaleBody {
    scale: serde_json::Number,
}

/// The most instances a scale request may ask for: as many as funko.yml may hold.
const MAX_SCALE: u32 = faaso_schema::MAX_INSTANCES;

/// The scale a JSON number asks for: an integer by JSON Schema's rules (so `41.0` is 41), from
/// 0 to [`MAX_SCALE`].
fn scale_of(number: &serde_json::Number) -> Result<u32, String> {
    let refused = || format!("scale must be an integer from 0 to {MAX_SCALE}, not {number}");
    let value = match number.as_u64() {
        Some(whole) => whole,
        None if number.is_i64() => return Err(refused()),
        None => {
            let float = number.as_f64().ok_or_else(refused)?;
            if float.fract() != 0.0 || !(0.0..=f64::from(MAX_SCALE)).contains(&float) {
                return Err(refused());
            }
            // Whole and within 0..=100, so exact.
            float as u64
        }
    };
    u32::try_from(value)
        .ok()
        .filter(|scale| *scale <= MAX_SCALE)
        .ok_or_else(refused)
}

async fn scale(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Json(body): Json<ScaleBody>,
) -> Response {
    let name = match funko_name(&name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    let dir = state.funkos_dir.join(name.as_str());
    if !dir.is_dir() {
        return error(StatusCode::NOT_FOUND, format!("there is no funko `{name}`"));
    }
    let scale = match scale_of(&body.scale) {
        Ok(scale) => scale,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, message),
    };
    if let Some(refusal) = faaso_schema::load_funko(&dir)
        .ok()
        .and_then(|funko| funko.refuses_fixed_scale())
    {
        return error(StatusCode::CONFLICT, refusal.to_string());
    }
    match faaso_schema::write_scale(&dir, scale) {
        Ok(previous) => {
            state.changed(AdminEvent::Scaled {
                funko: name.to_string(),
                scale,
            });
            let answer =
                serde_json::json!({ "funko": name.as_str(), "from": previous, "to": scale });
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        Err(problem) => error(StatusCode::UNPROCESSABLE_ENTITY, problem.to_string()),
    }
}

/// Every instance's output as plain text lines `<instance> | <line>`, streamed.
async fn logs(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let name = match funko_name(&name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    let logs = match state.engine.logs(name.as_str(), query.options()).await {
        Ok(logs) => logs,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("cannot list instances: {e}"),
            );
        }
    };
    if logs.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("funko `{name}` has no instances"),
        );
    }
    log_body(logs)
}

/// Server-sent events: one `data:` JSON object per [`AdminEvent`].
async fn events(
    State(state): State<Arc<AdminState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.events()).filter_map(|event| async move {
        let event = event.ok()?;
        Event::default().json_data(&event).ok().map(Ok)
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::scale_of;

    fn scale(json: &str) -> Result<u32, String> {
        scale_of(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_scale_is_any_json_integer_from_0_to_100() {
        assert_eq!(scale("0"), Ok(0));
        assert_eq!(scale("41"), Ok(41));
        assert_eq!(scale("41.0"), Ok(41));
        assert_eq!(scale("4.1e1"), Ok(41));
        assert_eq!(scale("1e2"), Ok(100));
        assert_eq!(scale("-0.0"), Ok(0));
        for refused in [
            "41.5",
            "-1",
            "-1.0",
            "101",
            "100.5",
            "1e300",
            "18446744073709551616",
        ] {
            assert!(scale(refused).is_err(), "{refused}");
        }
    }
}
