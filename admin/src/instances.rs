//! A funko's instances for operators, through the engine's boundary: listing them closely
//! (state, health, uptime, current or outdated), their output, and restarting one
//! (`/admin/funkos/<name>/instances…`, and the funko-wide logs of `funkos.rs`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faaso_reconciler::{Instance, InstanceDetails, InstanceLog, LogOptions, Trigger};
use faaso_schema::FunkoName;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::funkos::{error, funko_name};

/// Routes under `/admin/funkos/<name>/instances`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/funkos/{name}/instances", get(list))
        .route("/funkos/{name}/instances/{instance}/logs", get(logs))
        .route("/funkos/{name}/instances/{instance}/restart", post(restart))
}

/// One instance as the web UI shows it.
#[derive(Debug, Serialize)]
struct InstanceView {
    /// The container name.
    name: String,
    /// The container id.
    id: String,
    /// The instance number from its label.
    number: Option<u32>,
    /// Docker's state: `running`, `exited`, `restarting`, …
    state: String,
    /// `ready` (gets requests), `not ready` (running, not routed), Docker's own health status
    /// when it has one and the instance is not routed, or `down` when not running.
    health: String,
    /// Whether it runs the funko's current config (image, env, secrets, resources).
    current: bool,
    /// When it was last started, seconds since the Unix epoch (absent when not running).
    started_at: Option<u64>,
    /// Seconds since then.
    uptime_s: Option<u64>,
    /// The image it runs.
    image: String,
}

async fn list(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let name = match known_funko(&state, &name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    let details = match state.engine.inspect(name.as_str()).await {
        Ok(details) => details,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("cannot list instances: {e}"),
            );
        }
    };
    let board = state.board.current();
    let current_hash = board
        .funkos
        .iter()
        .find(|f| f.name == name.as_str())
        .and_then(|f| f.config_hash.clone());
    let ready = state.traffic.ready(name.as_str());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut views: Vec<InstanceView> = details
        .into_iter()
        .map(|detail| {
            let InstanceDetails {
                instance,
                status,
                started_at,
                health,
            } = detail;
            let health = if started_at.is_none() {
                "down".to_owned()
            } else if ready.contains(&instance.id) {
                "ready".to_owned()
            } else {
                health.unwrap_or_else(|| "not ready".to_owned())
            };
            InstanceView {
                current: current_hash.as_ref() == Some(&instance.config_hash),
                number: (instance.number > 0).then_some(instance.number),
                state: status,
                health,
                started_at,
                uptime_s: started_at.map(|at| now.saturating_sub(at)),
                name: instance.name,
                image: instance.image,
                id: instance.id,
            }
        })
        .collect();
    views.sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
    Json(views).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LogsQuery {
    #[serde(default)]
    follow: Option<String>,
    #[serde(default)]
    tail: Option<u32>,
}

impl LogsQuery {
    /// What the engine is asked for: the last 100 lines unless told otherwise.
    pub(crate) fn options(&self) -> LogOptions {
        LogOptions {
            tail: Some(u64::from(self.tail.unwrap_or(100))),
            follow: matches!(self.follow.as_deref(), Some("1" | "true" | "yes")),
        }
    }
}

/// One instance's output as plain text lines `<instance> | <line>`, streamed.
async fn logs(
    State(state): State<Arc<AdminState>>,
    Path((name, instance)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let instance = match one_instance(&state, &name, &instance).await {
        Ok(instance) => instance,
        Err(response) => return response,
    };
    match state.engine.logs(&name, query.options()).await {
        // Only the one asked for: the others' streams are dropped before they are read.
        Ok(logs) => log_body(
            logs.into_iter()
                .filter(|log| log.instance == instance.name)
                .collect(),
        ),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("cannot read the output of {}: {e}", instance.name),
        ),
    }
}

/// Restarts one instance (SIGTERM, the grace period, SIGKILL, start); the proxy stops routing
/// to it while it is down and routes to it again once it answers its readiness check.
async fn restart(
    State(state): State<Arc<AdminState>>,
    Path((name, instance)): Path<(String, String)>,
) -> Response {
    let Instance {
        id, name: instance, ..
    } = match one_instance(&state, &name, &instance).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(e) = state.engine.restart(&id).await {
        // The reconciler removing it (a scale-down, a rollout) raced this restart: that is
        // the instance's state, not the engine failing.
        if e.is_vanishing() {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "instance {instance} is being removed (a scale-down, rollout or removal of \
                     {name}), so it is not restarted; the funko's other instances serve: {e}"
                ),
            );
        }
        return error(
            StatusCode::BAD_GATEWAY,
            format!("cannot restart instance {instance}: {e}"),
        );
    }
    tracing::info!(funko = %name, %instance, "An instance was restarted from the admin API.");
    // The next pass sees it again at once, rather than at the periodic resync.
    let _ = state.trigger.send(Trigger::Requested);
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "funko": name, "restarted": instance })),
    )
        .into_response()
}

/// The funko's managed container named `instance` (its name or id); 404 when there is none.
async fn one_instance(
    state: &AdminState,
    name: &str,
    instance: &str,
) -> Result<Instance, Response> {
    let name = known_funko(state, name)?;
    if !container_name(instance) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("`{instance}` is not a container name or id"),
        ));
    }
    let found = instances(state, &name)
        .await?
        .into_iter()
        .find(|i| i.name == instance || i.id == instance);
    found.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("funko `{name}` has no instance `{instance}`"),
        )
    })
}

/// A valid name whose folder is in the funkos folder.
// The error is the handler's answer, built at most once per request: no need to box it.
#[allow(clippy::result_large_err)]
fn known_funko(state: &AdminState, name: &str) -> Result<FunkoName, Response> {
    let name = funko_name(name)?;
    if state.funkos_dir.join(name.as_str()).is_dir() {
        Ok(name)
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("there is no funko `{name}`"),
        ))
    }
}

/// The instances faaso created for the funko, running or not; a 502 answer when the engine
/// cannot list them.
pub(crate) async fn instances(
    state: &AdminState,
    name: &FunkoName,
) -> Result<Vec<Instance>, Response> {
    state
        .engine
        .inspect(name.as_str())
        .await
        .map(|details| details.into_iter().map(|d| d.instance).collect())
        .map_err(|e| {
            error(
                StatusCode::BAD_GATEWAY,
                format!("cannot list instances: {e}"),
            )
        })
}

/// Instances' output, merged as it comes, as lines `<instance> | <line>`.
pub(crate) fn log_body(logs: Vec<InstanceLog>) -> Response {
    let streams = logs.into_iter().map(|log| {
        let instance = log.instance;
        log.output
            .filter_map(move |chunk| {
                let text = chunk.ok().map(|chunk| {
                    String::from_utf8_lossy(&chunk)
                        .lines()
                        .map(|line| format!("{instance} | {line}\n"))
                        .collect::<String>()
                });
                async move { text.map(|t| Ok::<_, Infallible>(bytes::Bytes::from(t))) }
            })
            .boxed()
    });
    let body = Body::from_stream(futures_util::stream::select_all(streams));
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Docker's rule for container names (ids match it too), with a length bound.
fn container_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::container_name;

    #[test]
    fn container_names_follow_dockers_rule() {
        for good in ["faaso-hello-1", "a", "x_y.z-1", &"f".repeat(64)] {
            assert!(container_name(good), "{good}");
        }
        for bad in ["", "-a", ".a", "..", "a/b", "a b", "ä", &"f".repeat(129)] {
            assert!(!container_name(bad), "{bad}");
        }
    }
}
