//! Active readiness probing: a candidate instance enters the route table only after its health
//! path answers 2xx, and leaves it after enough failed probes in a row.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::route_table::{FunkoSettings, InstanceId, Routes};

/// An instance that a feeder says may serve a funko once its health path answers 2xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The instance's identifier (for Docker: the container id).
    pub id: InstanceId,
    /// Where it listens (for Docker: its address on the network, port 3000).
    pub addr: SocketAddr,
    /// The path probed for readiness, normally `/ping`.
    pub health_path: String,
}

/// How often and how strictly candidates are probed.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Time between probes of a ready instance.
    pub interval: Duration,
    /// Time between probes of an instance that is not ready yet; short, so a starting
    /// instance is routed within milliseconds of becoming ready.
    pub startup_interval: Duration,
    /// For how long an unready instance is probed at `startup_interval` before slowing down.
    pub startup_period: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Successful probes in a row that make an instance ready.
    pub healthy_threshold: u32,
    /// Failed probes in a row that take a ready instance out.
    pub unhealthy_threshold: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            startup_interval: Duration::from_millis(10),
            startup_period: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
        }
    }
}

/// Probes candidate instances and keeps [`Routes`] in step with the ones that are ready.
#[derive(Clone, Debug)]
pub struct HealthChecker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    routes: Routes,
    config: ProbeConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    funkos: Mutex<HashMap<String, HashMap<InstanceId, Probe>>>,
}

#[derive(Debug)]
struct Probe {
    candidate: Candidate,
    task: JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HealthChecker {
    /// A checker that writes into `routes`; it probes nothing until given candidates.
    pub fn new(routes: Routes, config: ProbeConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        // A new connection per probe: requests go to the instance on new connections too, and
        // an instance shutting down may close its listener while still answering on the
        // connections it has (a kept one would bring an instance back that refuses them).
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                routes,
                config,
                client,
                funkos: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The route table this checker writes into.
    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }

    /// Declares the candidates of one funko: new ones start being probed, gone ones leave the
    /// table at once, unchanged ones keep their state. The funko is known (503, not 404) even
    /// while none is ready.
    pub fn set_funko(&self, funko: &str, settings: FunkoSettings, candidates: Vec<Candidate>) {
        self.inner.routes.set_funko(funko, settings);
        let mut funkos = self.lock();
        let probes = funkos.entry(funko.to_owned()).or_default();
        let wanted: HashMap<InstanceId, Candidate> =
            candidates.into_iter().map(|c| (c.id.clone(), c)).collect();
        probes.retain(|id, probe| {
            let keep = wanted.get(id) == Some(&probe.candidate);
            if !keep {
                self.inner.routes.remove_instance(funko, id);
                debug!(%funko, instance = %id, "Stopped probing a candidate that went away.");
            }
            keep
        });
        for (id, candidate) in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = probes.entry(id) {
                let task = tokio::spawn(probe_loop(
                    self.inner.clone(),
                    funko.to_owned(),
                    candidate.clone(),
                ));
                slot.insert(Probe { candidate, task });
            }
        }
    }

    /// Forgets a funko and stops probing its instances; its requests answer 404.
    pub fn remove_funko(&self, funko: &str) {
        self.lock().remove(funko);
        self.inner.routes.remove_funko(funko);
    }

    /// Declares every funko at once (a resync): funkos not named here are forgotten.
    pub fn sync(&self, funkos: HashMap<String, (FunkoSettings, Vec<Candidate>)>) {
        self.sync_except(funkos, |_| false);
    }

    /// Declares every funko at once except those `unsettled` names (a feeder whose view of them
    /// may be older than what it was told since): those keep their state and probes as they are.
    pub fn sync_except(
        &self,
        mut funkos: HashMap<String, (FunkoSettings, Vec<Candidate>)>,
        unsettled: impl Fn(&str) -> bool,
    ) {
        funkos.retain(|name, _| !unsettled(name));
        // Gone: what this checker probes, and what the table routes (a feeder may have made a
        // funko known there directly), that is neither declared nor unsettled.
        let mut gone: Vec<String> = self.lock().keys().cloned().collect();
        gone.extend(
            self.inner
                .routes
                .load()
                .iter()
                .map(|(name, _)| name.to_owned()),
        );
        gone.sort_unstable();
        gone.dedup();
        gone.retain(|name| !funkos.contains_key(name) && !unsettled(name));
        for name in gone {
            self.remove_funko(&name);
        }
        for (name, (settings, candidates)) in funkos {
            self.set_funko(&name, settings, candidates);
        }
    }

    /// Stops probing one instance and takes it out of the table, e.g. before it is stopped.
    pub fn remove_instance(&self, funko: &str, id: &InstanceId) {
        if let Some(probes) = self.lock().get_mut(funko) {
            probes.remove(id);
        }
        self.inner.routes.remove_instance(funko, id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<InstanceId, Probe>>> {
        self.inner.funkos.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Probes one candidate until aborted, moving it into and out of the table at the thresholds.
async fn probe_loop(inner: Arc<Inner>, funko: String, candidate: Candidate) {
    let config = &inner.config;
    let uri: Uri = match format!("http://{}{}", candidate.addr, candidate.health_path).parse() {
        Ok(uri) => uri,
        Err(err) => {
            warn!(%funko, instance = %candidate.id, ?err, "The health path is not a valid URI path; the instance is never routed.");
            return;
        }
    };
    let mut ready = false;
    let mut successes = 0;
    let mut failures = 0;
    let mut unready_since = Instant::now();
    loop {
        if ready && !inner.routes.contains(&funko, &candidate.id) {
            // Ejected by the forwarder after a failed connect: earn readiness again.
            ready = false;
            successes = 0;
            unready_since = Instant::now();
        }
        let healthy = probe(&inner.client, &uri, config.timeout).await;
        if healthy {
            successes += 1;
            failures = 0;
            if !ready && successes >= config.healthy_threshold {
                inner
                    .routes
                    .insert_ready(&funko, candidate.id.clone(), candidate.addr);
                ready = true;
                info!(%funko, instance = %candidate.id, addr = %candidate.addr, "An instance is ready and routed.");
            }
        } else {
            failures += 1;
            successes = 0;
            if ready && failures >= config.unhealthy_threshold {
                inner.routes.remove_instance(&funko, &candidate.id);
                ready = false;
                unready_since = Instant::now();
                warn!(%funko, instance = %candidate.id, failures, "An instance failed its health probes and is no longer routed.");
            }
        }
        let pause = if ready || unready_since.elapsed() > config.startup_period {
            config.interval
        } else {
            config.startup_interval
        };
        tokio::time::sleep(pause).await;
    }
}

/// Whether one `GET` of the health path answered 2xx in time.
async fn probe(client: &Client<HttpConnector, Empty<Bytes>>, uri: &Uri, timeout: Duration) -> bool {
    let request = hyper::Request::get(uri.clone()).body(Empty::new());
    let Ok(request) = request else {
        return false;
    };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        Ok(Err(_)) | Err(_) => false,
    }
}
