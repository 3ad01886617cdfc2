//! The route table: which ready instances serve which funko.
//!
//! Requests read the table with one atomic load; writers build a new table and swap it in
//! whole, so a request never sees a half-applied change and never waits for a writer.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::cors::Cors;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use hyper::header::HeaderValue;
use hyper::http::uri::Authority;

use crate::hold::Waiting;
use crate::metrics::FunkoStats;
use crate::pool::Pool;
use crate::scale_metrics::ScaleMetrics;
use crate::shard::Sharded;

/// Names one instance of a funko (for Docker: the container id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// Wraps the feeder's identifier of an instance.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the proxy treats one funko's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunkoSettings {
    /// Time from forwarding a request until the instance's response head arrives; then 504.
    pub request_timeout: Duration,
    /// Which browser origins may call it (absent: the proxy adds no CORS headers).
    pub cors: Option<Arc<Cors>>,
    /// Requests held while no instance is free (the funko wakes, or every instance is at
    /// `limit`); 0 answers 503 at once instead. A full queue answers 503 too.
    pub queue: usize,
    /// The most requests one instance serves at once; more wait in the queue.
    pub limit: Option<usize>,
}

impl Default for FunkoSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            cors: None,
            queue: 0,
            limit: None,
        }
    }
}

/// One ready instance, as requests are sent to it.
#[derive(Debug)]
pub struct Instance {
    id: InstanceId,
    addr: SocketAddr,
    // Built once here rather than per request.
    authority: Authority,
    in_flight: Sharded<AtomicUsize>,
    /// Idle keep-alive connections to this instance.
    pub(crate) pool: Pool,
    /// Its funko's held requests, told when a request here finishes.
    waiting: Arc<Waiting>,
}

impl Instance {
    fn new(id: InstanceId, addr: SocketAddr, waiting: Arc<Waiting>) -> Self {
        let authority = Authority::try_from(addr.to_string().as_str())
            .unwrap_or_else(|_| Authority::from_static("invalid"));
        Self {
            id,
            addr,
            authority,
            in_flight: Sharded::default(),
            pool: Pool::default(),
            waiting,
        }
    }

    /// `ip:port` as a URI authority.
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The instance's identifier.
    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    /// Where the instance listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests sent to this instance whose response has not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.sum(|n| n.load(Ordering::Relaxed))
    }

    /// This event loop's requests to the instance still in flight: each loop balances its
    /// own, as nginx's workers do, instead of all writing one shared count.
    fn in_flight_here(&self) -> usize {
        self.in_flight.local().load(Ordering::Relaxed)
    }

    /// Counts one more request until the returned guard is dropped.
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        let shard = self.in_flight.local_index();
        self.in_flight.get(shard).fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone(), shard)
    }
}

/// Keeps an instance's in-flight count raised while a request uses it: a slot on it.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Instance>, usize);

impl InFlight {
    /// The instance the slot is on.
    pub(crate) fn instance(&self) -> &Arc<Instance> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.get(self.1).fetch_sub(1, Ordering::Relaxed);
        self.0.waiting.slot_freed();
    }
}

/// A known funko: its settings and the instances that are ready now (possibly none).
#[derive(Debug)]
pub struct FunkoRoute {
    settings: FunkoSettings,
    instances: Vec<Arc<Instance>>,
    cursor: AtomicUsize,
    pub(crate) stats: Arc<FunkoStats>,
    /// `/funko/<name>`, the X-Forwarded-Prefix value, made once here rather than per request.
    prefix: Option<HeaderValue>,
    waiting: Arc<Waiting>,
}

impl FunkoRoute {
    /// The funko's settings.
    pub fn settings(&self) -> &FunkoSettings {
        &self.settings
    }

    /// The path prefix the funko is served under, as a header value.
    pub(crate) fn prefix(&self) -> Option<&HeaderValue> {
        self.prefix.as_ref()
    }

    /// Its request counters as they stand now.
    pub fn counts(&self) -> crate::metrics::FunkoCounts {
        self.stats.counts()
    }

    /// The ready instances.
    pub fn instances(&self) -> &[Arc<Instance>] {
        &self.instances
    }

    /// Requests held now, waiting for an instance.
    pub fn held(&self) -> usize {
        self.waiting.held()
    }

    /// The funko's load: requests in flight to its instances plus requests held for one
    /// (what the autoscaler samples).
    pub fn load(&self) -> usize {
        usize::try_from(self.stats.in_flight()).unwrap_or(0) + self.held()
    }

    pub(crate) fn waiting(&self) -> &Arc<Waiting> {
        &self.waiting
    }

    /// Picks an instance other than `except` as [`pick`](Self::pick) does and takes a slot on
    /// it; `None` when none is ready or every one is at the funko's `limit`.
    pub(crate) fn take(&self, except: Option<&InstanceId>) -> Option<InFlight> {
        let Some(limit) = self.settings.limit else {
            return self.pick(except).map(|i| i.start_request());
        };
        let free = |i: &&Arc<Instance>| except != Some(&i.id) && i.in_flight() < limit;
        // The least busy free instance; the slot is taken first and given back when a racing
        // request took the last one, so the limit is never passed.
        let instance = self
            .instances
            .iter()
            .filter(free)
            .min_by_key(|i| i.in_flight())?;
        let slot = instance.start_request();
        (instance.in_flight() <= limit).then_some(slot)
    }

    /// Picks a ready instance other than `except`: of two neighbours in round-robin order, the
    /// one with fewer requests in flight, so a slow instance gets less work.
    pub fn pick(&self, except: Option<&InstanceId>) -> Option<Arc<Instance>> {
        let usable = |i: &&Arc<Instance>| except != Some(&i.id);
        let n = self.instances.iter().filter(usable).count();
        if n <= 1 {
            return self.instances.iter().find(usable).cloned();
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let a = self.instances.iter().filter(usable).nth(start % n)?;
        let b = self.instances.iter().filter(usable).nth((start + 1) % n)?;
        Some(
            if b.in_flight_here() < a.in_flight_here() {
                b
            } else {
                a
            }
            .clone(),
        )
    }

    fn with(&self, settings: FunkoSettings, instances: Vec<Arc<Instance>>) -> Self {
        Self {
            settings,
            instances,
            cursor: AtomicUsize::new(self.cursor.load(Ordering::Relaxed)),
            stats: self.stats.clone(),
            prefix: self.prefix.clone(),
            waiting: self.waiting.clone(),
        }
    }
}

/// An immutable snapshot of all routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    funkos: HashMap<String, Arc<FunkoRoute>>,
}

impl RouteTable {
    /// The route of a funko, if the funko is known.
    pub fn get(&self, funko: &str) -> Option<&Arc<FunkoRoute>> {
        self.funkos.get(funko)
    }

    /// All known funkos and their routes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<FunkoRoute>)> {
        self.funkos.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// The shared route table: requests read it, feeders change it. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    table: ArcSwap<RouteTable>,
    // Writers are rare; serialising them keeps read-modify-swap from losing an update.
    writer: Mutex<()>,
    demand: OnceLock<Demand>,
    scale: ScaleMetrics,
}

/// Told the name of a funko whose first request was just held (see [`Routes::on_demand`]).
struct Demand(Box<dyn Fn(&str) + Send + Sync>);

impl fmt::Debug for Demand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Demand")
    }
}

impl Routes {
    /// An empty table: every funko is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot; holding it does not block writers.
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.inner.table.load()
    }

    /// The current snapshot as an owned handle, for keeping it beyond a request.
    pub fn load_full(&self) -> Arc<RouteTable> {
        self.inner.table.load_full()
    }

    /// Whether `id` is a ready instance of `funko` now.
    pub fn contains(&self, funko: &str, id: &InstanceId) -> bool {
        self.load()
            .get(funko)
            .is_some_and(|r| r.instances.iter().any(|i| &i.id == id))
    }

    /// Sets what hears of demand: called (on the request's task, so it must not block) with
    /// the funko's name when a request is held and none was before. Set once; later calls
    /// are ignored.
    pub fn on_demand(&self, demand: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.inner.demand.set(Demand(Box::new(demand)));
    }

    pub(crate) fn raise_demand(&self, funko: &str) {
        if let Some(demand) = self.inner.demand.get() {
            (demand.0)(funko);
        }
    }

    /// The autoscaler's view of a funko for `/metrics`: instances it wants, and ready ones.
    pub fn set_replicas(&self, funko: &str, desired: usize, ready: usize) {
        self.inner.scale.set_replicas(funko, desired, ready);
    }

    /// A wake of `funko` by `tier` (`paused`, `stopped`, `created`) took `took`, for
    /// `/metrics`.
    pub fn record_wake(&self, funko: &str, tier: &'static str, took: std::time::Duration) {
        self.inner.scale.record_wake(funko, tier, took);
    }

    /// Forgets the autoscaler figures of funkos `keep` does not keep.
    pub fn retain_scaled(&self, keep: impl Fn(&str) -> bool) {
        self.inner.scale.retain(keep);
    }

    pub(crate) fn render_scale(&self, out: &mut String) {
        self.inner.scale.render(out);
    }

    /// The funko cannot wake (its build failed, its instance crashed at start…): every request
    /// held for it now is answered 503 with `reason` instead of waiting for its timeout.
    pub fn wake_failed(&self, funko: &str, reason: &str) {
        if let Some(route) = self.load().get(funko) {
            route.waiting.fail(reason);
        }
    }

    /// Makes a funko known with these settings, keeping its ready instances (if any).
    pub fn set_funko(&self, funko: &str, settings: FunkoSettings) {
        self.update(funko, |route, _| {
            let instances = route.map(|r| r.instances.clone()).unwrap_or_default();
            Some((settings, instances))
        });
    }

    /// Forgets a funko: its requests answer 404 from now on.
    pub fn remove_funko(&self, funko: &str) {
        self.update(funko, |_, _| None);
    }

    /// Adds (or moves) a ready instance; an unknown funko becomes known with default settings.
    pub fn insert_ready(&self, funko: &str, id: InstanceId, addr: SocketAddr) {
        self.update(funko, |route, waiting| {
            let settings = route.map(|r| r.settings.clone()).unwrap_or_default();
            let mut instances: Vec<_> = route
                .map(|r| r.instances.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i.id != id || i.addr == addr)
                .collect();
            if !instances.iter().any(|i| i.id == id) {
                instances.push(Arc::new(Instance::new(id, addr, waiting.clone())));
                instances.sort_by(|a, b| a.id.cmp(&b.id));
            }
            Some((settings, instances))
        });
    }

    /// Takes an instance out of rotation (before it is stopped); the funko stays known.
    /// Returns whether it was there.
    pub fn remove_instance(&self, funko: &str, id: &InstanceId) -> bool {
        let mut found = false;
        self.update(funko, |route, _| {
            let route = route?;
            found = route.instances.iter().any(|i| &i.id == id);
            let instances = route
                .instances
                .iter()
                .filter(|i| &i.id != id)
                .cloned()
                .collect();
            Some((route.settings.clone(), instances))
        });
        found
    }

    /// Replaces the whole table: `funkos` maps each known funko to its settings and ready
    /// instances; every other funko becomes unknown.
    pub fn replace_all(
        &self,
        funkos: HashMap<String, (FunkoSettings, Vec<(InstanceId, SocketAddr)>)>,
    ) {
        let _writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.load();
        let mut table = RouteTable::default();
        for (name, (settings, wanted)) in funkos {
            let previous = old.get(&name);
            let waiting = previous.map(|r| r.waiting.clone()).unwrap_or_default();
            let mut instances: Vec<Arc<Instance>> = wanted
                .into_iter()
                .map(|(id, addr)| {
                    previous
                        .and_then(|r| r.instances.iter().find(|i| i.id == id && i.addr == addr))
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Instance::new(id, addr, waiting.clone())))
                })
                .collect();
            instances.sort_by(|a, b| a.id.cmp(&b.id));
            let route = match previous {
                Some(r) => r.with(settings, instances),
                None => new_route(&name, settings, instances, waiting),
            };
            table.funkos.insert(name, Arc::new(route));
        }
        self.inner.table.store(Arc::new(table));
        // Held requests look again: at their funko's new instances, or find it gone.
        for (_, route) in old.iter() {
            route.waiting.route_changed();
        }
        for (_, route) in self.load().iter() {
            route.waiting.route_changed();
        }
    }

    /// Applies `change` to one funko's route (None: unknown) and swaps in the new table.
    fn update<F>(&self, funko: &str, change: F)
    where
        F: FnOnce(
            Option<&FunkoRoute>,
            &Arc<Waiting>,
        ) -> Option<(FunkoSettings, Vec<Arc<Instance>>)>,
    {
        let _writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.load();
        let previous = old.get(funko);
        let waiting = previous.map(|r| r.waiting.clone()).unwrap_or_default();
        let next = change(previous.map(|r| r.as_ref()), &waiting);
        // A resync re-declares every funko; leave the table alone when nothing changed.
        if let (Some((settings, instances)), Some(prev)) = (&next, previous)
            && *settings == prev.settings
            && instances.len() == prev.instances.len()
            && instances
                .iter()
                .zip(&prev.instances)
                .all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return;
        }
        tracing::debug!(%funko, ready = ?next.as_ref().map(|(_, i)| i.len()), "The route of a funko changed.");
        let mut funkos = old.funkos.clone();
        match (next, previous) {
            (None, _) => {
                funkos.remove(funko);
            }
            (Some((settings, instances)), Some(prev)) => {
                funkos.insert(funko.to_owned(), Arc::new(prev.with(settings, instances)));
            }
            (Some((settings, instances)), None) => {
                funkos.insert(
                    funko.to_owned(),
                    Arc::new(new_route(funko, settings, instances, waiting.clone())),
                );
            }
        }
        self.inner.table.store(Arc::new(RouteTable { funkos }));
        // Held requests look again: at the new instances, or find the funko gone.
        waiting.route_changed();
    }
}

fn new_route(
    name: &str,
    settings: FunkoSettings,
    instances: Vec<Arc<Instance>>,
    waiting: Arc<Waiting>,
) -> FunkoRoute {
    FunkoRoute {
        settings,
        instances,
        cursor: AtomicUsize::new(0),
        stats: Arc::new(FunkoStats::default()),
        prefix: HeaderValue::from_str(&format!("/funko/{name}")).ok(),
        waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn unknown_known_and_ready_are_told_apart() {
        let routes = Routes::new();
        assert!(routes.load().get("hello").is_none());
        routes.set_funko("hello", FunkoSettings::default());
        assert!(routes.load().get("hello").unwrap().pick(None).is_none());
        routes.insert_ready("hello", InstanceId::new("a"), addr(1));
        assert_eq!(
            routes
                .load()
                .get("hello")
                .unwrap()
                .pick(None)
                .unwrap()
                .addr(),
            addr(1)
        );
        assert!(routes.remove_instance("hello", &InstanceId::new("a")));
        assert!(routes.load().get("hello").is_some());
        routes.remove_funko("hello");
        assert!(routes.load().get("hello").is_none());
    }

    #[test]
    fn declaring_an_unchanged_funko_keeps_the_table() {
        let routes = Routes::new();
        routes.insert_ready("f", InstanceId::new("a"), addr(1));
        let before = routes.load_full();
        routes.set_funko("f", FunkoSettings::default());
        assert!(Arc::ptr_eq(&before, &routes.load_full()));
        routes.set_funko(
            "f",
            FunkoSettings {
                request_timeout: Duration::from_secs(1),
                ..FunkoSettings::default()
            },
        );
        assert!(!Arc::ptr_eq(&before, &routes.load_full()));
    }

    #[test]
    fn pick_spreads_requests_and_skips_the_excluded_instance() {
        let routes = Routes::new();
        for (id, port) in [("a", 1), ("b", 2), ("c", 3)] {
            routes.insert_ready("f", InstanceId::new(id), addr(port));
        }
        let table = routes.load();
        let route = table.get("f").unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..9 {
            seen.insert(route.pick(None).unwrap().addr().port());
        }
        assert_eq!(seen.len(), 3);
        let b = InstanceId::new("b");
        for _ in 0..9 {
            assert_ne!(route.pick(Some(&b)).unwrap().id(), &b);
        }
    }

    #[test]
    fn pick_prefers_the_less_busy_neighbour() {
        let routes = Routes::new();
        routes.insert_ready("f", InstanceId::new("a"), addr(1));
        routes.insert_ready("f", InstanceId::new("b"), addr(2));
        let table = routes.load();
        let route = table.get("f").unwrap();
        let busy = route.instances()[0].clone();
        let _guards: Vec<_> = (0..3).map(|_| busy.start_request()).collect();
        for _ in 0..4 {
            assert_eq!(route.pick(None).unwrap().id().as_str(), "b");
        }
    }

    #[test]
    fn a_table_replacement_keeps_in_flight_counts_of_surviving_instances() {
        let routes = Routes::new();
        routes.insert_ready("f", InstanceId::new("a"), addr(1));
        let a = routes.load().get("f").unwrap().instances()[0].clone();
        let _guard = a.start_request();
        routes.insert_ready("f", InstanceId::new("b"), addr(2));
        let table = routes.load();
        let again = table
            .get("f")
            .unwrap()
            .instances()
            .iter()
            .find(|i| i.id().as_str() == "a");
        assert_eq!(again.unwrap().in_flight(), 1);
        let mut all = HashMap::new();
        all.insert(
            "g".to_owned(),
            (
                FunkoSettings::default(),
                vec![(InstanceId::new("x"), addr(9))],
            ),
        );
        routes.replace_all(all);
        assert!(routes.load().get("f").is_none());
        assert!(routes.contains("g", &InstanceId::new("x")));
    }
}
