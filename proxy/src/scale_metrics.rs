//! What the server's autoscaler reports through `GET /metrics`: desired and ready instances
//! per funko, and how long wakes took by tier (paused, stopped, created). Written about once a
//! second per funko, so a lock is fine.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the wake latency histogram: milliseconds for a thaw, seconds for
/// a new container.
const WAKE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub(crate) struct ScaleMetrics {
    funkos: Mutex<BTreeMap<String, FunkoScale>>,
}

#[derive(Debug, Default)]
struct FunkoScale {
    desired: usize,
    ready: usize,
    wakes: BTreeMap<&'static str, Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; WAKE_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl ScaleMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FunkoScale>> {
        self.funkos.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_replicas(&self, funko: &str, desired: usize, ready: usize) {
        let mut funkos = self.lock();
        let entry = funkos.entry(funko.to_owned()).or_default();
        entry.desired = desired;
        entry.ready = ready;
    }

    pub(crate) fn record_wake(&self, funko: &str, tier: &'static str, took: Duration) {
        let mut funkos = self.lock();
        let histogram = funkos
            .entry(funko.to_owned())
            .or_default()
            .wakes
            .entry(tier)
            .or_default();
        let secs = took.as_secs_f64();
        if let Some(i) = WAKE_BUCKETS.iter().position(|b| secs <= *b) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += secs;
    }

    /// Forgets funkos that are no longer autoscaled.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    pub(crate) fn render(&self, out: &mut String) {
        let funkos = self.lock();
        if funkos.is_empty() {
            return;
        }
        out.push_str("# HELP faaso_autoscaler_desired_instances Ready instances the autoscaler wants, by funko.\n");
        out.push_str("# TYPE faaso_autoscaler_desired_instances gauge\n");
        for (name, f) in funkos.iter() {
            let _ = writeln!(
                out,
                "faaso_autoscaler_desired_instances{{funko=\"{name}\"}} {}",
                f.desired
            );
        }
        out.push_str("# HELP faaso_autoscaler_ready_instances Ready instances when the autoscaler last decided, by funko.\n");
        out.push_str("# TYPE faaso_autoscaler_ready_instances gauge\n");
        for (name, f) in funkos.iter() {
            let _ = writeln!(
                out,
                "faaso_autoscaler_ready_instances{{funko=\"{name}\"}} {}",
                f.ready
            );
        }
        out.push_str("# HELP faaso_wake_duration_seconds Time from a wake's start until the instance is routed, by funko and tier (paused, stopped, created).\n");
        out.push_str("# TYPE faaso_wake_duration_seconds histogram\n");
        for (name, f) in funkos.iter() {
            for (tier, h) in &f.wakes {
                let mut cumulative = 0;
                for (i, bound) in WAKE_BUCKETS.iter().enumerate() {
                    cumulative += h.buckets[i];
                    let _ = writeln!(
                        out,
                        "faaso_wake_duration_seconds_bucket{{funko=\"{name}\",tier=\"{tier}\",le=\"{bound}\"}} {cumulative}"
                    );
                }
                let labels = format!("funko=\"{name}\",tier=\"{tier}\"");
                let _ = writeln!(
                    out,
                    "faaso_wake_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "faaso_wake_duration_seconds_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(
                    out,
                    "faaso_wake_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_are_bucketed_by_tier_and_replicas_shown() {
        let metrics = ScaleMetrics::default();
        metrics.set_replicas("hello", 3, 1);
        metrics.record_wake("hello", "paused", Duration::from_millis(8));
        metrics.record_wake("hello", "created", Duration::from_millis(900));
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("faaso_autoscaler_desired_instances{funko=\"hello\"} 3"));
        assert!(out.contains("faaso_autoscaler_ready_instances{funko=\"hello\"} 1"));
        assert!(out.contains(
            "faaso_wake_duration_seconds_bucket{funko=\"hello\",tier=\"paused\",le=\"0.01\"} 1"
        ));
        assert!(out.contains(
            "faaso_wake_duration_seconds_bucket{funko=\"hello\",tier=\"created\",le=\"0.5\"} 0"
        ));
        assert!(
            out.contains("faaso_wake_duration_seconds_count{funko=\"hello\",tier=\"created\"} 1")
        );
        metrics.retain(|_| false);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.is_empty());
    }
}
