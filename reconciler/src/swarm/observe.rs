//! What runs on the Swarm: faaso's services and their tasks, read into the model's instances.
//! A task's slot is its instance number; a service with no task meant to run shows as one
//! entry numbered 0, so the planner still sees (and can remove) it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use bollard::Docker;
use bollard::models::{Service, Task, TaskState};
use bollard::query_parameters::{InspectNetworkOptions, ListServicesOptions, ListTasksOptions};

use super::error::{SwarmError, is_not_found};
use crate::namespace::Namespace;
use crate::observe::{Instance, InstanceState, Listed, read_instance};

/// faaso's services (by id): their name and labels.
pub(super) async fn managed_services(
    docker: &Docker,
    ns: &Namespace,
) -> Result<BTreeMap<String, Service>, SwarmError> {
    let filters = HashMap::from([("label".to_owned(), vec![ns.managed_filter()])]);
    let services = docker
        .list_services(Some(ListServicesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(SwarmError::engine("list the services"))?;
    Ok(services
        .into_iter()
        .filter_map(|s| Some((s.id.clone()?, s)))
        .collect())
}

/// Tasks matching `filters` (`service`, `desired-state`…).
pub(super) async fn tasks(
    docker: &Docker,
    filters: &[(&str, &str)],
) -> Result<Vec<Task>, SwarmError> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in filters {
        map.entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }
    docker
        .list_tasks(Some(ListTasksOptions { filters: Some(map) }))
        .await
        .map_err(SwarmError::engine("list the tasks"))
}

/// Each task's address on the faaso network, by task id: bollard's `Task` drops the network
/// attachments, a verbose network inspect on the manager has them.
pub(super) async fn task_addresses(
    docker: &Docker,
    ns: &Namespace,
) -> Result<HashMap<String, IpAddr>, SwarmError> {
    let options = InspectNetworkOptions {
        verbose: true,
        ..Default::default()
    };
    let network = match docker.inspect_network(&ns.network, Some(options)).await {
        Ok(network) => network,
        Err(e) if is_not_found(&e) => return Ok(HashMap::new()),
        Err(e) => return Err(SwarmError::engine("inspect the network")(e)),
    };
    let mut addresses = HashMap::new();
    for service in network.services.unwrap_or_default().into_values() {
        let tasks = service.get("Tasks").and_then(|t| t.as_array()).cloned();
        for task in tasks.unwrap_or_default() {
            // Task names are `<service>.<slot or node>.<task id>`.
            let id = task["Name"].as_str().and_then(|n| n.rsplit('.').next());
            let ip = task["EndpointIP"].as_str().and_then(|ip| ip.parse().ok());
            if let (Some(id), Some(ip)) = (id, ip) {
                addresses.insert(id.to_owned(), ip);
            }
        }
    }
    Ok(addresses)
}

/// A task as the model's instance (`None` for a task of no faaso service).
pub(super) fn task_instance(
    task: &Task,
    services: &BTreeMap<String, Service>,
    addresses: &HashMap<String, IpAddr>,
    ns: &Namespace,
) -> Option<Instance> {
    let service = services.get(task.service_id.as_ref()?)?;
    let service_name = service.spec.as_ref()?.name.clone()?;
    let container = task.spec.as_ref()?.container_spec.as_ref()?;
    let mut labels = container.labels.clone().unwrap_or_default();
    let slot = task.slot.unwrap_or(0).max(0);
    labels.insert(ns.label("instance"), slot.to_string());
    let id = task.id.clone()?;
    let state = match task.status.as_ref().and_then(|s| s.state) {
        Some(TaskState::RUNNING) => InstanceState::Running,
        Some(
            TaskState::FAILED | TaskState::SHUTDOWN | TaskState::COMPLETE | TaskState::REJECTED,
        ) => InstanceState::Stopped,
        _ => InstanceState::Restarting,
    };
    read_instance(
        Listed {
            ip: addresses.get(&id).copied(),
            name: format!("{service_name}.{slot}"),
            id,
            labels,
            image: container.image.clone().unwrap_or_default(),
            state,
        },
        ns,
    )
}

/// A service with no task meant to run, as one entry numbered 0.
pub(super) fn idle_service(service: &Service, ns: &Namespace) -> Option<Instance> {
    let spec = service.spec.as_ref()?;
    let mut labels = spec.labels.clone().unwrap_or_default();
    labels.insert(ns.label("instance"), "0".to_owned());
    read_instance(
        Listed {
            id: service.id.clone()?,
            name: spec.name.clone()?,
            labels,
            image: String::new(),
            state: InstanceState::Stopped,
            ip: None,
        },
        ns,
    )
}

/// Every faaso task meant to run, and an entry for each service with none.
pub(super) async fn instances(
    docker: &Docker,
    ns: &Namespace,
) -> Result<Vec<Instance>, SwarmError> {
    let services = managed_services(docker, ns).await?;
    let running = tasks(docker, &[("desired-state", "running")]).await?;
    let addresses = task_addresses(docker, ns).await?;
    let mut instances: Vec<Instance> = running
        .iter()
        .filter_map(|t| task_instance(t, &services, &addresses, ns))
        .collect();
    for (id, service) in &services {
        let has_tasks = running.iter().any(|t| t.service_id.as_ref() == Some(id));
        if !has_tasks {
            instances.extend(idle_service(service, ns));
        }
    }
    Ok(instances)
}
