//! A funko's instances as Docker has them, and every Docker call the admin API makes about them:
//! listing, inspecting (state, health, uptime), their output, and restarting one
//! (`/admin/funkos/<name>/instances…`, and the funko-wide logs of `funkos.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RestartContainerOptionsBuilder,
};
use faaso_reconciler::Trigger;
use faaso_schema::FunkoName;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::funkos::{error, funko_name};

/// Seconds a restarted instance gets between SIGTERM and SIGKILL (faaso's default grace).
const RESTART_GRACE_SECS: i32 = 10;

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
    let containers = match containers(&state, &name).await {
        Ok(containers) => containers,
        Err(response) => return response,
    };
    let board = state.board.current();
    let current_hash = board
        .funkos
        .iter()
        .find(|f| f.name == name.as_str())
        .and_then(|f| f.config_hash.clone());
    let ready = state.traffic.ready(name.as_str());
    let hash_label = state.namespace.label("config-hash");
    let number_label = state.namespace.label("instance");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut views = Vec::with_capacity(containers.len());
    for container in containers {
        let id = container.id.clone().unwrap_or_default();
        let labels = container.labels.clone().unwrap_or_default();
        // Inspected one by one: only inspect tells when a container was (re)started.
        let inspected = match state.docker.inspect_container(&id, None).await {
            Ok(inspected) => inspected,
            // Removed between the list and the inspect: it is no longer an instance.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(e) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot inspect instance {}: {e}", instance_name(&container)),
                );
            }
        };
        let docker_state = inspected.state.unwrap_or_default();
        let running = docker_state.running.unwrap_or(false);
        let started_at = docker_state
            .started_at
            .as_deref()
            .filter(|_| running)
            .and_then(unix_seconds);
        let health = if !running {
            "down".to_owned()
        } else if ready.contains(&id) {
            "ready".to_owned()
        } else {
            docker_state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none")
                .unwrap_or_else(|| "not ready".to_owned())
        };
        views.push(InstanceView {
            name: instance_name(&container),
            number: labels.get(&number_label).and_then(|n| n.parse().ok()),
            state: container
                .state
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
            health,
            current: current_hash.is_some() && labels.get(&hash_label) == current_hash.as_ref(),
            started_at,
            uptime_s: started_at.map(|at| now.saturating_sub(at)),
            image: container.image.unwrap_or_default(),
            id,
        });
    }
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

/// One instance's output as plain text lines `<instance> | <line>`, streamed.
async fn logs(
    State(state): State<Arc<AdminState>>,
    Path((name, instance)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Response {
    match one_instance(&state, &name, &instance).await {
        Ok(container) => log_stream(&state.docker, vec![container], &query),
        Err(response) => response,
    }
}

/// Restarts one instance (SIGTERM, the grace period, SIGKILL, start); the proxy stops routing
/// to it while it is down and routes to it again once it answers its readiness check.
async fn restart(
    State(state): State<Arc<AdminState>>,
    Path((name, instance)): Path<(String, String)>,
) -> Response {
    let container = match one_instance(&state, &name, &instance).await {
        Ok(container) => container,
        Err(response) => return response,
    };
    let instance = instance_name(&container);
    let options = RestartContainerOptionsBuilder::new()
        .t(RESTART_GRACE_SECS)
        .build();
    let id = container.id.unwrap_or_default();
    if let Err(e) = state.docker.restart_container(&id, Some(options)).await {
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
) -> Result<ContainerSummary, Response> {
    let name = known_funko(state, name)?;
    if !container_name(instance) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("`{instance}` is not a container name or id"),
        ));
    }
    let found = containers(state, &name)
        .await?
        .into_iter()
        .find(|c| instance_name(c) == instance || c.id.as_deref() == Some(instance));
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

/// The funko's managed containers, running or not; a 502 answer when Docker cannot list them.
pub(crate) async fn containers(
    state: &AdminState,
    name: &FunkoName,
) -> Result<Vec<ContainerSummary>, Response> {
    let ns = &state.namespace;
    let filters = HashMap::from([(
        "label",
        vec![ns.managed_filter(), format!("{}={name}", ns.label("funko"))],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    state
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_GATEWAY,
                format!("cannot list instances: {e}"),
            )
        })
}

/// The output of `containers`, merged as it comes, as lines `<instance> | <line>`.
pub(crate) fn log_stream(
    docker: &Docker,
    containers: Vec<ContainerSummary>,
    query: &LogsQuery,
) -> Response {
    let follow = matches!(query.follow.as_deref(), Some("1" | "true" | "yes"));
    let tail = query.tail.unwrap_or(100).to_string();
    let docker = docker.clone();
    let streams = containers.into_iter().map(move |c| {
        let instance = instance_name(&c);
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        docker
            .logs(c.id.as_deref().unwrap_or_default(), Some(options))
            .filter_map(move |chunk| {
                let text = chunk.ok().map(|c| {
                    String::from_utf8_lossy(&c.into_bytes())
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

fn instance_name(container: &ContainerSummary) -> String {
    let names = container.names.as_deref().unwrap_or_default();
    let first = names.first().map_or("", String::as_str);
    first.trim_start_matches('/').to_owned()
}

/// Docker's RFC 3339 timestamp (`2026-12-02T09:41:07.123456789Z`) as Unix seconds; `None` for
/// the zero time Docker gives a container never started.
fn unix_seconds(stamp: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(stamp).ok()?;
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::{container_name, unix_seconds};

    #[test]
    fn container_names_follow_dockers_rule() {
        for good in ["faaso-hello-1", "a", "x_y.z-1", &"f".repeat(64)] {
            assert!(container_name(good), "{good}");
        }
        for bad in ["", "-a", ".a", "..", "a/b", "a b", "ä", &"f".repeat(129)] {
            assert!(!container_name(bad), "{bad}");
        }
    }

    #[test]
    fn docker_timestamps_become_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2026-12-02T09:41:07.123456789Z"),
            Some(1_796_204_467)
        );
        assert_eq!(unix_seconds("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(unix_seconds("0001-01-01T00:00:00Z"), None);
        assert_eq!(unix_seconds("garbage"), None);
    }
}
