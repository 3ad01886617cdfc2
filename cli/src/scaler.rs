//! The server's autoscaler loop: idle autoscaled funkos cost nothing, a first request wakes
//! them in milliseconds, load sets the instance count.
//!
//! Once a second, and at once when the proxy holds a first request for a funko, each autoscaled
//! funko's load (in-flight plus held requests) goes into its [`Autoscaler`], whose decision is
//! carried out here: more instances ready are woken (a paused one first, then a stopped one,
//! then a new one through a reconcile pass, as [`Demand`]); fewer are parked (out of the route
//! table, drained, paused), and an instance paused for `stop_after` is stopped. One wake per
//! funko runs at a time, however many requests wait. The reconciler keeps the structure (config
//! changes, bounds, crashes); this loop owns which kept instances run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faaso_proxy::{HealthChecker, InstanceId, Routes};
use faaso_reconciler::{
    Autoscaled, Autoscaler, Backend, Decision, Demand, InstanceState, PassReport, Policy,
    ScaleDecision, Started, Trigger,
};
use faaso_schema::Healthcheck;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often every autoscaled funko's load is sampled and decided on.
const TICK: Duration = Duration::from_secs(1);
/// How often a drained instance's in-flight count is looked at.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// How long what this loop just did to an instance is trusted over a listing, which may have
/// been taken before it (a pass that listed a woken instance still paused must not put it
/// back in the books as paused).
const SETTLE: Duration = Duration::from_secs(5);

/// How a funko was woken, for the wake latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// A paused instance was thawed.
    Paused,
    /// A stopped instance was started again.
    Stopped,
    /// A new instance was created.
    Created,
}

impl Tier {
    /// Its label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Paused => "paused",
            Tier::Stopped => "stopped",
            Tier::Created => "created",
        }
    }
}

/// What the scaler knows, shared with the server's listener.
#[derive(Clone, Default)]
pub struct Scaling {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    funkos: BTreeMap<String, Funko>,
}

struct Funko {
    bounds: Autoscaled,
    autoscaler: Autoscaler,
    /// Kept instances not in the route table: paused or stopped, or on their way there.
    idle: BTreeMap<String, Idle>,
    /// A wake is running; the next waits for it.
    waking: bool,
    /// A new instance was asked of the reconciler at this moment.
    creating: Option<Instant>,
    last: Option<ScaleDecision>,
    health_path: String,
    /// Instances this loop woke or parked, and when.
    moved: BTreeMap<String, Instant>,
}

#[derive(Debug, Clone)]
struct Idle {
    addr: Option<SocketAddr>,
    state: Parked,
    since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parked {
    /// Being drained and paused (or stopped) now.
    Parking,
    Paused,
    /// Being stopped now.
    Stopping,
    Stopped,
    /// Being woken now.
    Waking,
}

impl Scaling {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance is no longer idle (woken, or gone).
    fn forget_idle(&self, funko: &str, id: &str) {
        if let Some(f) = self.lock().funkos.get_mut(funko) {
            f.idle.remove(id);
            f.moved.insert(id.to_owned(), Instant::now());
        }
    }

    /// Whether the instance is kept idle (or on its way in or out): not to be routed by a
    /// resync, which may have listed it before it was paused.
    pub fn is_idle(&self, funko: &str, id: &str) -> bool {
        self.lock()
            .funkos
            .get(funko)
            .is_some_and(|f| f.idle.contains_key(id))
    }

    /// The autoscaler's last decision for a funko.
    pub fn last_decision(&self, funko: &str) -> Option<ScaleDecision> {
        self.lock().funkos.get(funko).and_then(|f| f.last.clone())
    }

    /// The proxy settings' holding part for a funko: its queue and per-instance limit.
    pub fn holding(&self, funko: &str) -> Option<(usize, Option<usize>)> {
        self.lock()
            .funkos
            .get(funko)
            .map(|f| (f.bounds.queue as usize, f.bounds.limit.map(|l| l as usize)))
    }

    /// Takes in what a pass found: each autoscaled funko's bounds, and its kept instances of
    /// the current config that are paused or stopped (after a restart of faaso, too). A new
    /// instance routed since a create was asked counts as that wake.
    pub fn pass_finished<S>(&self, report: &PassReport<S>) {
        let now = Instant::now();
        let mut state = self.lock();
        state.funkos.retain(|name, _| {
            report
                .desired
                .funkos
                .get(name)
                .is_some_and(|f| f.autoscaled.is_some())
        });
        for (name, desired) in &report.desired.funkos {
            let Some(bounds) = &desired.autoscaled else {
                continue;
            };
            let funko = state.funkos.entry(name.clone()).or_insert_with(|| Funko {
                bounds: bounds.clone(),
                autoscaler: Autoscaler::new(Policy::from(bounds), now),
                idle: BTreeMap::new(),
                waking: false,
                creating: None,
                last: None,
                health_path: faaso_reconciler::DEFAULT_HEALTH_PATH.to_owned(),
                moved: BTreeMap::new(),
            });
            // A failed pass ends the create it was asked for (its requests were told).
            if report
                .funkos
                .iter()
                .any(|f| f.name == *name && f.error.is_some())
            {
                funko.creating = None;
            }
            if funko.bounds != *bounds {
                funko.autoscaler.set_policy(Policy::from(bounds));
                funko.bounds = bounds.clone();
            }
            // A funko at work may have moved on from what this pass saw: its work tells.
            if report.busy.contains(name) {
                continue;
            }
            let instances: Vec<_> = report
                .observed
                .instances
                .iter()
                .filter(|i| i.managed && i.funko == *name && i.config_hash == desired.config_hash)
                .collect();
            if let Some(first) = instances.first() {
                funko.health_path = first.health_path.clone();
            }
            // Entries this loop is moving, or just moved, are its own; settled ones follow the
            // engine.
            funko.moved.retain(|_, at| now.duration_since(*at) < SETTLE);
            let moved = &funko.moved;
            funko.idle.retain(|id, idle| {
                !matches!(idle.state, Parked::Paused | Parked::Stopped)
                    || moved.contains_key(id)
                    || instances.iter().any(|i| &i.id == id && i.state.is_parked())
            });
            for instance in instances.into_iter().filter(|i| !moved.contains_key(&i.id)) {
                let parked = match instance.state {
                    InstanceState::Paused => Parked::Paused,
                    InstanceState::Exited => Parked::Stopped,
                    _ => continue,
                };
                let idle = funko.idle.entry(instance.id.clone()).or_insert(Idle {
                    addr: instance.addr(),
                    state: parked,
                    since: now,
                });
                if matches!(idle.state, Parked::Paused | Parked::Stopped) && idle.state != parked {
                    idle.state = parked;
                    idle.since = now;
                }
            }
        }
    }

    /// A pass started an instance of `funko` and routed it: the end of a create wake.
    pub fn instance_ready(&self, funko: &str, routes: &Routes) {
        let mut state = self.lock();
        if let Some(f) = state.funkos.get_mut(funko)
            && let Some(asked) = f.creating.take()
        {
            routes.record_wake(funko, Tier::Created.as_str(), asked.elapsed());
        }
    }
}

/// The scaler's loop and what it acts through.
pub struct Scaler<B> {
    /// The engine.
    pub backend: B,
    /// The route table requests read.
    pub routes: Routes,
    /// The health checker that owns routed candidates.
    pub health: HealthChecker,
    /// What the reconciler reads the autoscaler's counts from.
    pub demand: Demand,
    /// Asks the reconciler for a pass (to create instances).
    pub passes: mpsc::UnboundedSender<Trigger>,
    /// Shared with the listener.
    pub scaling: Scaling,
}

impl<B: Backend + Clone + 'static> Scaler<B> {
    /// Runs until `stop`; `wakes` names funkos whose first request was just held.
    pub async fn run(self, mut wakes: mpsc::UnboundedReceiver<String>, stop: CancellationToken) {
        let this = Arc::new(self);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {
                    let names: Vec<String> = this.scaling.lock().funkos.keys().cloned().collect();
                    for name in names {
                        this.evaluate(&name);
                    }
                }
                Some(name) = wakes.recv() => this.evaluate(&name),
            }
        }
    }

    /// Samples the funko's load, decides, and starts what the decision asks for.
    fn evaluate(self: &Arc<Self>, name: &str) {
        let now = Instant::now();
        let table = self.routes.load();
        let route = table.get(name);
        let load = route.map_or(0, |r| r.load());
        let ready: Vec<_> = route.map(|r| r.instances().to_vec()).unwrap_or_default();
        let mut state = self.scaling.lock();
        let Some(funko) = state.funkos.get_mut(name) else {
            return;
        };
        funko.autoscaler.observe(now, load as f64);
        let decision = funko.autoscaler.decide(now, ready.len() as u32);
        self.record(name, funko, &decision, ready.len());
        self.demand.set(name, decision.want);
        let want = decision.want as usize;
        if want > ready.len() && !funko.waking {
            funko.waking = true;
            let this = self.clone();
            let name = name.to_owned();
            let need = want - ready.len();
            tokio::spawn(async move { this.wake(&name, need).await });
        } else if want < ready.len() {
            // The least busy go first; an instance already leaving is not counted again.
            let mut staying: Vec<_> = ready
                .iter()
                .filter(|i| !funko.idle.contains_key(i.id().as_str()))
                .collect();
            staying.sort_by_key(|i| i.in_flight());
            let excess = staying.len().saturating_sub(want);
            for instance in staying.into_iter().take(excess) {
                funko.idle.insert(
                    instance.id().as_str().to_owned(),
                    Idle {
                        addr: Some(instance.addr()),
                        state: Parked::Parking,
                        since: now,
                    },
                );
                let this = self.clone();
                let (name, instance) = (name.to_owned(), instance.clone());
                let stop_at_once = funko.bounds.stop_after.is_zero();
                tokio::spawn(async move { this.park(&name, instance, stop_at_once).await });
            }
        }
        let stop_after = funko.bounds.stop_after;
        for (id, idle) in &mut funko.idle {
            if idle.state == Parked::Paused && now.duration_since(idle.since) >= stop_after {
                idle.state = Parked::Stopping;
                let this = self.clone();
                let (name, id) = (name.to_owned(), id.clone());
                tokio::spawn(async move { this.stop_idle(&name, &id).await });
            }
        }
    }

    /// Logs a changed decision (one structured line each) and keeps it for status and metrics.
    fn record(&self, name: &str, funko: &mut Funko, decision: &Decision, ready: usize) {
        self.routes
            .set_replicas(name, decision.want as usize, ready);
        if funko.last.as_ref().is_some_and(|l| l.want == decision.want) {
            return;
        }
        let reason = decision.reason.describe();
        tracing::info!(funko = %name, want = decision.want, ready, %reason, "scale decision");
        funko.last = Some(ScaleDecision {
            want: decision.want,
            reason,
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
    }

    /// Brings `need` more instances of `name` to ready: paused ones first, then stopped ones,
    /// then new ones through a pass (whose failure answers the requests held meanwhile).
    async fn wake(&self, name: &str, need: usize) {
        let mut woken = 0;
        while woken < need {
            let Some((id, idle, health_path)) = self.next_to_wake(name) else {
                break;
            };
            let started = Instant::now();
            let tier = if idle.state == Parked::Paused {
                Tier::Paused
            } else {
                Tier::Stopped
            };
            match self.resume(&id, &idle, &health_path).await {
                Ok(addr) => {
                    self.scaling.forget_idle(name, &id);
                    self.routes
                        .insert_ready(name, InstanceId::new(id.as_str()), addr);
                    self.routes
                        .record_wake(name, tier.as_str(), started.elapsed());
                    tracing::info!(funko = %name, instance = %id, tier = tier.as_str(), ms = started.elapsed().as_millis() as u64, "woken");
                    woken += 1;
                }
                Err(error) => {
                    // The next idle one (or a new one) is tried; a pass sees what became of it.
                    tracing::warn!(funko = %name, instance = %id, %error, "cannot wake an idle instance");
                    self.scaling.forget_idle(name, &id);
                }
            }
        }
        let mut state = self.scaling.lock();
        if let Some(funko) = state.funkos.get_mut(name) {
            funko.waking = false;
            if woken < need {
                // New instances come from a pass; the demand is already set.
                funko.creating.get_or_insert_with(Instant::now);
                let _ = self.passes.send(Trigger::Requested);
            }
        }
    }

    /// The next idle instance to wake: a paused one before a stopped one.
    fn next_to_wake(&self, name: &str) -> Option<(String, Idle, String)> {
        let mut state = self.scaling.lock();
        let funko = state.funkos.get_mut(name)?;
        let (id, idle) = funko
            .idle
            .iter_mut()
            .filter(|(_, i)| matches!(i.state, Parked::Paused | Parked::Stopped))
            .min_by_key(|(_, i)| (i.state != Parked::Paused, std::cmp::Reverse(i.since)))?;
        let chosen = (id.clone(), idle.clone(), funko.health_path.clone());
        idle.state = Parked::Waking;
        Some(chosen)
    }

    /// Thaws a paused instance (ready at once: it was when paused) or starts a stopped one
    /// and waits for its healthcheck.
    async fn resume(&self, id: &str, idle: &Idle, health_path: &str) -> Result<SocketAddr, String> {
        if idle.state == Parked::Paused
            && let Some(addr) = idle.addr
        {
            self.backend.unpause(id).await.map_err(|e| e.to_string())?;
            return Ok(addr);
        }
        let addr = self
            .backend
            .resume(id, idle.state == Parked::Paused)
            .await
            .map_err(|e| e.to_string())?;
        let started = Started {
            id: id.to_owned(),
            name: id.to_owned(),
            addr,
            request_timeout: Duration::ZERO,
            cors: None,
        };
        let healthcheck = Healthcheck {
            path: health_path.to_owned(),
            ..Healthcheck::default()
        };
        // Fails early when the instance dies or moves while it starts.
        self.backend
            .wait_ready(&started, &healthcheck)
            .await
            .map_err(|e| e.to_string())?;
        Ok(addr)
    }

    /// Takes an instance out of the route table, lets its requests finish, and pauses it (or
    /// stops it, with `stop_after: 0s`). One that cannot be paused is put back.
    async fn park(&self, name: &str, instance: Arc<faaso_proxy::Instance>, stop: bool) {
        let id = instance.id().clone();
        self.health.remove_instance(name, &id);
        let drained_by = Instant::now() + Duration::from_secs(60);
        while instance.in_flight() > 0 && Instant::now() < drained_by {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let result = if stop {
            self.backend.stop(id.as_str()).await
        } else {
            self.backend.pause(id.as_str()).await
        };
        let mut state = self.scaling.lock();
        let Some(funko) = state.funkos.get_mut(name) else {
            return;
        };
        match result {
            Ok(()) => {
                if let Some(idle) = funko.idle.get_mut(id.as_str()) {
                    idle.state = if stop {
                        Parked::Stopped
                    } else {
                        Parked::Paused
                    };
                    idle.since = Instant::now();
                }
                funko.moved.insert(id.as_str().to_owned(), Instant::now());
                tracing::info!(funko = %name, instance = %id, action = if stop { "stopped" } else { "paused" }, "parked");
            }
            Err(error) => {
                tracing::warn!(funko = %name, instance = %id, %error, "cannot park an idle instance; it keeps serving");
                funko.idle.remove(id.as_str());
                drop(state);
                self.routes.insert_ready(name, id, instance.addr());
            }
        }
    }

    /// Stops an instance paused for `stop_after`: its memory is freed, the container kept.
    async fn stop_idle(&self, name: &str, id: &str) {
        let result = self.backend.stop(id).await;
        let mut state = self.scaling.lock();
        let Some(idle) = state.funkos.get_mut(name).and_then(|f| f.idle.get_mut(id)) else {
            return;
        };
        match result {
            Ok(()) => {
                idle.state = Parked::Stopped;
                idle.since = Instant::now();
                tracing::info!(funko = %name, instance = %id, "stopped after being paused");
            }
            Err(error) => {
                // Left paused; tried again after another `stop_after`.
                idle.state = Parked::Paused;
                idle.since = Instant::now();
                tracing::warn!(funko = %name, instance = %id, %error, "cannot stop a paused instance");
            }
        }
    }
}
