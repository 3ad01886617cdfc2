//! Request counters and the Prometheus text rendering of `GET /metrics`.
//!
//! Each funko's counters live next to its route, so counting a request touches no lock and
//! no map; counters of a funko that leaves the table go with it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::route_table::RouteTable;
use crate::shard::Sharded;

/// Upper bounds (seconds) of the request duration histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

/// Counters of one funko (or of requests that matched no funko), one copy per event loop
/// (about 4 KiB each, mostly the per-status counts).
#[derive(Debug, Default)]
pub(crate) struct FunkoStats {
    shards: Sharded<Counters>,
    /// Requests that got no instance, by reason (rare: a lock is fine).
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Debug)]
struct Counters {
    by_status: [AtomicU64; STATUSES],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    in_flight: AtomicI64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
        }
    }
}

impl FunkoStats {
    /// Counts one answered request: its status and the time until its response head.
    pub(crate) fn observe(&self, status: u16, elapsed: Duration) {
        let counters = self.shards.local();
        let slot = usize::from(status.saturating_sub(FIRST_STATUS)).min(STATUSES - 1);
        counters.by_status[slot].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            counters.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        counters.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts a request as in flight (`+1`) or done (`-1`).
    pub(crate) fn add_in_flight(&self, delta: i64) {
        self.shards
            .local()
            .in_flight
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a request that got no instance, by the reason's label.
    pub(crate) fn refused(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn sum(&self, field: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.shards.sum(|c| field(c).load(Ordering::Relaxed))
    }

    pub(crate) fn in_flight(&self) -> i64 {
        self.shards.sum(|c| c.in_flight.load(Ordering::Relaxed))
    }

    /// The counters as they stand, summed over event loops (read off the hot path, by whoever
    /// keeps a history of them).
    pub(crate) fn counts(&self) -> FunkoCounts {
        let server_errors = (500..600)
            .map(|code| usize::from(code - FIRST_STATUS))
            .map(|slot| self.sum(|c| &c.by_status[slot]))
            .sum();
        let requests = self.sum(|c| &c.count);
        let mut latency = Vec::with_capacity(BUCKETS.len() + 1);
        let mut bucketed = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.sum(|c| &c.buckets[i]);
            bucketed += n;
            latency.push((*bound, n));
        }
        // Slower than the last bound: only counted in `count`.
        latency.push((f64::INFINITY, requests.saturating_sub(bucketed)));
        FunkoCounts {
            requests,
            server_errors,
            latency,
        }
    }
}

/// One funko's request counters at one moment, all counted since its route was made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunkoCounts {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx status (by the instance or by the proxy).
    pub server_errors: u64,
    /// Requests by time until the response head: (upper bound in seconds, count in that bucket
    /// alone); the last bound is infinity.
    pub latency: Vec<(f64, u64)>,
}

/// Proxy-wide counters that belong to no route.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Requests for no known funko (and the proxy's own endpoints are not counted).
    pub(crate) unrouted: FunkoStats,
    /// Requests being forwarded right now, over all funkos.
    in_flight: Sharded<AtomicI64>,
    /// Clients closed on arrival because the listener held its most connections.
    pub(crate) connections_refused: AtomicU64,
    /// Requests held now across every funko, against `ProxyConfig::max_held`.
    pub(crate) held: std::sync::atomic::AtomicUsize,
}

impl Metrics {
    /// Counts a request as in flight (`+1`) or done (`-1`).
    pub(crate) fn add_in_flight(&self, delta: i64) {
        self.in_flight.local().fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    /// `access_log_dropped` is how many access-log lines were dropped so far.
    pub(crate) fn render(&self, table: &RouteTable, access_log_dropped: u64) -> String {
        let mut funkos: Vec<_> = table.iter().collect();
        funkos.sort_by_key(|(name, _)| *name);
        let all: Vec<(&str, &FunkoStats)> = funkos
            .iter()
            .map(|(name, route)| (*name, route.stats.as_ref()))
            .chain(std::iter::once(("", &self.unrouted)))
            .collect();
        let mut out = String::with_capacity(4096);

        out.push_str(
            "# HELP faaso_proxy_requests_total Requests answered, by funko and status code.\n",
        );
        out.push_str("# TYPE faaso_proxy_requests_total counter\n");
        for (name, stats) in &all {
            for i in 0..STATUSES {
                let n = stats.sum(|c| &c.by_status[i]);
                if n > 0 {
                    let code = usize::from(FIRST_STATUS) + i;
                    let _ = writeln!(
                        out,
                        "faaso_proxy_requests_total{{funko=\"{name}\",code=\"{code}\"}} {n}"
                    );
                }
            }
        }

        out.push_str(
            "# HELP faaso_proxy_request_duration_seconds Time until the response head, by funko.\n",
        );
        out.push_str("# TYPE faaso_proxy_request_duration_seconds histogram\n");
        for (name, stats) in &all {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += stats.sum(|c| &c.buckets[i]);
                let _ = writeln!(
                    out,
                    "faaso_proxy_request_duration_seconds_bucket{{funko=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = stats.sum(|c| &c.count);
            let sum = stats.sum(|c| &c.sum_micros) as f64 / 1e6;
            let _ = writeln!(
                out,
                "faaso_proxy_request_duration_seconds_bucket{{funko=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "faaso_proxy_request_duration_seconds_sum{{funko=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "faaso_proxy_request_duration_seconds_count{{funko=\"{name}\"}} {count}"
            );
        }

        out.push_str("# HELP faaso_proxy_in_flight_requests Requests being forwarded now.\n");
        out.push_str("# TYPE faaso_proxy_in_flight_requests gauge\n");
        let _ = writeln!(
            out,
            "faaso_proxy_in_flight_requests {}",
            self.in_flight.sum(|n| n.load(Ordering::Relaxed))
        );
        for (name, route) in &funkos {
            let n = route.stats.in_flight();
            let _ = writeln!(
                out,
                "faaso_proxy_in_flight_requests{{funko=\"{name}\"}} {n}"
            );
        }

        out.push_str(
            "# HELP faaso_proxy_held_requests Requests waiting for an instance (the funko wakes or every instance is at its limit), by funko.\n",
        );
        out.push_str("# TYPE faaso_proxy_held_requests gauge\n");
        for (name, route) in &funkos {
            let n = route.held();
            let _ = writeln!(out, "faaso_proxy_held_requests{{funko=\"{name}\"}} {n}");
        }

        out.push_str(
            "# HELP faaso_proxy_refused_requests_total Requests that got no instance, by funko and reason (no_instance, queue_full, proxy_full, wake_failed, funko_removed, timeout).\n",
        );
        out.push_str("# TYPE faaso_proxy_refused_requests_total counter\n");
        for (name, route) in &funkos {
            for (reason, n) in route.stats.refusals() {
                let _ = writeln!(
                    out,
                    "faaso_proxy_refused_requests_total{{funko=\"{name}\",reason=\"{reason}\"}} {n}"
                );
            }
        }

        out.push_str(
            "# HELP faaso_proxy_ready_instances Instances that receive requests, by funko.\n",
        );
        out.push_str("# TYPE faaso_proxy_ready_instances gauge\n");
        for (name, route) in &funkos {
            let n = route.instances().len();
            let _ = writeln!(out, "faaso_proxy_ready_instances{{funko=\"{name}\"}} {n}");
        }

        out.push_str(
            "# HELP faaso_proxy_connections_refused_total Clients closed on arrival because the listener held its most connections (--max-connections).\n",
        );
        out.push_str("# TYPE faaso_proxy_connections_refused_total counter\n");
        let refused = self.connections_refused.load(Ordering::Relaxed);
        let _ = writeln!(out, "faaso_proxy_connections_refused_total {refused}");

        out.push_str(
            "# HELP faaso_proxy_access_log_dropped_total Access-log lines dropped because their destination did not keep up.\n",
        );
        out.push_str("# TYPE faaso_proxy_access_log_dropped_total counter\n");
        let _ = writeln!(
            out,
            "faaso_proxy_access_log_dropped_total {access_log_dropped}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route_table::{InstanceId, Routes};

    #[test]
    fn rendering_shows_counts_histogram_and_ready_instances() {
        let routes = Routes::new();
        routes.insert_ready("hello", InstanceId::new("a"), ([127, 0, 0, 1], 1).into());
        let metrics = Metrics::default();
        let table = routes.load();
        let stats = &table.get("hello").unwrap().stats;
        stats.observe(200, Duration::from_millis(3));
        stats.observe(200, Duration::from_millis(30));
        metrics.unrouted.observe(404, Duration::from_micros(10));
        let text = metrics.render(&table, 7);
        assert!(text.contains("faaso_proxy_requests_total{funko=\"hello\",code=\"200\"} 2"));
        assert!(text.contains("faaso_proxy_requests_total{funko=\"\",code=\"404\"} 1"));
        assert!(text.contains(
            "faaso_proxy_request_duration_seconds_bucket{funko=\"hello\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("faaso_proxy_request_duration_seconds_count{funko=\"hello\"} 2"));
        assert!(text.contains("faaso_proxy_ready_instances{funko=\"hello\"} 1"));
        assert!(text.contains("faaso_proxy_access_log_dropped_total 7\n"));
    }

    #[test]
    fn counts_split_latency_into_buckets_and_count_server_errors() {
        let stats = FunkoStats::default();
        stats.observe(200, Duration::from_millis(3));
        stats.observe(502, Duration::from_millis(30));
        stats.observe(599, Duration::from_secs(20));
        stats.observe(404, Duration::from_millis(3));
        let counts = stats.counts();
        assert_eq!(counts.requests, 4);
        assert_eq!(counts.server_errors, 2);
        let at = |bound: f64| counts.latency.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.005), 2);
        assert_eq!(at(0.05), 1);
        assert_eq!(at(f64::INFINITY), 1);
        assert_eq!(counts.latency.iter().map(|(_, n)| n).sum::<u64>(), 4);
    }
}
