//! `faaso proxy up|down` on a Swarm: the proxy as the global service `<prefix>-proxy`, one task
//! on every node publishing its port in host mode (Swarm's ingress needs IPVS), attached to the
//! funkos' overlay network, its route table read from the manager's running tasks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Mount, MountType, NetworkAttachmentConfig, ServiceSpec,
    ServiceSpecMode, TaskSpec, TaskSpecContainerSpec, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::UpdateServiceOptions;
use faaso_reconciler::swarm::SwarmEngine;

use super::ProxyArgs;
use super::container::{INNER_PORT, Launch, ensure_image, healthy, namespace_args};
use crate::cmd::Global;

/// Where the proxies on every node read the manager's tasks.
const MANAGER_API: &str = "FAASO_SWARM_API";

fn service_name(global: &Global) -> String {
    format!("{}-proxy", global.prefix)
}

/// Creates or updates the global proxy service and waits until every node answers.
pub async fn up(global: &Global, args: &ProxyArgs, port: u16) -> anyhow::Result<ExitCode> {
    if args.tls.enabled() {
        bail!("TLS on the Swarm proxy is not supported yet: run `faaso proxy up` without it");
    }
    let manager_api = std::env::var(MANAGER_API)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| {
            format!(
                "the proxy on every node reads the manager's tasks over its API: set \
                 {MANAGER_API} to an address every node reaches (scripts/swarm-lab env prints \
                 the lab's)"
            )
        })?;
    let ns = global.namespace();
    let engine = SwarmEngine::connect(ns.clone(), global.registry.clone()).await?;
    engine.ensure_network().await?;
    let docker = engine.client();
    let image = ensure_image(docker, &ns).await?;
    let pinned = engine.push(&image).await?;
    let launch = Launch::proxy(args, &global.state_dir)?;
    let mut cmd = namespace_args(&ns);
    cmd.extend(["--backend".to_owned(), "swarm".to_owned()]);
    cmd.extend(launch.args.iter().cloned());
    let mut env = launch.env.clone();
    env.push(format!("DOCKER_HOST={manager_api}"));
    let name = service_name(global);
    let spec = ServiceSpec {
        name: Some(name.clone()),
        labels: Some(HashMap::from([(ns.label("role"), "proxy".to_owned())])),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(pinned.clone()),
                args: Some(cmd),
                env: Some(env),
                read_only: Some(true),
                capability_drop: Some(vec!["ALL".to_owned()]),
                mounts: Some(vec![Mount {
                    target: Some("/tmp".to_owned()),
                    typ: Some(MountType::TMPFS),
                    ..Default::default()
                }]),
                stop_grace_period: Some(args.shutdown_grace.as_nanos() as i64),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(ns.network.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(INNER_PORT)),
                published_port: Some(i64::from(port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    };
    match docker.inspect_service(&name, None).await {
        Ok(existing) => {
            let version = existing.version.and_then(|v| v.index).unwrap_or(0);
            let options = UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            };
            docker
                .update_service(&name, spec, options, None)
                .await
                .with_context(|| format!("updating service {name}"))?;
        }
        Err(_) => {
            docker
                .create_service(spec, None)
                .await
                .with_context(|| format!("creating service {name}"))?;
        }
    }
    let nodes = docker
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .context("listing the nodes")?;
    let addresses: Vec<IpAddr> = nodes
        .iter()
        .filter_map(|n| n.status.as_ref()?.addr.as_deref()?.parse().ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    // Its own tasks first: another service may hold the port and answer in its place.
    loop {
        let filters = HashMap::from([
            ("service".to_owned(), vec![name.clone()]),
            ("desired-state".to_owned(), vec!["running".to_owned()]),
        ]);
        let options = bollard::query_parameters::ListTasksOptions {
            filters: Some(filters),
        };
        let tasks = docker
            .list_tasks(Some(options))
            .await
            .context("listing the proxy's tasks")?;
        let running = tasks
            .iter()
            .filter(|t| {
                let state = t.status.as_ref().and_then(|s| s.state);
                state == Some(bollard::models::TaskState::RUNNING)
            })
            .count();
        if running == addresses.len() && tasks.len() == running {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{running} of {} proxy tasks run (is port {port} free on every node?); see \
                 `docker service ps {name}`",
                addresses.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for addr in &addresses {
        while !healthy(*addr, port, false).await {
            if Instant::now() > deadline {
                bail!(
                    "the proxy on node {addr} never answered {addr}:{port}/healthz; see `docker service ps {name}`"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for addr in &addresses {
        println!("faaso proxy is up: http://{addr}:{port}/funko/<name>/ (service {name})");
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the global proxy service.
pub async fn down(global: &Global) -> anyhow::Result<ExitCode> {
    let engine = SwarmEngine::connect(global.namespace(), None).await?;
    let name = service_name(global);
    match engine.client().delete_service(&name).await {
        Ok(()) => println!("faaso proxy is down (service {name} removed)"),
        Err(_) => println!("faaso proxy was not running"),
    }
    Ok(ExitCode::SUCCESS)
}
