//! A funko's output on Swarm: every task Swarm keeps for its service (those running and the few
//! that ended before them, as `docker service logs` shows), each read through the manager,
//! which fetches a task's logs from the node that ran it.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::Task;
use futures_util::StreamExt;

use super::error::SwarmError;
use super::observe;
use super::service::service_name;
use crate::backend::{EngineError, InstanceLog, LogOptions};
use crate::namespace::Namespace;

/// Each task of `funko`'s service with its output stream, by slot, oldest first.
pub(super) async fn logs(
    docker: &Docker,
    ns: &Namespace,
    funko: &str,
    options: LogOptions,
) -> Result<Vec<InstanceLog>, SwarmError> {
    let services = observe::managed_services(docker, ns).await?;
    let name = service_name(ns, funko);
    let mut tasks = observe::tasks(docker, &[("service", &name)]).await?;
    tasks.sort_by_key(age_order);
    let query = crate::docker::logs_query(options);
    // Addresses play no part in a log; the task's name is all it needs.
    let addresses = HashMap::new();
    Ok(tasks
        .iter()
        .filter_map(|task| {
            let instance = observe::task_instance(task, &services, &addresses, ns)?;
            let output = docker
                .task_logs(&instance.id, Some(query.clone()))
                .map(|chunk| chunk.map(|c| c.into_bytes()).map_err(EngineError::new))
                .boxed();
            Some(InstanceLog {
                instance: instance.name,
                output,
            })
        })
        .collect())
}

/// A task's place in a listing: by slot, then oldest first (a slot's ended tasks before the one
/// that replaced them).
fn age_order(task: &Task) -> (i64, Option<std::time::SystemTime>) {
    let created = task.created_at.as_deref();
    let created = created.and_then(|at| humantime::parse_rfc3339(at).ok());
    (task.slot.unwrap_or(0), created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(slot: i64, created_at: &str) -> Task {
        Task {
            slot: Some(slot),
            created_at: Some(created_at.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn tasks_are_listed_by_slot_then_oldest_first() {
        let mut tasks = [
            task(2, "2026-01-01T10:00:00.5Z"),
            task(1, "2026-01-01T10:00:01.25Z"),
            task(1, "2026-01-01T10:00:01.125456789Z"),
        ];
        tasks.sort_by_key(age_order);
        let order: Vec<_> = tasks
            .iter()
            .map(|t| (t.slot.unwrap(), t.created_at.clone().unwrap()))
            .collect();
        assert_eq!(
            order,
            [
                (1, "2026-01-01T10:00:01.125456789Z".to_owned()),
                (1, "2026-01-01T10:00:01.25Z".to_owned()),
                (2, "2026-01-01T10:00:00.5Z".to_owned()),
            ]
        );
    }
}
