//! Doing a step on the Swarm: push the image and pin it by digest, keep the secrets versioned,
//! create or update the service, and wait for Swarm's rollout to finish or roll back.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::Docker;
use bollard::models::{
    NetworkCreateRequest, SecretSpec, ServiceSpec, ServiceUpdateStatusStateEnum, TaskState,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListSecretsOptions, PushImageOptions, TagImageOptions,
    UpdateServiceOptions,
};
use futures_util::StreamExt;

use super::error::{SwarmError, is_not_found};
use super::observe::tasks;
use super::service::{SecretRef, secret_name, service_name};
use crate::desired::Prepared;
use crate::namespace::Namespace;

/// How often a rollout is looked at.
const POLL: Duration = Duration::from_millis(300);

/// Makes sure the attachable overlay network exists (tasks, the proxy and a debugging
/// container can all join it).
pub(super) async fn ensure_network(docker: &Docker, ns: &Namespace) -> Result<(), SwarmError> {
    match docker.inspect_network(&ns.network, None).await {
        Ok(network) => {
            let overlay = network.driver.as_deref() == Some("overlay");
            if overlay && network.attachable == Some(true) {
                Ok(())
            } else {
                Err(SwarmError::NotOverlay(ns.network.clone()))
            }
        }
        Err(e) if is_not_found(&e) => {
            let request = NetworkCreateRequest {
                name: ns.network.clone(),
                driver: Some("overlay".to_owned()),
                attachable: Some(true),
                labels: Some(HashMap::from([(ns.label("managed"), "true".to_owned())])),
                ..Default::default()
            };
            docker
                .create_network(request)
                .await
                .map_err(SwarmError::engine("create the overlay network"))?;
            Ok(())
        }
        Err(e) => Err(SwarmError::engine("inspect the network")(e)),
    }
}

/// Pushes `image` (built on the manager) to `registry` and returns it pinned by digest
/// (`<registry>/<repo>:<tag>@sha256:…`): through the API the daemon does not pin, and a tag
/// alone could run different code on different nodes.
pub(super) async fn push(
    docker: &Docker,
    image: &str,
    registry: &str,
) -> Result<String, SwarmError> {
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let remote = format!("{registry}/{repo}");
    docker
        .tag_image(
            image,
            Some(TagImageOptions {
                repo: Some(remote.clone()),
                tag: Some(tag.to_owned()),
            }),
        )
        .await
        .map_err(SwarmError::engine(format!("tag {image} for the registry")))?;
    let options = PushImageOptions {
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let mut progress = docker.push_image(&remote, Some(options), None);
    while let Some(item) = progress.next().await {
        let item = item.map_err(SwarmError::engine(format!("push {remote}:{tag}")))?;
        if let Some(detail) = item.error_detail {
            return Err(SwarmError::Unsupported(format!(
                "cannot push {remote}:{tag}: {}",
                detail.message.unwrap_or_default()
            )));
        }
    }
    let inspected = docker
        .inspect_image(&format!("{remote}:{tag}"))
        .await
        .map_err(SwarmError::engine(format!("inspect {remote}:{tag}")))?;
    let digest = inspected
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| d.strip_prefix(&format!("{remote}@")).map(str::to_owned))
        .ok_or_else(|| {
            SwarmError::Unsupported(format!("the registry gave {remote}:{tag} no digest"))
        })?;
    Ok(format!("{remote}:{tag}@{digest}"))
}

/// faaso's secrets of `funko` on the Swarm, by name: (id, name).
async fn funko_secrets(
    docker: &Docker,
    ns: &Namespace,
    funko: &str,
) -> Result<Vec<(String, String)>, SwarmError> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![
            ns.managed_filter(),
            format!("{}={funko}", ns.label("funko")),
        ],
    )]);
    let secrets = docker
        .list_secrets(Some(ListSecretsOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(SwarmError::engine("list the secrets"))?;
    Ok(secrets
        .into_iter()
        .filter_map(|s| Some((s.id?, s.spec?.name?)))
        .collect())
}

/// Creates the versioned Swarm secrets `prepared` mounts, where missing.
pub(super) async fn ensure_secrets(
    docker: &Docker,
    ns: &Namespace,
    prepared: &Prepared,
) -> Result<Vec<SecretRef>, SwarmError> {
    let funko = prepared.funko.spec.name.as_str();
    let existing = funko_secrets(docker, ns, funko).await?;
    let mut refs = Vec::new();
    for mount in &prepared.secrets {
        let name = secret_name(ns, funko, &mount.key, &mount.version);
        let id = match existing.iter().find(|(_, n)| *n == name) {
            Some((id, _)) => id.clone(),
            None => {
                let value = std::fs::read(&mount.host_path).map_err(|e| {
                    SwarmError::Unsupported(format!("cannot read secret `{}`: {e}", mount.key))
                })?;
                let spec = SecretSpec {
                    name: Some(name.clone()),
                    labels: Some(HashMap::from([
                        (ns.label("managed"), "true".to_owned()),
                        (ns.label("funko"), funko.to_owned()),
                        (ns.label("secret"), mount.key.clone()),
                    ])),
                    data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
                    ..Default::default()
                };
                docker
                    .create_secret(spec)
                    .await
                    .map_err(SwarmError::engine(format!("create secret `{}`", mount.key)))?
                    .id
            }
        };
        refs.push(SecretRef {
            key: mount.key.clone(),
            id,
            name,
        });
    }
    Ok(refs)
}

/// Removes `funko`'s secrets that neither its service's spec nor a task meant to run mounts
/// (all of them when it has no service). Swarm refuses to delete one a service still
/// references; that one stays for a later pass.
pub(super) async fn remove_unused_secrets(
    docker: &Docker,
    ns: &Namespace,
    funko: &str,
) -> Result<usize, SwarmError> {
    let name = service_name(ns, funko);
    let mut specs = Vec::new();
    match docker.inspect_service(&name, None).await {
        Ok(service) => {
            specs.extend(service.spec.and_then(|s| s.task_template));
            // Listing the tasks of a service that is gone is an error, hence only here.
            let filters = [("service", name.as_str()), ("desired-state", "running")];
            let running = tasks(docker, &filters).await?;
            specs.extend(running.into_iter().filter_map(|t| t.spec));
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(SwarmError::engine("inspect the service")(e)),
    }
    let used: BTreeSet<String> = specs
        .into_iter()
        .filter_map(|t| t.container_spec?.secrets)
        .flatten()
        .filter_map(|s| s.secret_id)
        .collect();
    let mut removed = 0;
    for (id, _) in funko_secrets(docker, ns, funko).await? {
        if !used.contains(&id) && docker.delete_secret(&id).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The image (pinned by digest) `funko`'s service runs now, if it has a service.
pub(super) async fn running_image(
    docker: &Docker,
    ns: &Namespace,
    funko: &str,
) -> Result<Option<String>, SwarmError> {
    match docker.inspect_service(&service_name(ns, funko), None).await {
        Ok(service) => Ok(service
            .spec
            .and_then(|s| s.task_template?.container_spec?.image)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(SwarmError::engine("inspect the service")(e)),
    }
}

/// Creates the service, or updates it when its spec differs.
pub(super) async fn apply(docker: &Docker, spec: ServiceSpec) -> Result<(), SwarmError> {
    let name = spec.name.clone().unwrap_or_default();
    match docker
        .inspect_service(&name, None::<InspectServiceOptions>)
        .await
    {
        Ok(service) => {
            if service.spec.as_ref() == Some(&spec) {
                return Ok(());
            }
            let version = service.version.and_then(|v| v.index).unwrap_or(0);
            let options = UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            };
            docker
                .update_service(&name, spec, options, None)
                .await
                .map_err(SwarmError::engine(format!("update service {name}")))?;
        }
        Err(e) if is_not_found(&e) => {
            docker
                .create_service(spec, None)
                .await
                .map_err(SwarmError::engine(format!("create service {name}")))?;
        }
        Err(e) => return Err(SwarmError::engine(format!("inspect service {name}"))(e)),
    }
    Ok(())
}

/// Waits until `replicas` tasks of the service run `config_hash` (healthy: Swarm keeps a task
/// `starting` until its healthcheck passes) and no other config runs; a rollback is a failure.
pub(super) async fn wait_converged(
    docker: &Docker,
    ns: &Namespace,
    funko: &str,
    config_hash: &str,
    replicas: u32,
    patience: Duration,
) -> Result<(), String> {
    let name = service_name(ns, funko);
    let hash_label = ns.label("config-hash");
    // A week is past any rollout worth waiting for, and keeps the clock from overflowing.
    let deadline = Instant::now() + patience.min(Duration::from_secs(7 * 24 * 60 * 60));
    let mut last = String::from("no task started");
    loop {
        let service = docker
            .inspect_service(&name, None::<InspectServiceOptions>)
            .await
            .map_err(|e| format!("cannot inspect service {name}: {e}"))?;
        if let Some(status) = service.update_status {
            use ServiceUpdateStatusStateEnum as S;
            if matches!(
                status.state,
                Some(S::ROLLBACK_STARTED | S::ROLLBACK_COMPLETED | S::ROLLBACK_PAUSED | S::PAUSED)
            ) {
                return Err(format!(
                    "the new version never became healthy, so Swarm rolled service {name} back \
                     to the previous one ({})",
                    status.message.unwrap_or_default()
                ));
            }
        }
        let meant = tasks(docker, &[("service", &name), ("desired-state", "running")])
            .await
            .map_err(|e| e.to_string())?;
        let hash_of = |t: &bollard::models::Task| {
            t.spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(&hash_label).cloned())
                .unwrap_or_default()
        };
        let ours_running = meant
            .iter()
            .filter(|t| hash_of(t) == config_hash)
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .count();
        let others = meant.iter().filter(|t| hash_of(t) != config_hash).count();
        if ours_running == replicas as usize && others == 0 && meant.len() == replicas as usize {
            return Ok(());
        }
        let all = tasks(docker, &[("service", &name)])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(err) = all
            .iter()
            .filter(|t| hash_of(t) == config_hash)
            .filter_map(|t| t.status.as_ref()?.err.clone())
            .next()
        {
            last = err;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "service {name} did not converge within {}s: {ours_running} of {replicas} \
                 tasks run the new config (last task error: {last})",
                patience.as_secs()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Removes the funko's service, waits for its tasks to go, then removes its secrets.
pub(super) async fn remove(docker: &Docker, ns: &Namespace, funko: &str) -> Result<(), String> {
    let name = service_name(ns, funko);
    let id = match docker.inspect_service(&name, None).await {
        Ok(service) => service.id,
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(format!("cannot inspect service {name}: {e}")),
    };
    if let Some(id) = id {
        match docker.delete_service(&id).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(format!("cannot remove service {name}: {e}")),
        }
        // Its tasks go (their containers stopped and removed) after the service: by id, as a
        // name filter fails once the service is gone.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = tasks(docker, &[]).await.map_err(|e| e.to_string())?;
            let left = all
                .iter()
                .filter(|t| t.service_id.as_ref() == Some(&id))
                .count();
            if left == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{left} tasks of removed service {name} did not go"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    // A secret is freed only once the containers using it are gone on every node.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        remove_unused_secrets(docker, ns, funko)
            .await
            .map_err(|e| e.to_string())?;
        let left = funko_secrets(docker, ns, funko)
            .await
            .map_err(|e| e.to_string())?
            .len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{left} secrets of {funko} are still in use"));
        }
        tokio::time::sleep(POLL).await;
    }
}
