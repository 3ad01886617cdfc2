//! The last 15 minutes of each funko's traffic, kept in memory for the web UI's charts
//! (`GET /admin/traffic`): every few seconds the proxy's counters are read and the difference to
//! the reading before becomes one sample (requests/s, p50 and p99 latency, error rate, ready
//! instances).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AdminState;

/// How much history is kept.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// One funko's counters at one moment, as the proxy has them (counted since its route was made).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficReading {
    /// The funko.
    pub funko: String,
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx status.
    pub server_errors: u64,
    /// (upper bound in seconds, requests in that bucket alone); the last bound is infinity.
    pub latency: Vec<(f64, u64)>,
    /// The ids of the instances that receive requests now.
    pub ready: Vec<String>,
}

/// Reads every funko's counters now.
pub type ReadTraffic = Arc<dyn Fn() -> Vec<TrafficReading> + Send + Sync>;

/// One funko over one sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The end of the interval, seconds since the Unix epoch.
    pub t: u64,
    /// Requests answered per second.
    pub requests_per_s: f64,
    /// Median time until the response head, in milliseconds (absent with no requests).
    pub p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<f64>,
    /// Share of requests answered with a 5xx status, 0 to 1 (absent with no requests).
    pub error_rate: Option<f64>,
    /// Instances that received requests at the end of the interval.
    pub instances: u32,
}

/// The proxy's counters and their recent history.
#[derive(Clone)]
pub struct Traffic {
    read: ReadTraffic,
    every: Duration,
    history: Arc<Mutex<History>>,
}

#[derive(Default)]
struct History {
    last: HashMap<String, TrafficReading>,
    last_at: Option<Instant>,
    series: BTreeMap<String, VecDeque<Sample>>,
}

impl Traffic {
    /// Traffic read by `read`, sampled every `every` once [`Traffic::spawn_sampler`] runs.
    pub fn new(read: ReadTraffic, every: Duration) -> Self {
        Self {
            read,
            every,
            history: Arc::default(),
        }
    }

    /// No proxy: nothing is ever read (for an admin API served alone, as in tests).
    pub fn none() -> Self {
        Self::new(Arc::new(Vec::new), Duration::from_secs(5))
    }

    /// The ids of `funko`'s instances that receive requests right now.
    pub fn ready(&self, funko: &str) -> Vec<String> {
        (self.read)()
            .into_iter()
            .find(|r| r.funko == funko)
            .map(|r| r.ready)
            .unwrap_or_default()
    }

    /// Samples every [`Traffic::new`]'s `every`, for as long as the runtime runs.
    pub fn spawn_sampler(&self) -> tokio::task::JoinHandle<()> {
        let traffic = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(traffic.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                traffic.sample();
            }
        })
    }

    /// Reads the counters and records one sample per funko (none at the first reading: a
    /// sample is a difference).
    pub fn sample(&self) {
        let readings = (self.read)();
        let now = Instant::now();
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = history.last_at.map(|at| now - at);
        let keep = (WINDOW.as_secs_f64() / self.every.as_secs_f64()).ceil() as usize;
        let mut last = HashMap::with_capacity(readings.len());
        for reading in readings {
            if let Some(elapsed) = elapsed {
                let before = history.last.get(&reading.funko);
                let sample = between(before, &reading, elapsed, t);
                let series = history.series.entry(reading.funko.clone()).or_default();
                series.push_back(sample);
                while series.len() > keep {
                    series.pop_front();
                }
            }
            last.insert(reading.funko.clone(), reading);
        }
        // A funko gone from the proxy keeps its samples until they are older than the window.
        let oldest = t.saturating_sub(WINDOW.as_secs());
        history.series.retain(|_, series| {
            while series.front().is_some_and(|s| s.t < oldest) {
                series.pop_front();
            }
            !series.is_empty()
        });
        history.last = last;
        history.last_at = Some(now);
    }

    fn snapshot(&self) -> BTreeMap<String, Vec<Sample>> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let series = history.series.iter();
        series
            .map(|(funko, samples)| (funko.clone(), samples.iter().cloned().collect()))
            .collect()
    }
}

/// The sample for the interval from `before` to `now`. Counters that went down were made anew
/// (the funko left the route table and came back), so they count from zero.
fn between(
    before: Option<&TrafficReading>,
    now: &TrafficReading,
    elapsed: Duration,
    t: u64,
) -> Sample {
    let before = before.filter(|b| b.requests <= now.requests);
    let requests = now.requests - before.map_or(0, |b| b.requests);
    let errors = now
        .server_errors
        .saturating_sub(before.map_or(0, |b| b.server_errors));
    let latency: Vec<(f64, u64)> = now
        .latency
        .iter()
        .enumerate()
        .map(|(i, (bound, n))| {
            let earlier = before.and_then(|b| b.latency.get(i)).map_or(0, |(_, n)| *n);
            (*bound, n.saturating_sub(earlier))
        })
        .collect();
    let rate = |n: u64| (requests > 0).then(|| n as f64 / requests as f64);
    Sample {
        t,
        requests_per_s: requests as f64 / elapsed.as_secs_f64().max(0.001),
        p50_ms: percentile(&latency, 0.50).map(|s| s * 1000.0),
        p99_ms: percentile(&latency, 0.99).map(|s| s * 1000.0),
        error_rate: rate(errors),
        instances: u32::try_from(now.ready.len()).unwrap_or(u32::MAX),
    }
}

/// The `q` quantile of a histogram, in seconds, interpolated linearly inside its bucket (as
/// Prometheus' `histogram_quantile` does); the open last bucket answers its lower bound.
fn percentile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    let mut lower = 0.0;
    for (upper, n) in buckets {
        if *n > 0 && (below + n) as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let within = (rank - below as f64) / *n as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += n;
        lower = *upper;
    }
    Some(lower)
}

/// Routes under `/admin/traffic`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/traffic", get(history))
}

async fn history(State(state): State<Arc<AdminState>>) -> Response {
    Json(serde_json::json!({
        "interval_s": state.traffic.every.as_secs_f64(),
        "window_s": WINDOW.as_secs(),
        "funkos": state.traffic.snapshot(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(requests: u64, errors: u64, latency: &[u64], ready: usize) -> TrafficReading {
        let bounds = [0.001, 0.01, 0.1, f64::INFINITY];
        TrafficReading {
            funko: "hello".into(),
            requests,
            server_errors: errors,
            latency: bounds
                .iter()
                .copied()
                .zip(latency.iter().copied())
                .collect(),
            ready: (0..ready).map(|i| format!("id{i}")).collect(),
        }
    }

    #[test]
    fn a_sample_is_the_difference_between_two_readings() {
        let before = reading(10, 1, &[10, 0, 0, 0], 1);
        let now = reading(60, 11, &[10, 49, 0, 1], 2);
        let s = between(Some(&before), &now, Duration::from_secs(5), 99);
        assert_eq!(s.t, 99);
        assert_eq!(s.requests_per_s, 10.0);
        assert_eq!(s.error_rate, Some(0.2));
        assert_eq!(s.instances, 2);
        // 49 of 50 between 1 and 10 ms: the median half way through that bucket.
        let p50 = s.p50_ms.unwrap();
        assert!((p50 - (1.0 + 9.0 * 25.0 / 49.0)).abs() < 1e-9, "{p50}");
        // The 99th percentile (rank 49.5) lies in the open bucket: its lower bound.
        assert_eq!(s.p99_ms, Some(100.0));
    }

    #[test]
    fn no_requests_means_no_latency_and_no_error_rate() {
        let r = reading(5, 0, &[5, 0, 0, 0], 1);
        let s = between(Some(&r), &r, Duration::from_secs(5), 1);
        assert_eq!(s.requests_per_s, 0.0);
        assert_eq!((s.p50_ms, s.p99_ms, s.error_rate), (None, None, None));
    }

    #[test]
    fn counters_made_anew_count_from_zero() {
        let before = reading(100, 0, &[100, 0, 0, 0], 1);
        let now = reading(4, 2, &[0, 4, 0, 0], 1);
        let s = between(Some(&before), &now, Duration::from_secs(2), 1);
        assert_eq!(s.requests_per_s, 2.0);
        assert_eq!(s.error_rate, Some(0.5));
        assert!(s.p50_ms.unwrap() > 1.0 && s.p50_ms.unwrap() <= 10.0);
    }

    #[test]
    fn sampling_keeps_one_window_and_starts_at_the_second_reading() {
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let read = {
            let counter = counter.clone();
            Arc::new(move || {
                let n = counter.fetch_add(3, std::sync::atomic::Ordering::Relaxed) + 3;
                vec![reading(n, 0, &[n, 0, 0, 0], 1)]
            })
        };
        let traffic = Traffic::new(read, Duration::from_secs(300));
        traffic.sample();
        assert!(traffic.snapshot().is_empty());
        for _ in 0..5 {
            traffic.sample();
        }
        // 15 minutes at one sample per 5 minutes: 3 kept.
        let series = &traffic.snapshot()["hello"];
        assert_eq!(series.len(), 3);
        assert!(series.iter().all(|s| s.requests_per_s > 0.0));
        assert_eq!(traffic.ready("hello"), vec!["id0".to_owned()]);
        assert!(traffic.ready("other").is_empty());
    }
}
