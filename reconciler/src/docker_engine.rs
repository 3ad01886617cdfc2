//! `DockerEngine`: the `Engine` on a real Docker engine through bollard.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerStateStatusEnum, ContainerSummaryStateEnum, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    StopContainerOptionsBuilder,
};
use faaso_schema::Healthcheck;
use futures_util::StreamExt;

use crate::container::{FUNKO_PORT, STOP_GRACE_SECS, container_config, container_name};
use crate::desired::Prepared;
use crate::docker::{DockerError, is_not_found};
use crate::engine::{Engine, Started};
use crate::image::{build_image, image_tags};
use crate::model::{Instance, InstanceState, Observed};
use crate::namespace::Namespace;
use crate::probe::probe;
use crate::prune::{BuiltImage, images_to_remove};

/// Probes this often while waiting for a new instance: readiness is seen within ~50 ms.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// The container's state is checked this often while waiting, to fail fast when it exits.
const STATE_EVERY: Duration = Duration::from_millis(500);

/// The reconciler's engine on Docker.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    namespace: Namespace,
}

impl DockerEngine {
    /// An engine acting on `docker` within `namespace`.
    pub fn new(docker: Docker, namespace: Namespace) -> Self {
        Self { docker, namespace }
    }

    /// The Docker client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The namespace it acts in.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    async fn list(
        &self,
        filter: (&str, String),
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let filters = HashMap::from([(filter.0, vec![filter.1])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|source| DockerError::ListContainers { source })
    }

    /// The last lines a container printed, for error reports.
    pub async fn log_tail(&self, id: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text.trim().to_owned()
    }

    async fn address(&self, id: &str) -> Result<SocketAddr, DockerError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|source| DockerError::Inspect {
                id: id.to_owned(),
                source,
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

    /// `Some(reason)` when the container is no longer running.
    async fn exited(&self, id: &str) -> Option<String> {
        let info = self.docker.inspect_container(id, None).await.ok()?;
        let state = info.state?;
        match state.status {
            Some(ContainerStateStatusEnum::RUNNING) => None,
            // "restarting" is Docker's restart policy at work after a crash.
            status => Some(format!(
                "it stopped running (state {}, exit code {})",
                status.map_or("unknown".to_owned(), |s| s.to_string()),
                state.exit_code.unwrap_or_default()
            )),
        }
    }
}

/// Whether `image` names an image by id (`sha256:…` or bare hex), as build steps do, rather than
/// by `repo:tag`.
fn is_image_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn instance_state(state: Option<ContainerSummaryStateEnum>) -> InstanceState {
    match state {
        Some(ContainerSummaryStateEnum::RUNNING) => InstanceState::Running,
        Some(ContainerSummaryStateEnum::RESTARTING) => InstanceState::Restarting,
        _ => InstanceState::Stopped,
    }
}

impl Engine for DockerEngine {
    async fn observe(&self) -> Result<Observed, DockerError> {
        let ns = &self.namespace;
        // Docker ORs values of one filter but ANDs filters: two lists, asked at once.
        let (managed, named) = tokio::join!(
            self.list(("label", ns.managed_filter())),
            self.list(("name", format!("{}-", ns.prefix)))
        );
        let (managed, named) = (managed?, named?);
        let mut seen = BTreeSet::new();
        let mut instances = Vec::new();
        for summary in managed.into_iter().chain(named) {
            let id = summary.id.unwrap_or_default();
            if !seen.insert(id.clone()) {
                continue;
            }
            let labels = summary.labels.unwrap_or_default();
            let name = summary
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            let state = instance_state(summary.state);
            let image = summary.image.unwrap_or_default();
            // faaso's images carry its labels, so every container made from one inherits them:
            // only the instance label, which faaso sets itself, marks a container faaso created.
            // The one exception is a stopped container of an unnamed image: a build step left by
            // an interrupted build, to be cleared like a stopped instance.
            let labelled = labels
                .get(&ns.label("managed"))
                .is_some_and(|v| v == "true");
            let managed = labelled
                && (labels.contains_key(&ns.label("instance"))
                    || (state == InstanceState::Stopped && is_image_id(&image)));
            let funko = if managed {
                labels.get(&ns.label("funko")).cloned().unwrap_or_default()
            } else {
                // Docker's name filter is an unanchored regex: check the prefix ourselves.
                match name.strip_prefix(&format!("{}-", ns.prefix)) {
                    Some(funko) if funko != "proxy" => funko.to_owned(),
                    _ => continue,
                }
            };
            let ip = summary
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|mut n| n.remove(&ns.network))
                .and_then(|e| e.ip_address)
                .and_then(|ip| ip.parse().ok());
            instances.push(Instance {
                id,
                ip,
                timeout: labels
                    .get(&ns.label("timeout"))
                    .and_then(|t| faaso_schema::parse_duration(t)),
                health_path: labels.get(&ns.label("health-path")).cloned(),
                name,
                managed,
                funko,
                number: labels
                    .get(&ns.label("instance"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                config_hash: labels
                    .get(&ns.label("config-hash"))
                    .cloned()
                    .unwrap_or_default(),
                image,
                state,
            });
        }
        let images = image_tags(&self.docker).await?;
        Ok(Observed { instances, images })
    }

    async fn ensure_network(&self) -> Result<(), DockerError> {
        let network = &self.namespace.network;
        match self.docker.inspect_network(network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(source) => {
                return Err(DockerError::Network {
                    network: network.clone(),
                    source,
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
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(source) => Err(DockerError::Network {
                network: network.clone(),
                source,
            }),
        }
    }

    async fn build(
        &self,
        prepared: &Prepared,
        output: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), DockerError> {
        build_image(
            &self.docker,
            &self.namespace,
            &prepared.context,
            &prepared.image,
            output,
        )
        .await
        .map(|_| ())
    }

    async fn start(&self, prepared: &Prepared, number: u32) -> Result<Started, DockerError> {
        let name = container_name(
            &self.namespace,
            prepared.funko.spec.name.as_str(),
            number,
            &prepared.config_hash,
        );
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let config = container_config(&self.namespace, prepared, number);
        let created = self
            .docker
            .create_container(Some(options), config)
            .await
            .map_err(|source| DockerError::Create {
                name: name.clone(),
                source,
            })?;
        if let Err(source) = self.docker.start_container(&created.id, None).await {
            let _ = self.remove(&created.id).await;
            return Err(DockerError::Start { name, source });
        }
        let addr = self.address(&created.id).await?;
        Ok(Started {
            id: created.id,
            name,
            addr,
            request_timeout: prepared.funko.spec.timeout.0,
        })
    }

    async fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> Result<(), DockerError> {
        let limit = healthcheck.start_period.0 + healthcheck.interval.0 * healthcheck.retries;
        let begun = Instant::now();
        let mut last_state_check = Instant::now();
        loop {
            if probe(started.addr, &healthcheck.path, healthcheck.timeout.0).await {
                return Ok(());
            }
            let not_ready = |reason: String| DockerError::NotReady {
                id: started.name.clone(),
                reason,
            };
            if last_state_check.elapsed() >= STATE_EVERY {
                last_state_check = Instant::now();
                if let Some(reason) = self.exited(&started.id).await {
                    let logs = self.log_tail(&started.id, 10).await;
                    return Err(not_ready(format!("{reason}; its last output:\n{logs}")));
                }
            }
            if begun.elapsed() >= limit {
                return Err(not_ready(format!(
                    "GET {} did not answer 2xx within {:?} (start_period + interval × retries)",
                    healthcheck.path, limit
                )));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    async fn prune_images(&self, keep: &BTreeSet<String>) -> Result<usize, DockerError> {
        let filters = HashMap::from([("label", vec![self.namespace.managed_filter()])]);
        let options = ListImagesOptionsBuilder::new()
            .all(false)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|source| DockerError::ListImages { source })?;
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

    async fn remove(&self, id: &str) -> Result<(), DockerError> {
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
                    source,
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
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(source) => Err(DockerError::Remove {
                id: id.to_owned(),
                source,
            }),
        }
    }
}
