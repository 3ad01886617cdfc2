//! A closer look at instances for operators: Docker's state, last start and healthcheck status
//! (only an inspect tells these), and restarting one in place.

use std::time::UNIX_EPOCH;

use bollard::query_parameters::RestartContainerOptionsBuilder;

use super::container::STOP_GRACE_SECS;
use super::error::{is_conflict, is_not_found};
use super::{DockerEngine, DockerError};
use crate::backend::{EngineError, InstanceDetails};

/// Every instance faaso created for `funko`, inspected one by one.
pub(super) async fn inspect(
    engine: &DockerEngine,
    funko: &str,
) -> Result<Vec<InstanceDetails>, DockerError> {
    let mut details = Vec::new();
    for instance in engine.funko_instances(funko).await? {
        let inspected = match engine.docker.inspect_container(&instance.id, None).await {
            Ok(inspected) => inspected,
            // Removed between the list and the inspect: no longer an instance.
            Err(e) if is_not_found(&e) => continue,
            Err(source) => {
                return Err(DockerError::Inspect {
                    id: instance.name,
                    source: source.into(),
                });
            }
        };
        let state = inspected.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        details.push(InstanceDetails {
            status: state
                .status
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            started_at: state
                .started_at
                .as_deref()
                .filter(|_| running)
                .and_then(unix_seconds),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            instance,
        });
    }
    Ok(details)
}

/// Restarts a container with faaso's grace period. A container the engine is removing (409:
/// marked for removal) or has removed (404) is a vanishing one, not an engine failure: the
/// reconciler's removal raced the restart.
pub(super) async fn restart(engine: &DockerEngine, id: &str) -> Result<(), EngineError> {
    let options = RestartContainerOptionsBuilder::new()
        .t(STOP_GRACE_SECS as i32)
        .build();
    engine
        .docker
        .restart_container(id, Some(options))
        .await
        .map_err(|source| {
            let vanishing = is_conflict(&source) || is_not_found(&source);
            let error = DockerError::Restart {
                id: id.to_owned(),
                source: source.into(),
            };
            if vanishing {
                EngineError::vanishing(error)
            } else {
                EngineError::new(error)
            }
        })
}

/// Docker's RFC 3339 timestamp (`2026-12-02T09:41:07.123456789Z`) as Unix seconds; `None` for
/// the zero time Docker gives a container never started.
pub(crate) fn unix_seconds(stamp: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(stamp).ok()?;
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

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
