//! The Docker route source of `faaso proxy`: finds funko containers on the network and hands
//! them to the proxy's health checker as candidates.
//!
//! Level-triggered, like the reconciler: every event only means "list again now", and a
//! periodic resync catches whatever an event stream missed. The engine going away is survived
//! with backoff; the route table keeps serving what it had meanwhile.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use faaso_proxy::{Candidate, FunkoSettings, HealthChecker, InstanceId};
use faaso_reconciler::Namespace;
use faaso_schema::FunkoName;
use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Every funko listens here inside its container.
pub const FUNKO_PORT: u16 = 3000;

/// The proxy's own container; it is on the network and named like a funko, but is none.
pub const PROXY_CONTAINER: &str = "faaso-proxy";

/// Where and how often discovery looks.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// Network, name prefix and label namespace of the containers to route.
    pub namespace: Namespace,
    /// Time between full relists even when no event arrives.
    pub resync: Duration,
    /// The request timeout of a funko whose container carries no `<labels>.timeout` label.
    pub default_timeout: Duration,
}

/// What one funko looks like to the proxy: its settings and candidate instances.
pub type FunkoCandidates = HashMap<String, (FunkoSettings, Vec<Candidate>)>;

/// Keeps a [`HealthChecker`]'s candidates in step with the containers Docker runs.
pub struct DockerDiscovery {
    config: DiscoveryConfig,
    health: HealthChecker,
}

impl DockerDiscovery {
    /// Discovery that feeds `health`.
    pub fn new(config: DiscoveryConfig, health: HealthChecker) -> Self {
        Self { config, health }
    }

    /// Runs until the task is dropped: connect, list, follow events, resync; on any engine
    /// error, wait (exponential backoff with jitter) and start over.
    pub async fn run(self) {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let error = match faaso_reconciler::connect().await {
                Ok(docker) => self.follow(&docker).await,
                Err(err) => anyhow::Error::new(err),
            };
            // A connection that held for a while was a success: start the backoff afresh.
            if started.elapsed() > Duration::from_secs(30) {
                failures = 0;
            }
            let pause = backoff(failures);
            failures = failures.saturating_add(1);
            warn!(error = %format!("{error:#}"), retry_in = ?pause, "Lost the Docker engine; routes stay as they were until it is back.");
            tokio::time::sleep(pause).await;
        }
    }

    /// Lists and follows events until the engine fails; returns why it stopped.
    async fn follow(&self, docker: &Docker) -> anyhow::Error {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([
            ("type", vec!["container", "network"]),
            (
                "event",
                vec![
                    "start",
                    "die",
                    "destroy",
                    "stop",
                    "kill",
                    "pause",
                    "unpause",
                    "rename",
                    "health_status",
                    "connect",
                    "disconnect",
                ],
            ),
        ]);
        // Subscribe before listing, so nothing that happens in between is missed.
        let mut events = docker.events(Some(
            EventsOptionsBuilder::default().filters(&filters).build(),
        ));
        if let Err(err) = self.sync(docker).await {
            return err;
        }
        let mut resync = tokio::time::interval(self.config.resync);
        resync.reset();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        debug!(action = ?event.action, "A Docker event arrived; listing again.");
                        // Coalesce a burst (e.g. die + stop + destroy) into one relist.
                        while let Some(Some(Ok(_))) = futures_util::FutureExt::now_or_never(events.next()) {}
                    }
                    Some(Err(err)) => return anyhow::Error::new(err).context("reading Docker events"),
                    None => return anyhow::anyhow!("the Docker event stream ended"),
                },
                _ = resync.tick() => debug!("Periodic resync."),
            }
            if let Err(err) = self.sync(docker).await {
                return err;
            }
        }
    }

    /// Lists running containers once and declares every funko found.
    pub async fn sync(&self, docker: &Docker) -> anyhow::Result<()> {
        let options = ListContainersOptionsBuilder::default().all(false).build();
        let containers = docker
            .list_containers(Some(options))
            .await
            .map_err(|err| anyhow::Error::new(err).context("listing containers"))?;
        let funkos = candidates(&containers, &self.config);
        debug!(funkos = funkos.len(), "Listed the funko containers.");
        self.health.sync(funkos);
        Ok(())
    }
}

/// The funkos among `containers`: managed ones by their labels, others by the zero-magic name
/// `<prefix>-<funko>`; only running containers on the network, never the proxy itself.
///
/// Not the reconciler's `observe`: that one asks which containers faaso created (only those
/// it may stop, so it also wants the instance label) and lists images too; routing wants every
/// container that declares a funko, and must not wait for an image list.
pub fn candidates(containers: &[ContainerSummary], config: &DiscoveryConfig) -> FunkoCandidates {
    let ns = &config.namespace;
    let mut funkos = FunkoCandidates::new();
    for container in containers {
        let Some(id) = container.id.as_deref() else {
            continue;
        };
        if container
            .state
            .is_some_and(|s| s != ContainerSummaryStateEnum::RUNNING)
        {
            continue;
        }
        let name = container
            .names
            .iter()
            .flatten()
            .map(|n| n.trim_start_matches('/'))
            .next()
            .unwrap_or_default();
        if name == PROXY_CONTAINER || name == format!("{}-proxy", ns.prefix) {
            continue;
        }
        let Some(ip) = network_ip(container, &ns.network) else {
            continue;
        };
        let labels = container.labels.clone().unwrap_or_default();
        let managed = labels
            .get(&ns.label("managed"))
            .is_some_and(|v| v == "true");
        let funko = if managed {
            labels.get(&ns.label("funko")).cloned()
        } else {
            name.strip_prefix(&format!("{}-", ns.prefix))
                .map(str::to_owned)
        };
        let Some(funko) = funko.filter(|f| FunkoName::new(f).is_ok()) else {
            debug!(container = %name, "A container on the network is no funko.");
            continue;
        };
        let timeout = labels
            .get(&ns.label("timeout"))
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(config.default_timeout);
        let health_path = labels
            .get(&ns.label("health-path"))
            .filter(|p| p.starts_with('/'))
            .cloned()
            .unwrap_or_else(|| "/ping".to_owned());
        let entry = funkos.entry(funko).or_insert_with(|| {
            (
                FunkoSettings {
                    request_timeout: timeout,
                },
                Vec::new(),
            )
        });
        entry.1.push(Candidate {
            id: InstanceId::new(id),
            addr: SocketAddr::new(ip, FUNKO_PORT),
            health_path,
        });
    }
    funkos
}

fn network_ip(container: &ContainerSummary, network: &str) -> Option<IpAddr> {
    let settings = container
        .network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .get(network)?;
    settings.ip_address.as_deref()?.parse().ok()
}

/// 100 ms doubling to 10 s, with up to 25 % jitter so many proxies do not retry in step.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << failures.min(7));
    let base = base.min(Duration::from_secs(10));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    base + base.mul_f64(f64::from(nanos % 250) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerSummaryNetworkSettings, EndpointSettings};

    fn config() -> DiscoveryConfig {
        DiscoveryConfig {
            namespace: Namespace::default(),
            resync: Duration::from_secs(10),
            default_timeout: Duration::from_secs(30),
        }
    }

    fn container(name: &str, ip: &str, network: &str, labels: &[(&str, &str)]) -> ContainerSummary {
        ContainerSummary {
            id: Some(format!("id-{name}")),
            names: Some(vec![format!("/{name}")]),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(HashMap::from([(
                    network.to_owned(),
                    EndpointSettings {
                        ip_address: Some(ip.to_owned()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn managed_containers_are_found_by_label_and_others_by_name() {
        let found = candidates(
            &[
                container(
                    "faaso-hello-1",
                    "10.0.0.2",
                    "faaso-net",
                    &[
                        ("faaso.managed", "true"),
                        ("faaso.funko", "hello"),
                        ("faaso.timeout", "5s"),
                    ],
                ),
                container(
                    "faaso-hello-2",
                    "10.0.0.3",
                    "faaso-net",
                    &[("faaso.managed", "true"), ("faaso.funko", "hello")],
                ),
                container("faaso-legacy", "10.0.0.4", "faaso-net", &[]),
                container("faaso-proxy", "10.0.0.5", "faaso-net", &[]),
                container("faaso-elsewhere", "10.1.0.4", "other-net", &[]),
                container("postgres", "10.0.0.6", "faaso-net", &[]),
                container("faaso-Bad_Name", "10.0.0.7", "faaso-net", &[]),
            ],
            &config(),
        );
        let mut names: Vec<_> = found.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["hello", "legacy"]);
        let (settings, hello) = &found["hello"];
        assert_eq!(hello.len(), 2);
        assert_eq!(hello[0].addr, "10.0.0.2:3000".parse().unwrap());
        assert_eq!(hello[0].health_path, "/ping");
        assert_eq!(settings.request_timeout, Duration::from_secs(5));
        assert_eq!(found["legacy"].0.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn stopped_containers_are_not_candidates() {
        let mut stopped = container("faaso-hello", "10.0.0.2", "faaso-net", &[]);
        stopped.state = Some(ContainerSummaryStateEnum::EXITED);
        assert!(candidates(&[stopped], &config()).is_empty());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) < Duration::from_millis(130));
        assert!(backoff(3) >= Duration::from_millis(800));
        assert!(backoff(30) <= Duration::from_millis(12_500));
    }
}
