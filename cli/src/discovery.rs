//! The Docker route source of `faaso proxy`: finds funko containers on the network and hands
//! them to the proxy's health checker as candidates.
//!
//! Level-triggered, like the reconciler: every event only means "list again now", and a
//! periodic resync catches whatever an event stream missed. The engine going away is survived
//! with backoff; the route table keeps serving what it had meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use faaso_proxy::{Candidate, Cors, FunkoSettings, HealthChecker, InstanceId};
use faaso_reconciler::swarm::SwarmEngine;
use faaso_reconciler::{Backend, DockerEngine, Instance, InstanceState, Namespace};
use faaso_schema::FunkoName;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::Instant;
use tracing::{debug, warn};

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
    swarm: bool,
}

/// An engine that says which funko instances run (one engine's containers, or a Swarm's tasks
/// as its manager knows them).
trait RouteSource: Backend {
    /// The running instances.
    fn running(&self) -> impl std::future::Future<Output = anyhow::Result<Vec<Instance>>> + Send;
}

impl RouteSource for DockerEngine {
    async fn running(&self) -> anyhow::Result<Vec<Instance>> {
        Ok(self.running_instances().await?)
    }
}

impl RouteSource for SwarmEngine {
    async fn running(&self) -> anyhow::Result<Vec<Instance>> {
        Ok(self.running_instances().await?)
    }
}

impl DockerDiscovery {
    /// Discovery that feeds `health`.
    pub fn new(config: DiscoveryConfig, health: HealthChecker) -> Self {
        Self {
            config,
            health,
            swarm: false,
        }
    }

    /// Routes a Swarm's tasks instead, from its manager (`DOCKER_HOST`).
    pub fn on_swarm(mut self) -> Self {
        self.swarm = true;
        self
    }

    /// Runs until the task is dropped: connect, list, follow events, resync; on any engine
    /// error, wait (exponential backoff with jitter) and start over.
    pub async fn run(self) {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let ns = self.config.namespace.clone();
            let error = if self.swarm {
                match SwarmEngine::connect(ns, None).await {
                    Ok(engine) => self.follow(&engine).await,
                    Err(err) => anyhow::Error::new(err),
                }
            } else {
                match DockerEngine::connect(ns).await {
                    Ok(engine) => self.follow(&engine).await,
                    Err(err) => anyhow::Error::new(err),
                }
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

    /// Lists and follows changes until the engine fails; returns why it stopped.
    async fn follow(&self, engine: &impl RouteSource) -> anyhow::Error {
        // Subscribe before listing, so nothing that happens in between is missed.
        let mut changes = engine.changes();
        let mut joins = if self.swarm {
            // A Swarm's tasks are all services faaso made: their changes are the engine's.
            futures_util::stream::pending().boxed()
        } else {
            match named_starts(&self.config.namespace.prefix).await {
                Ok(joins) => joins,
                Err(err) => return err,
            }
        };
        if let Err(err) = self.sync(engine).await {
            return err;
        }
        let mut resync = tokio::time::interval(self.config.resync);
        resync.reset();
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(change)) => {
                        debug!(?change, "The engine changed; listing again.");
                        // Coalesce a burst (e.g. die + stop + destroy) into one relist.
                        while let Some(Some(Ok(_))) = futures_util::FutureExt::now_or_never(changes.next()) {}
                    }
                    Some(Err(err)) => return anyhow::Error::new(err).context("reading the engine's changes"),
                    None => return anyhow::anyhow!("the engine's change stream ended"),
                },
                join = joins.next() => match join {
                    Some(Ok(())) => {
                        debug!("A container named like a funko started; listing again.");
                        while let Some(Some(Ok(()))) = futures_util::FutureExt::now_or_never(joins.next()) {}
                    }
                    Some(Err(err)) => return err.context("reading the network's events"),
                    None => return anyhow::anyhow!("the network's event stream ended"),
                },
                _ = resync.tick() => debug!("Periodic resync."),
            }
            if let Err(err) = self.sync(engine).await {
                return err;
            }
        }
    }

    /// Lists running instances once and declares every funko found.
    async fn sync(&self, engine: &impl RouteSource) -> anyhow::Result<()> {
        let instances = engine
            .running()
            .await
            .map_err(|err| err.context("listing the instances"))?;
        let funkos = candidates(&instances, self.config.default_timeout);
        debug!(funkos = funkos.len(), "Listed the funko containers.");
        self.health.sync(funkos);
        Ok(())
    }
}

/// Every start of a container named `<prefix>-…` from now on. The backend's change stream
/// carries managed (labelled) containers only, so a zero-magic `<prefix>-<x>` container would
/// otherwise wait for the periodic resync. Docker's name filter is an unanchored regex, so the
/// prefix is checked here; a network `connect` event comes too early (the container is only
/// created then, and a relist does not see it running).
async fn named_starts(prefix: &str) -> anyhow::Result<BoxStream<'static, anyhow::Result<()>>> {
    use anyhow::Context as _;
    let docker = bollard::Docker::connect_with_defaults()
        .context("connecting to the Docker engine")?
        .negotiate_version()
        .await
        .context("connecting to the Docker engine")?;
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        ("event", vec!["start".to_owned()]),
    ]);
    let options = bollard::query_parameters::EventsOptionsBuilder::new()
        .filters(&filters)
        .build();
    let prefix = format!("{prefix}-");
    Ok(docker
        .events(Some(options))
        .filter_map(move |event| {
            let named = match &event {
                Ok(event) => event
                    .actor
                    .as_ref()
                    .and_then(|a| a.attributes.as_ref())
                    .and_then(|a| a.get("name"))
                    .is_some_and(|name| name.starts_with(&prefix)),
                Err(_) => true,
            };
            let event = event.map(|_| ()).map_err(anyhow::Error::new);
            std::future::ready(named.then_some(event))
        })
        .boxed())
}

/// The funkos among `instances` as the proxy's candidates: every running one with an address
/// on the network and a valid funko name, managed or zero-magic alike; the health checker
/// routes them once they answer. Proxy mode and server mode both route through this.
pub fn candidates(instances: &[Instance], default_timeout: Duration) -> FunkoCandidates {
    let mut funkos = FunkoCandidates::new();
    for instance in instances {
        let Some(addr) = instance.addr() else {
            continue;
        };
        if instance.state != InstanceState::Running {
            continue;
        }
        if FunkoName::new(&instance.funko).is_err() {
            debug!(container = %instance.name, "A container on the network is no funko.");
            continue;
        }
        let entry = funkos.entry(instance.funko.clone()).or_insert_with(|| {
            let timeout = instance.timeout.unwrap_or(default_timeout);
            (settings(timeout, instance.cors.as_ref()), Vec::new())
        });
        entry.1.push(Candidate {
            id: InstanceId::new(instance.id.as_str()),
            addr,
            health_path: instance.health_path.clone(),
        });
    }
    funkos
}

/// What the proxy applies to a funko's requests: its timeout and CORS policy.
pub fn settings(request_timeout: Duration, cors: Option<&faaso_schema::Cors>) -> FunkoSettings {
    let cors = cors.and_then(|c| {
        let policy = Cors::new(
            &c.origins,
            &c.methods,
            &c.headers,
            c.max_age.0,
            c.credentials,
        );
        // funko.yml's checks keep header values valid; a hand-made label may not be.
        policy
            .inspect_err(|err| warn!(%err, "A funko's CORS label cannot be used; it gets no CORS."))
            .ok()
            .map(Arc::new)
    });
    FunkoSettings {
        // funko.yml holds it to a day; a hand-made label is held there too.
        request_timeout: request_timeout.min(faaso_schema::MAX_DURATION.0),
        cors,
        ..FunkoSettings::default()
    }
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
    use faaso_reconciler::{Listed, read_instance};

    /// The instances a listing of these containers reads as (the engine reports an address
    /// only on the namespace's network).
    fn read(containers: &[Listed]) -> Vec<Instance> {
        let ns = Namespace::default();
        containers
            .iter()
            .filter_map(|c| read_instance(c.clone(), &ns))
            .collect()
    }

    fn container(name: &str, ip: &str, network: &str, labels: &[(&str, &str)]) -> Listed {
        Listed {
            id: format!("id-{name}"),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            image: "some-image".to_owned(),
            state: InstanceState::Running,
            ip: (network == Namespace::default().network).then(|| ip.parse().unwrap()),
        }
    }

    #[test]
    fn managed_containers_are_found_by_label_and_others_by_name() {
        let found = candidates(
            &read(&[
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
            ]),
            Duration::from_secs(30),
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
        stopped.state = InstanceState::Stopped;
        assert!(candidates(&read(&[stopped]), Duration::from_secs(30)).is_empty());
    }

    #[test]
    fn a_hand_made_timeout_label_past_a_day_is_not_taken() {
        let found = candidates(
            &read(&[container(
                "faaso-huge",
                "10.0.0.2",
                "faaso-net",
                &[("faaso.timeout", "300000000000y")],
            )]),
            Duration::from_secs(30),
        );
        let timeout = found["huge"].0.request_timeout;
        assert_eq!(timeout, Duration::from_secs(30));
        assert_eq!(
            settings(Duration::MAX, None).request_timeout,
            faaso_schema::MAX_DURATION.0
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Whatever funko.yml's bounds let through makes proxy settings that keep every
        /// deadline the proxy computes from them on the clock.
        #[test]
        fn the_proxy_settings_of_any_valid_spec_are_usable(
            timeout_ms in proptest::sample::select(vec![100u64, 101, 30_000, 86_399_999, 86_400_000]),
            max_age_s in proptest::sample::select(vec![0u64, 1, 300, 86_399, 86_400]),
            credentials in proptest::bool::ANY,
        ) {
            let origins = if credentials { "[\"https://a.example\"]" } else { "['*']" };
            let yaml = format!(
                "name: x\ntimeout: {timeout_ms}ms\ncors:\n  origins: {origins}\n  max_age: {max_age_s}s\n  credentials: {credentials}\n"
            );
            let spec = faaso_schema::parse_spec(&yaml).unwrap();
            let made = settings(spec.timeout.0, spec.cors.as_ref());
            proptest::prop_assert_eq!(made.request_timeout, Duration::from_millis(timeout_ms));
            proptest::prop_assert!(made.cors.is_some(), "{}", yaml);
            proptest::prop_assert!(std::time::Instant::now().checked_add(made.request_timeout).is_some());
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) < Duration::from_millis(130));
        assert!(backoff(3) >= Duration::from_millis(800));
        assert!(backoff(30) <= Duration::from_millis(12_500));
    }
}
