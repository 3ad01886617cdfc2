//! The Swarm backend: [`SwarmEngine`] runs each funko as one Docker Swarm service (named and
//! labelled by faaso's conventions) through the manager's API. Swarm owns the tasks: it places,
//! rolls (start-first, rolling back a version that never turns healthy) and reschedules them;
//! faaso builds the image once on the manager, pushes it to the registry the nodes pull from,
//! and deploys it pinned by digest.

mod deploy;
mod error;
mod logs;
mod observe;
mod plan;
mod registry;
mod service;

use std::collections::BTreeSet;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{LocalNodeState, TaskState};
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::backend::{
    Backend, Change, EngineError, InstanceDetails, InstanceLog, LogOptions, StepFailure,
};
use crate::desired::{Desired, Prepared};
use crate::docker::{DockerEngine, unix_seconds};
use crate::listener::Listener;
use crate::namespace::Namespace;
use crate::observe::Observed;
pub use error::SwarmError;
pub use plan::{DeployReason, SwarmStep, plan};
pub use service::{NoNewPrivileges, refusal, service_name};

/// The reconciler's engine on Docker Swarm.
#[derive(Debug, Clone)]
pub struct SwarmEngine {
    docker: Docker,
    /// The manager's own engine, where images are built.
    builder: DockerEngine,
    namespace: Namespace,
    registry: Option<String>,
    no_new_privileges: NoNewPrivileges,
}

impl SwarmEngine {
    /// Connects to the Swarm manager named by `DOCKER_HOST`, to act within `namespace`, pushing
    /// images to `registry` (`host:port`, which every node must be able to pull from; only
    /// deploying needs it).
    pub async fn connect(
        namespace: Namespace,
        registry: Option<String>,
    ) -> Result<Self, SwarmError> {
        let registry = registry.filter(|r| !r.is_empty());
        let hint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let connect_error = |source: bollard::errors::Error| SwarmError::Connect {
            hint: hint.clone(),
            source: source.into(),
        };
        let docker = Docker::connect_with_defaults().map_err(connect_error)?;
        let docker = docker.negotiate_version().await.map_err(connect_error)?;
        let info = docker.info().await.map_err(connect_error)?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.local_node_state != Some(LocalNodeState::ACTIVE)
            || swarm.control_available != Some(true)
        {
            return Err(SwarmError::NotManager {
                hint,
                state: swarm
                    .local_node_state
                    .map_or("unknown".to_owned(), |s| s.to_string()),
            });
        }
        let version = docker.client_version();
        let no_new_privileges = if (version.major_version, version.minor_version) >= (1, 44) {
            NoNewPrivileges::PerService
        } else if enforcing_nodes(&docker).await? > 0 {
            NoNewPrivileges::ByDaemon
        } else {
            NoNewPrivileges::Unavailable
        };
        let builder = DockerEngine::connect(namespace.clone())
            .await
            .map_err(|e| SwarmError::Unsupported(e.to_string()))?;
        Ok(Self {
            docker,
            builder,
            namespace,
            registry,
            no_new_privileges,
        })
    }

    /// Why `prepared` cannot run on this Swarm as its spec says (shown by `faaso plan`).
    pub fn refusal(&self, prepared: &Prepared) -> Option<String> {
        refusal(prepared, self.no_new_privileges)
    }

    /// The namespace it acts in.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Every running task of a funko service that has an address on the network (what a proxy
    /// routes).
    pub async fn running_instances(&self) -> Result<Vec<crate::observe::Instance>, SwarmError> {
        let instances = observe::instances(&self.docker, &self.namespace).await?;
        Ok(instances
            .into_iter()
            .filter(|i| i.number > 0 && i.ip.is_some())
            .collect())
    }

    /// Pushes `image` (on the manager) to the registry; returns it pinned by digest.
    pub async fn push(&self, image: &str) -> Result<String, SwarmError> {
        let registry = self.registry.as_deref().ok_or(SwarmError::NoRegistry)?;
        deploy::push(&self.docker, image, registry).await
    }

    /// Makes sure the attachable overlay network exists.
    pub async fn ensure_network(&self) -> Result<(), SwarmError> {
        deploy::ensure_network(&self.docker, &self.namespace).await
    }

    /// The manager's own engine, where funko images are built and kept.
    pub fn builder(&self) -> &DockerEngine {
        &self.builder
    }

    /// The manager's API client (for faaso's own services, such as the proxy).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn deploy(
        &self,
        step: &SwarmStep,
        prepared: Option<&Prepared>,
        listener: &dyn Listener<SwarmStep>,
    ) -> Result<(), StepFailure> {
        let SwarmStep::Deploy {
            funko,
            image,
            config_hash,
            replicas,
            build,
            ..
        } = step
        else {
            return Ok(());
        };
        let fail = |error: String| StepFailure {
            key: config_hash.clone(),
            error,
        };
        let prepared =
            prepared.ok_or_else(|| fail(format!("funko `{funko}` has no valid spec")))?;
        if let Some(reason) = self.refusal(prepared) {
            return Err(fail(reason));
        }
        if *build {
            self.builder
                .build_image(&prepared.context, image, |line| {
                    listener.build_output(funko, line)
                })
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let ns = &self.namespace;
        let before = deploy::running_image(&self.docker, ns, funko)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let pinned = self.push(image).await.map_err(|e| fail(e.to_string()))?;
        let secrets = deploy::ensure_secrets(&self.docker, ns, prepared)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let spec = service::service_spec(
            ns,
            prepared,
            &pinned,
            &secrets,
            *replicas,
            self.no_new_privileges,
        )
        .map_err(fail)?;
        deploy::apply(&self.docker, spec)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let health = &prepared.funko.spec.healthcheck;
        // Saturating: funko.yml's bounds keep these far from overflow, but a panic here would
        // take the server down with one funko.
        let per_task = health.ready_within().saturating_add(health.interval.0);
        let patience =
            Duration::from_secs(60).saturating_add(per_task.saturating_mul((*replicas).max(1)));
        deploy::wait_converged(&self.docker, ns, funko, config_hash, *replicas, patience)
            .await
            .map_err(fail)?;
        // The previous value stays for a rollback; older ones go.
        if let Err(error) = deploy::remove_unused_secrets(&self.docker, ns, funko).await {
            tracing::warn!(%funko, %error, "Old secrets of the funko could not be removed.");
        }
        // The version it ran before stays in the registry too, for a rollback.
        if before.as_deref() != Some(pinned.as_str()) {
            let keep = [Some(pinned.as_str()), before.as_deref()];
            self.prune_registry(funko, keep.into_iter().flatten()).await;
        }
        Ok(())
    }

    /// Deletes the registry's versions of `funko` other than the images in `keep`; a registry
    /// that cannot be pruned is only warned about (deploys go on).
    async fn prune_registry<'a>(&self, funko: &str, keep: impl Iterator<Item = &'a str>) {
        let Some(host) = self.registry.as_deref() else {
            return;
        };
        let keep = keep
            .filter_map(registry::pinned_digest)
            .map(str::to_owned)
            .collect();
        let repo = format!("{}-{funko}", self.namespace.prefix);
        let pruned = match registry::Registry::new(host) {
            Ok(registry) => registry.prune(&repo, &keep).await,
            Err(error) => Err(error),
        };
        match pruned {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(%funko, versions = n, "Deleted old versions from the registry.")
            }
            Err(error) => {
                tracing::warn!(%funko, %error, "Old versions of the funko stay in the registry.");
            }
        }
    }
}

/// How many nodes say their daemon runs every container with no-new-privileges.
async fn enforcing_nodes(docker: &Docker) -> Result<usize, SwarmError> {
    let nodes = docker
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map_err(SwarmError::engine("list the nodes"))?;
    let label = service::NO_NEW_PRIVILEGES_LABEL;
    Ok(nodes
        .iter()
        .filter(|node| {
            let engine = node.description.as_ref().and_then(|d| d.engine.as_ref());
            let labels = engine.and_then(|e| e.labels.as_ref());
            labels
                .and_then(|l| l.get(label))
                .is_some_and(|v| v == "true")
        })
        .count())
}

impl Backend for SwarmEngine {
    type Step = SwarmStep;

    async fn clean_up_build(&self, prepared: &Prepared) {
        self.builder.abandon_build(&prepared.image).await;
    }

    async fn observe(&self) -> Result<Observed, EngineError> {
        let (instances, images) = tokio::join!(
            observe::instances(&self.docker, &self.namespace),
            self.builder.image_tags()
        );
        Ok(Observed {
            instances: instances?,
            images: images?,
        })
    }

    fn plan(&self, desired: &Desired, observed: &Observed) -> Vec<SwarmStep> {
        plan(desired, observed)
    }

    async fn prepare(&self, steps: &[SwarmStep]) -> Result<(), EngineError> {
        if steps.iter().any(|s| matches!(s, SwarmStep::Deploy { .. })) {
            deploy::ensure_network(&self.docker, &self.namespace).await?;
        }
        Ok(())
    }

    async fn execute(
        &self,
        step: &SwarmStep,
        prepared: Option<&Prepared>,
        listener: &dyn Listener<SwarmStep>,
    ) -> Result<(), StepFailure> {
        match step {
            SwarmStep::Deploy { .. } => self.deploy(step, prepared, listener).await,
            SwarmStep::Remove { funko } => {
                deploy::remove(&self.docker, &self.namespace, funko)
                    .await
                    .map_err(|error| StepFailure {
                        key: String::new(),
                        error,
                    })?;
                self.prune_registry(funko, std::iter::empty()).await;
                Ok(())
            }
        }
    }

    /// The manager's own copies: what the builder keeps (the registry keeps every pushed tag).
    async fn prune_images(&self, keep: &BTreeSet<String>) -> Result<usize, EngineError> {
        self.builder.prune_images(keep).await
    }

    fn changes(&self) -> BoxStream<'static, Result<Change, EngineError>> {
        let filters = std::collections::HashMap::from([(
            "type".to_owned(),
            vec!["service".to_owned(), "node".to_owned()],
        )]);
        let options = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker
            .events(Some(options))
            .map(|event| event.map(|_| Change::Other).map_err(EngineError::new))
            .boxed()
    }

    async fn inspect(&self, funko: &str) -> Result<Vec<InstanceDetails>, EngineError> {
        let ns = &self.namespace;
        let name = service_name(ns, funko);
        let services = observe::managed_services(&self.docker, ns).await?;
        let tasks = observe::tasks(&self.docker, &[("service", &name)]).await?;
        let addresses = observe::task_addresses(&self.docker, ns).await?;
        Ok(tasks
            .iter()
            .filter_map(|task| {
                let instance = observe::task_instance(task, &services, &addresses, ns)?;
                let status = task.status.as_ref()?;
                // Swarm keeps a task `starting` until its healthcheck passes: a running one is
                // healthy, and running since its status last changed.
                let running = status.state == Some(TaskState::RUNNING);
                let since = status.timestamp.as_deref().and_then(unix_seconds);
                Some(InstanceDetails {
                    instance,
                    status: status.state.map_or("unknown".to_owned(), |s| s.to_string()),
                    started_at: since.filter(|_| running),
                    health: if running {
                        Some("healthy".to_owned())
                    } else {
                        status.err.clone()
                    },
                })
            })
            .collect())
    }

    fn vouches_for_health(&self) -> bool {
        true
    }

    async fn restart(&self, _id: &str) -> Result<(), EngineError> {
        Err(SwarmError::Unsupported(
            "restarting one task is not possible on Swarm (Swarm replaces failed tasks itself); \
             `faaso reconcile --retry` redeploys a funko"
                .to_owned(),
        )
        .into())
    }

    async fn logs(
        &self,
        funko: &str,
        options: LogOptions,
    ) -> Result<Vec<InstanceLog>, EngineError> {
        Ok(logs::logs(&self.docker, &self.namespace, funko, options).await?)
    }
}
