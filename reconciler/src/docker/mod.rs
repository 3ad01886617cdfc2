//! The Docker backend: [`DockerEngine`] runs funko instances as numbered containers on one
//! Docker engine through bollard. Everything bollard is in this folder; the rest of the
//! reconciler sees only the [`Backend`] and [`Containers`] traits and the model.

mod container;
mod error;
mod events;
mod failed_build;
mod image;
mod inspect;
mod logs;
pub(crate) use logs::logs_query;
mod park;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use faaso_schema::{BuildContext, Healthcheck};
use futures_util::stream::BoxStream;

use crate::backend::{
    Backend, Change, EngineError, InstanceDetails, InstanceLog, LogOptions, Started, StepFailure,
};
use crate::desired::{Desired, Prepared};
use crate::execute::{Containers, execute, prepare};
use crate::listener::Listener;
use crate::namespace::Namespace;
use crate::observe::{FUNKO_PORT, Instance, InstanceState, Listed, Observed, read_instance};
use crate::plan::{Step, plan};
use crate::probe::probe;
use crate::prune::{BuiltImage, images_to_remove};
use container::{STOP_GRACE_SECS, container_config, container_name};
pub use error::DockerError;
use error::{is_conflict, is_not_found};
pub use image::BuildOutcome;
pub(crate) use inspect::unix_seconds;

/// Probes this often while waiting for a new instance: every 10 ms for its first two seconds
/// (most funkos, and every instance started again to serve held requests, are ready by then),
/// every 50 ms after, and less often the longer it waits ([`probe_pause`]).
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_EARLY: Duration = Duration::from_millis(10);
const EARLY: Duration = Duration::from_secs(2);
/// The container's state is checked this often while waiting, to fail fast when it exits.
const STATE_EVERY: Duration = Duration::from_millis(500);
/// The longest pause between probes of an instance that is slow to get ready: a funko whose
/// model loads for minutes costs a probe a second, not twenty, and is routed within a second
/// of answering.
const PROBE_SLOWEST: Duration = Duration::from_secs(1);
/// How many containers are created and started at once on one engine: a hundred funkos
/// rolling out together take turns at the engine (their readiness waits take no turn), so the
/// first are served as soon as they would be alone.
const STARTS_AT_ONCE: usize = 8;

/// The pause before the next readiness probe, `waited` into the wait: 10 ms for the first
/// 2 s, then 50 ms, then a hundredth of the wait so far (from 5 s on), at most
/// [`PROBE_SLOWEST`] (from 100 s on).
fn probe_pause(waited: Duration) -> Duration {
    if waited < EARLY {
        PROBE_EARLY
    } else {
        (waited / 100).clamp(PROBE_EVERY, PROBE_SLOWEST)
    }
}

/// The reconciler's engine on Docker.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    namespace: Namespace,
    /// The builds running now, for clearing one cut short.
    builds: failed_build::Builds,
    /// Turns at creating and starting a container (see [`STARTS_AT_ONCE`]).
    starts: std::sync::Arc<tokio::sync::Semaphore>,
}

impl DockerEngine {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket), agreeing on an
    /// API version, to act within `namespace`.
    pub async fn connect(namespace: Namespace) -> Result<Self, DockerError> {
        Ok(Self {
            docker: error::connect().await?,
            namespace,
            builds: failed_build::Builds::default(),
            starts: std::sync::Arc::new(tokio::sync::Semaphore::new(STARTS_AT_ONCE)),
        })
    }

    /// Connects to the engine listening on the Unix socket `socket`, to act within `namespace`.
    pub async fn connect_at(
        socket: &std::path::Path,
        namespace: Namespace,
    ) -> Result<Self, DockerError> {
        Ok(Self {
            docker: error::connect_at(socket).await?,
            namespace,
            builds: failed_build::Builds::default(),
            starts: std::sync::Arc::new(tokio::sync::Semaphore::new(STARTS_AT_ONCE)),
        })
    }

    /// The namespace it acts in.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Every running container that is a funko instance (managed or zero-magic), as proxy-mode
    /// discovery routes them: no image list, nothing stopped.
    pub async fn running_instances(&self) -> Result<Vec<Instance>, DockerError> {
        let listed = self.list_containers(None, false).await?;
        Ok(listed
            .into_iter()
            .filter_map(|summary| read_instance(self.listed(summary), &self.namespace))
            .collect())
    }

    /// The instances faaso created for `funko`, running or not.
    pub async fn funko_instances(&self, funko: &str) -> Result<Vec<Instance>, DockerError> {
        let ns = &self.namespace;
        let filter = format!("{}={funko}", ns.label("funko"));
        let listed = self.list(("label", filter), true).await?;
        Ok(listed
            .into_iter()
            .filter_map(|summary| read_instance(self.listed(summary), ns))
            .filter(|instance| instance.managed && instance.funko == funko)
            .collect())
    }

    /// Builds `context` as `image` unless the engine has it; each line of output goes to
    /// `on_output`.
    pub async fn build_image(
        &self,
        context: &BuildContext,
        image: &str,
        on_output: impl Fn(&str),
    ) -> Result<BuildOutcome, DockerError> {
        image::build_image(
            &self.docker,
            &self.builds,
            &self.namespace,
            context,
            image,
            on_output,
        )
        .await
    }

    /// Every `repo:tag` the engine has, with when its image was built (seconds since the Unix
    /// epoch).
    pub async fn image_tags(&self) -> Result<BTreeMap<String, u64>, DockerError> {
        image::image_tags(&self.docker).await
    }

    /// Removes every image built for `funko` (`faaso purge`); returns their tags. An image a
    /// container still uses is not removed: that is an error naming it.
    pub async fn remove_funko_images(&self, funko: &str) -> Result<Vec<String>, DockerError> {
        image::remove_funko_images(&self.docker, &self.namespace, funko).await
    }

    async fn list(
        &self,
        filter: (&str, String),
        all: bool,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = HashMap::from([(filter.0, vec![filter.1])]);
        self.list_containers(Some(&filters), all).await
    }

    async fn list_containers(
        &self,
        filters: Option<&HashMap<&str, Vec<String>>>,
        all: bool,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let mut options = ListContainersOptionsBuilder::new().all(all);
        if let Some(filters) = filters {
            options = options.filters(filters);
        }
        self.docker
            .list_containers(Some(options.build()))
            .await
            .map_err(|source| DockerError::ListContainers {
                source: source.into(),
            })
    }

    /// What a listing says of one container, its labels not read yet.
    fn listed(&self, summary: ContainerSummary) -> Listed {
        let ip = summary
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&self.namespace.network))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok());
        Listed {
            id: summary.id.unwrap_or_default(),
            name: summary
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            labels: summary.labels.unwrap_or_default(),
            image: summary.image.unwrap_or_default(),
            state: instance_state(summary.state),
            ip,
        }
    }

    async fn address(&self, id: &str) -> Result<SocketAddr, DockerError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|source| DockerError::Inspect {
                id: id.to_owned(),
                source: source.into(),
            })?;
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&self.namespace.network))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .ok_or_else(|| DockerError::NotReady {
                id: id.to_owned(),
                reason: format!("it has no address on network `{}`", self.namespace.network),
            })?;
        Ok(SocketAddr::new(ip, FUNKO_PORT))
    }

    /// `Some(reason)` when the container no longer runs at the address it started with.
    async fn gone(&self, started: &Started) -> Option<String> {
        let info = self
            .docker
            .inspect_container(&started.id, None)
            .await
            .ok()?;
        let state = info.state?;
        match state.status {
            Some(ContainerStateStatusEnum::RUNNING) => {
                let ip = info
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&self.namespace.network))
                    .and_then(|e| e.ip_address)
                    .and_then(|ip| ip.parse::<IpAddr>().ok());
                (ip != Some(started.addr.ip()))
                    .then(|| "it came back at another address after a crash".to_owned())
            }
            // "restarting" is Docker's restart policy at work after a crash.
            status => Some(format!(
                "it stopped running (state {}, exit code {})",
                status.map_or("unknown".to_owned(), |s| s.to_string()),
                state.exit_code.unwrap_or_default()
            )),
        }
    }
}

fn instance_state(state: Option<ContainerSummaryStateEnum>) -> InstanceState {
    match state {
        Some(ContainerSummaryStateEnum::RUNNING) => InstanceState::Running,
        Some(ContainerSummaryStateEnum::RESTARTING) => InstanceState::Restarting,
        Some(ContainerSummaryStateEnum::PAUSED) => InstanceState::Paused,
        Some(ContainerSummaryStateEnum::EXITED) => InstanceState::Exited,
        _ => InstanceState::Stopped,
    }
}

impl Backend for DockerEngine {
    type Step = Step;

    async fn clean_up_build(&self, prepared: &Prepared) {
        self.abandon_build(&prepared.image).await;
    }

    async fn observe(&self) -> Result<Observed, EngineError> {
        let ns = &self.namespace;
        // Docker ORs values of one filter but ANDs filters: two lists, asked at once.
        let (managed, named) = tokio::join!(
            self.list(("label", ns.managed_filter()), true),
            self.list(("name", format!("{}-", ns.prefix)), true)
        );
        let (managed, named) = (managed?, named?);
        let mut seen = BTreeSet::new();
        let prefix = format!("{}-", ns.prefix);
        let instances = managed
            .into_iter()
            .chain(named)
            .filter(|summary| seen.insert(summary.id.clone()))
            .filter_map(|summary| read_instance(self.listed(summary), ns))
            // The reconciler's selection: what faaso created, and zero-magic `<prefix>-<x>`
            // containers; not a container someone ran by hand from a faaso image (routing
            // takes those, the reconciler has nothing to say about them).
            .filter(|instance| instance.managed || instance.name.starts_with(&prefix))
            .collect();
        let images = image::image_tags(&self.docker).await?;
        Ok(Observed { instances, images })
    }

    fn plan(&self, desired: &Desired, observed: &Observed) -> Vec<Step> {
        plan(desired, observed)
    }

    async fn prepare(&self, steps: &[Step]) -> Result<(), EngineError> {
        prepare(self, steps).await
    }

    async fn execute(
        &self,
        step: &Step,
        prepared: Option<&Prepared>,
        listener: &dyn Listener<Step>,
    ) -> Result<(), StepFailure> {
        execute(self, step, prepared, listener).await
    }

    async fn prune_images(&self, keep: &BTreeSet<String>) -> Result<usize, EngineError> {
        Ok(self.prune(keep).await?)
    }

    fn changes(&self) -> BoxStream<'static, Result<Change, EngineError>> {
        events::changes(&self.docker, &self.namespace)
    }

    async fn inspect(&self, funko: &str) -> Result<Vec<InstanceDetails>, EngineError> {
        Ok(inspect::inspect(self, funko).await?)
    }

    async fn restart(&self, id: &str) -> Result<(), EngineError> {
        inspect::restart(self, id).await
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        Containers::pause(self, id).await
    }

    async fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> Result<(), EngineError> {
        Containers::wait_ready(self, started, healthcheck).await
    }

    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.unpause_container(id).await?)
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        Containers::stop(self, id).await
    }

    async fn resume(&self, id: &str, paused: bool) -> Result<SocketAddr, EngineError> {
        Containers::resume(self, id, paused).await
    }

    async fn logs(
        &self,
        funko: &str,
        options: LogOptions,
    ) -> Result<Vec<InstanceLog>, EngineError> {
        Ok(logs::logs(self, funko, options).await?)
    }
}

/// The container operations, with Docker's own error.
impl DockerEngine {
    /// Clears what a build of `image` cut short leaves behind (its running step, its step
    /// images).
    pub async fn abandon_build(&self, image: &str) {
        failed_build::abandon(&self.docker, &self.builds, image).await;
    }

    async fn create_network(&self) -> Result<(), DockerError> {
        let network = &self.namespace.network;
        match self.docker.inspect_network(network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(source) => {
                return Err(DockerError::Network {
                    network: network.clone(),
                    source: source.into(),
                });
            }
        }
        let request = NetworkCreateRequest {
            name: network.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(HashMap::from([(
                self.namespace.label("managed"),
                "true".to_owned(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Another faaso process created it meanwhile.
            Err(e) if is_conflict(&e) => Ok(()),
            Err(source) => Err(DockerError::Network {
                network: network.clone(),
                source: source.into(),
            }),
        }
    }

    async fn build_funko(
        &self,
        prepared: &Prepared,
        output: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), DockerError> {
        image::build_image(
            &self.docker,
            &self.builds,
            &self.namespace,
            &prepared.context,
            &prepared.image,
            output,
        )
        .await
        .map(|_| ())
    }

    async fn start_instance(
        &self,
        prepared: &Prepared,
        number: u32,
    ) -> Result<Started, DockerError> {
        let name = container_name(
            &self.namespace,
            prepared.funko.spec.name.as_str(),
            number,
            &prepared.config_hash,
        );
        // A turn at the engine for the create and start; the readiness wait after takes none.
        let _turn = self.starts.acquire().await;
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let config = container_config(&self.namespace, prepared, number);
        let expected = config.labels.clone().unwrap_or_default();
        let id = match self.docker.create_container(Some(options), config).await {
            Ok(created) => created.id,
            // The name is taken: by this very instance if a server killed between its create
            // and its start left it (Docker finishes a request whose client died). Names carry
            // the config hash, so one whose labels match is adopted, not fought over.
            Err(source) => {
                let adopted = if is_conflict(&source) {
                    self.same_instance(&name, &expected).await
                } else {
                    None
                };
                adopted.ok_or_else(|| DockerError::Create {
                    name: name.clone(),
                    source: source.into(),
                })?
            }
        };
        match self.docker.start_container(&id, None).await {
            // 304: an adopted one already runs.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(source) => {
                let _ = self.remove_container(&id).await;
                return Err(DockerError::Start {
                    name,
                    source: source.into(),
                });
            }
        }
        let addr = self.address(&id).await?;
        Ok(Started {
            id,
            name,
            addr,
            request_timeout: prepared.funko.spec.timeout.0,
            cors: prepared.funko.spec.cors.clone(),
        })
    }

    /// The id of the container named `name` if it is the instance these labels describe.
    async fn same_instance(
        &self,
        name: &str,
        expected: &HashMap<String, String>,
    ) -> Option<String> {
        let found = self.docker.inspect_container(name, None).await.ok()?;
        let labels = found.config?.labels.unwrap_or_default();
        let same = expected.iter().all(|(k, v)| labels.get(k) == Some(v));
        found.id.filter(|_| same)
    }

    async fn wait_instance_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> Result<(), DockerError> {
        let limit = healthcheck.ready_within();
        let begun = Instant::now();
        let mut last_state_check = Instant::now();
        let not_ready = |reason: String| DockerError::NotReady {
            id: started.name.clone(),
            reason,
        };
        loop {
            let answered = probe(started.addr, &healthcheck.path, healthcheck.timeout.0).await;
            // A probe reaches an address, not a container: one that crashed may have freed its
            // address for another (Docker's bridge hands out the lowest free one), so an answer
            // counts only while the instance still runs there.
            if answered || last_state_check.elapsed() >= STATE_EVERY {
                last_state_check = Instant::now();
                match self.gone(started).await {
                    None if answered => return Ok(()),
                    None => {}
                    Some(reason) => {
                        let logs = logs::tail(&self.docker, &started.id, 10).await;
                        return Err(not_ready(format!("{reason}; its last output:\n{logs}")));
                    }
                }
            }
            if begun.elapsed() >= limit {
                return Err(not_ready(format!(
                    "GET {} did not answer 2xx within {:?} (start_period + interval × retries)",
                    healthcheck.path, limit
                )));
            }
            tokio::time::sleep(probe_pause(begun.elapsed())).await;
        }
    }

    async fn prune(&self, keep: &BTreeSet<String>) -> Result<usize, DockerError> {
        let filters = HashMap::from([("label", vec![self.namespace.managed_filter()])]);
        let options = ListImagesOptionsBuilder::new()
            .all(false)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|source| DockerError::ListImages {
                source: source.into(),
            })?;
        let funko_label = self.namespace.label("funko");
        let images: Vec<BuiltImage> = listed
            .into_iter()
            .map(|image| BuiltImage {
                funko: image.labels.get(&funko_label).cloned().unwrap_or_default(),
                id: image.id,
                tags: image.repo_tags,
                created: image.created,
            })
            .collect();
        let mut removed = 0;
        for id in images_to_remove(&images, keep) {
            let options = RemoveImageOptionsBuilder::new().noprune(false).build();
            match self.docker.remove_image(&id, Some(options), None).await {
                Ok(_) => removed += 1,
                // Still used by a container (a stopped one, say): it goes on a later pass.
                Err(error) => tracing::debug!(%id, %error, "image kept"),
            }
        }
        Ok(removed)
    }

    /// Stops (SIGTERM, grace period, SIGKILL) and removes a container; a missing one is fine.
    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        // A paused container would sit out the whole grace period frozen: thaw it, so it can
        // end on SIGTERM. Any error (not paused, not there) is the stop's to report.
        let _ = self.unpause_container(id).await;
        let stop = StopContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECS as i32)
            .build();
        match self.docker.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(source) => {
                return Err(DockerError::Remove {
                    id: id.to_owned(),
                    source: source.into(),
                });
            }
        }
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: removal already in progress.
            Err(e) if is_conflict(&e) => Ok(()),
            Err(source) => Err(DockerError::Remove {
                id: id.to_owned(),
                source: source.into(),
            }),
        }
    }
}

impl Containers for DockerEngine {
    async fn ensure_network(&self) -> Result<(), EngineError> {
        Ok(self.create_network().await?)
    }

    async fn build(
        &self,
        prepared: &Prepared,
        output: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), EngineError> {
        Ok(self.build_funko(prepared, output).await?)
    }

    async fn start(&self, prepared: &Prepared, number: u32) -> Result<Started, EngineError> {
        Ok(self.start_instance(prepared, number).await?)
    }

    async fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> Result<(), EngineError> {
        Ok(self.wait_instance_ready(started, healthcheck).await?)
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.pause_container(id).await?)
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.stop_kept(id).await?)
    }

    async fn resume(&self, id: &str, paused: bool) -> Result<SocketAddr, EngineError> {
        Ok(self.resume_container(id, paused).await?)
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.remove_container(id).await?)
    }

    async fn remove_stopped(&self, id: &str) -> Result<bool, EngineError> {
        // Not forced: Docker refuses (409) to remove a container that runs or is paused.
        let options = RemoveContainerOptionsBuilder::new().v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(e) if is_conflict(&e) => {
                // A paused one is not running either: it goes the whole way (thawed, stopped).
                let inspected = self.docker.inspect_container(id, None).await;
                let paused = inspected.is_ok_and(|c| c.state.and_then(|s| s.paused) == Some(true));
                if paused {
                    self.remove_container(id).await?;
                }
                Ok(paused)
            }
            Err(source) => Err(DockerError::Remove {
                id: id.to_owned(),
                source: source.into(),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_instance_is_probed_less_often_up_to_once_a_second() {
        assert_eq!(probe_pause(Duration::ZERO), PROBE_EARLY);
        assert_eq!(probe_pause(Duration::from_secs(3)), PROBE_EVERY);
        assert_eq!(probe_pause(Duration::from_secs(5)), PROBE_EVERY);
        assert_eq!(
            probe_pause(Duration::from_secs(30)),
            Duration::from_millis(300)
        );
        assert_eq!(probe_pause(Duration::from_secs(3600)), PROBE_SLOWEST);
    }
}
