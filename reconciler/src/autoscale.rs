//! How many instances a funko should have, from its load over time. Pure: the caller passes
//! every reading and the clock (`now`), so the rules are tested with synthetic load and no
//! timer. Modelled on Knative's KPA: a stable and a panic window, scale up at once, scale down
//! only on the highest recommendation of the stable window, and scale to zero when idle.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long the stable average looks back, and how long a scale-down waits.
pub const DEFAULT_STABLE_WINDOW: Duration = Duration::from_secs(60);
/// How long the panic average looks back.
pub const DEFAULT_PANIC_WINDOW: Duration = Duration::from_secs(6);
/// Panic when the panic-window load needs this many times the ready instances.
pub const DEFAULT_PANIC_THRESHOLD: f64 = 2.0;
/// With `min: 0`, how long without any load before the funko goes to zero.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(30);

/// Readings closer together than this share one entry, so memory stays bounded however often
/// the caller samples (at most one stable window / `RESOLUTION` entries).
const RESOLUTION: Duration = Duration::from_millis(200);

/// The bounds and timing the autoscaler works within (from funko.yml).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Fewest instances; 0 lets an idle funko scale to zero.
    pub min: u32,
    /// Most instances; wins over `min` should the two ever cross.
    pub max: u32,
    /// Concurrent requests per instance aimed for (> 0).
    pub target: f64,
    /// The window the stable average and the scale-down hold look back over.
    pub stable_window: Duration,
    /// The window the panic average looks back over.
    pub panic_window: Duration,
    /// Panic when the panic-window recommendation is at least this times the ready instances.
    pub panic_threshold: f64,
    /// With `min: 0`: no load at all for this long scales to zero.
    pub idle_after: Duration,
}

impl Policy {
    /// Bounds and target with the default windows, threshold and idle time.
    pub fn new(min: u32, max: u32, target: f64) -> Self {
        Self {
            min,
            max,
            target,
            stable_window: DEFAULT_STABLE_WINDOW,
            panic_window: DEFAULT_PANIC_WINDOW,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            idle_after: DEFAULT_IDLE_AFTER,
        }
    }
}

/// The policy for a funko's `scale:` and `idle:` bounds.
impl From<&crate::desired::Autoscaled> for Policy {
    fn from(bounds: &crate::desired::Autoscaled) -> Self {
        Self {
            stable_window: bounds.stable_window,
            panic_window: bounds.panic_window,
            idle_after: bounds.pause_after,
            ..Policy::new(bounds.min, bounds.max, f64::from(bounds.target))
        }
    }
}

/// How many instances to run, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Instances wanted, within `[min, max]`.
    pub want: u32,
    /// The rule that decided.
    pub reason: Reason,
}

/// The rule behind a [`Decision`]; loads are concurrent requests (in flight plus held).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The stable-window average load decided.
    Load { stable: f64, panic: f64 },
    /// In panic after a burst: only scaling up until the load stays calm for a stable window.
    Panic { stable: f64, panic: f64, ready: u32 },
    /// Less would do, but a higher count was recommended within the stable window.
    HeldDown { recommended: u32, for_secs: u64 },
    /// `min: 0` and no load for a while: one instance kept until `idle_after`.
    Quiet {
        since_secs: u64,
        idle_after_secs: u64,
    },
    /// `min: 0` and no load for `idle_after`: scaled to zero.
    Idle { since_secs: u64 },
    /// The load needs fewer than `min`.
    AtMin { min: u32, recommended: u32 },
    /// The load needs more than `max`.
    AtMax { max: u32, recommended: u32 },
}

impl Reason {
    /// One line for a person: `faaso status` and the scale log line.
    pub fn describe(&self) -> String {
        match self {
            Reason::Load { stable, panic } => {
                format!("load averages {stable:.1} concurrent requests (recently {panic:.1})")
            }
            Reason::Panic {
                panic, ready: 0, ..
            } => {
                format!("waking: {panic:.1} concurrent requests recently and no instance ready")
            }
            Reason::Panic { panic, ready, .. } => format!(
                "panic after a burst ({panic:.1} concurrent requests recently, {ready} ready): \
                 scaling up only until the load stays calm for the stable window"
            ),
            Reason::HeldDown {
                recommended,
                for_secs,
            } => format!(
                "the load needs only {recommended}, but more was needed within the stable \
                 window; scaling down in {for_secs}s at the earliest"
            ),
            Reason::Quiet {
                since_secs,
                idle_after_secs,
            } => format!(
                "no load for {since_secs}s; one instance kept until {idle_after_secs}s without load"
            ),
            Reason::Idle { since_secs } => format!("idle: no load for {since_secs}s"),
            Reason::AtMin { min, recommended } => {
                format!("at min {min} (the load needs {recommended})")
            }
            Reason::AtMax { max, recommended } => {
                format!("at max {max} (the load needs {recommended})")
            }
        }
    }
}

/// A load reading. It stands for the time since the previous one (`span`), because it is
/// the newest knowledge of that stretch; so an average weighs readings by the time they cover
/// and an extra on-demand reading does not count twice.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    span: Duration,
    load: f64,
}

#[derive(Debug, Clone, Copy)]
struct Panic {
    /// The last time the panic condition held.
    last_over: Instant,
    /// The count reached in this panic; it never falls while the panic lasts.
    floor: u32,
}

/// One funko's autoscaler: its recent readings, panic state and last decision.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    policy: Policy,
    start: Instant,
    readings: VecDeque<Reading>,
    last_at: Instant,
    latest: f64,
    last_busy: Option<Instant>,
    /// Recommendations of the stable window, strictly decreasing from the front, so the front
    /// is the window's highest (a sliding-window maximum).
    peaks: VecDeque<(Instant, u32)>,
    seeded: bool,
    panic: Option<Panic>,
    last: Option<Decision>,
}

impl Autoscaler {
    /// A fresh autoscaler; `now` counts as the time of a first empty reading.
    pub fn new(policy: Policy, now: Instant) -> Self {
        Self {
            policy,
            start: now,
            readings: VecDeque::new(),
            last_at: now,
            latest: 0.0,
            last_busy: None,
            peaks: VecDeque::new(),
            seeded: false,
            panic: None,
            last: None,
        }
    }

    /// Takes new bounds or timing; the readings and panic state are kept.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether the last decision was taken in panic.
    pub fn panicking(&self) -> bool {
        self.panic.is_some()
    }

    /// The last decision, if any.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.last.as_ref()
    }

    /// Records the funko's load (in-flight plus held requests) at `now`; a negative or
    /// non-finite load counts as 0.
    pub fn observe(&mut self, now: Instant, load: f64) {
        let load = if load.is_finite() { load.max(0.0) } else { 0.0 };
        let now = now.max(self.last_at);
        let span = now - self.last_at;
        match self.readings.back_mut() {
            // Same instant: the newer reading corrects the older one.
            Some(last) if span.is_zero() => last.load = load,
            // The merged entry keeps the load-time of both, so averages barely move.
            Some(last) if last.span < RESOLUTION => {
                let total = last.span.saturating_add(span);
                last.load = (last.load * last.span.as_secs_f64() + load * span.as_secs_f64())
                    / total.as_secs_f64();
                last.span = total;
                last.at = now;
            }
            _ => self.readings.push_back(Reading {
                at: now,
                span,
                load,
            }),
        }
        self.last_at = now;
        self.latest = load;
        if load > 0.0 {
            self.last_busy = Some(now);
        }
        self.forget_before(now);
    }

    /// How many instances the funko should have at `now`, with `ready` instances ready.
    pub fn decide(&mut self, now: Instant, ready: u32) -> Decision {
        let policy = self.policy.clone();
        self.forget_before(now);

        if let Some(since) = self.idle_for(now, ready) {
            self.go_idle();
            return self.settle(Decision {
                want: 0,
                reason: Reason::Idle {
                    since_secs: since.as_secs(),
                },
            });
        }

        let stable = self.average(now, policy.stable_window);
        let panic = self.average(now, policy.panic_window);
        let stable_rec = recommend(stable, policy.target);
        let panic_rec = recommend(panic, policy.target);

        // With nothing ready any load is a wake; otherwise panic on a burst relative to capacity.
        let over = if ready == 0 {
            panic_rec > 0
        } else {
            f64::from(panic_rec) >= policy.panic_threshold * f64::from(ready)
        };
        let last_want = self.last.as_ref().map_or(0, |d| d.want);
        match (&mut self.panic, over) {
            (Some(p), true) => p.last_over = now,
            (None, true) => {
                self.panic = Some(Panic {
                    last_over: now,
                    floor: last_want,
                })
            }
            (Some(p), false)
                if now.saturating_duration_since(p.last_over) >= policy.stable_window =>
            {
                self.panic = None
            }
            _ => {}
        }
        let raw = match &mut self.panic {
            Some(p) => {
                p.floor = p.floor.max(stable_rec).max(panic_rec);
                p.floor
            }
            None => stable_rec,
        };

        // A fresh autoscaler has no history to justify fewer than what runs: keep that for a
        // stable window unless the load asks for more (a faaso restart does not shed instances).
        if !self.seeded {
            self.seeded = true;
            self.push_peak(now, ready);
        }
        self.push_peak(now, raw);
        let (peak_at, held) = self.peaks.front().copied().unwrap_or((now, raw));

        let (mut want, mut reason) = if self.panic.is_some() {
            (
                held,
                Reason::Panic {
                    stable,
                    panic,
                    ready,
                },
            )
        } else if held > raw {
            let age = now.saturating_duration_since(peak_at);
            let left = policy.stable_window.saturating_sub(age);
            (
                held,
                Reason::HeldDown {
                    recommended: raw,
                    for_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
                },
            )
        } else {
            (raw, Reason::Load { stable, panic })
        };

        if policy.min == 0 && want == 0 {
            let quiet = now.saturating_duration_since(self.last_busy.unwrap_or(self.start));
            want = 1;
            reason = Reason::Quiet {
                since_secs: quiet.as_secs(),
                idle_after_secs: policy.idle_after.as_secs(),
            };
        }

        // min is capped by max so that crossed bounds still give a count within [min, max].
        let min = policy.min.min(policy.max);
        if want > policy.max {
            reason = Reason::AtMax {
                max: policy.max,
                recommended: want,
            };
            want = policy.max;
        } else if want < min {
            reason = Reason::AtMin {
                min,
                recommended: want,
            };
            want = min;
        }
        self.settle(Decision { want, reason })
    }

    /// With `min: 0`, how long the funko has been without load if that is at least
    /// `idle_after`. Before any load, nothing ready means idle at once (a restart wakes
    /// nothing), and what is ready is kept for `idle_after` from the start.
    fn idle_for(&self, now: Instant, ready: u32) -> Option<Duration> {
        if self.policy.min > 0 || self.latest > 0.0 {
            return None;
        }
        let quiet = now.saturating_duration_since(self.last_busy.unwrap_or(self.start));
        let never_busy_nothing_ready = self.last_busy.is_none() && ready == 0;
        (quiet >= self.policy.idle_after || never_busy_nothing_ready).then_some(quiet)
    }

    /// Forgets the burst that preceded the idle time, so a single request after it wakes one
    /// instance rather than what that burst needed; idle also ends a panic.
    fn go_idle(&mut self) {
        if let Some(busy) = self.last_busy {
            while self.readings.front().is_some_and(|r| r.at <= busy) {
                self.readings.pop_front();
            }
        }
        self.peaks.clear();
        self.panic = None;
    }

    fn settle(&mut self, decision: Decision) -> Decision {
        self.last = Some(decision.clone());
        decision
    }

    fn push_peak(&mut self, now: Instant, value: u32) {
        while self.peaks.back().is_some_and(|&(_, v)| v <= value) {
            self.peaks.pop_back();
        }
        self.peaks.push_back((now, value));
    }

    /// Drops readings and peaks wholly older than the stable window.
    fn forget_before(&mut self, now: Instant) {
        let window = self.policy.stable_window;
        let old = |at: Instant| now.saturating_duration_since(at) >= window;
        while self.readings.front().is_some_and(|r| old(r.at)) {
            self.readings.pop_front();
        }
        while self.peaks.front().is_some_and(|&(at, _)| old(at)) {
            self.peaks.pop_front();
        }
    }

    /// The time-weighted mean load over the last `window`. Time no reading covers (before the
    /// first, after the newest) is left out rather than counted as zero; with no reading in the
    /// window at all, the newest reading stands for it.
    fn average(&self, now: Instant, window: Duration) -> f64 {
        let (mut sum, mut covered) = (0.0, 0.0);
        for r in &self.readings {
            let end_age = now.saturating_duration_since(r.at);
            let start_age = end_age.saturating_add(r.span);
            let overlap = start_age
                .min(window)
                .saturating_sub(end_age.min(window))
                .as_secs_f64();
            sum += r.load * overlap;
            covered += overlap;
        }
        if covered > 0.0 {
            sum / covered
        } else {
            self.latest
        }
    }
}

/// Instances needed for `load` at `target` per instance; float-to-int `as` saturates.
fn recommend(load: f64, target: f64) -> u32 {
    if load <= 0.0 {
        return 0;
    }
    // A target of 0 or less is rejected when funko.yml is read; treat it as 1 if it slips by.
    let target = if target > 0.0 { target } else { 1.0 };
    (load / target).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A funko sampled once a second whose instances become ready as soon as they are wanted.
    struct Sim {
        scaler: Autoscaler,
        now: Instant,
        ready: u32,
    }

    impl Sim {
        fn new(policy: Policy, ready: u32) -> Self {
            let now = Instant::now();
            Self {
                scaler: Autoscaler::new(policy, now),
                now,
                ready,
            }
        }

        fn tick(&mut self, load: f64) -> Decision {
            self.now += SECOND;
            self.scaler.observe(self.now, load);
            let decision = self.scaler.decide(self.now, self.ready);
            self.ready = decision.want;
            decision
        }

        fn run(&mut self, secs: u32, load: f64) -> Vec<u32> {
            self.decisions(secs, load).iter().map(|d| d.want).collect()
        }

        fn decisions(&mut self, secs: u32, load: f64) -> Vec<Decision> {
            (0..secs).map(|_| self.tick(load)).collect()
        }
    }

    fn scale_downs(wants: &[u32]) -> Vec<usize> {
        (1..wants.len())
            .filter(|&i| wants[i] < wants[i - 1])
            .collect()
    }

    #[test]
    fn a_step_from_1_to_40_concurrent_reaches_4_instances_within_the_panic_window() {
        let mut sim = Sim::new(Policy::new(1, 10, 10.0), 1);
        assert_eq!(sim.run(120, 1.0).last(), Some(&1));
        let wants = sim.run(30, 40.0);
        let reached = wants.iter().position(|&w| w >= 4).expect("never reached 4");
        assert!(
            reached < 6,
            "4 instances only after {}s: {wants:?}",
            reached + 1
        );
        assert!(sim.scaler.panicking());
        assert_eq!(wants.last(), Some(&4), "settles at 40 / 10: {wants:?}");
    }

    #[test]
    fn a_short_spike_scales_up_at_once_and_is_held_for_the_stable_window() {
        let mut sim = Sim::new(Policy::new(1, 10, 10.0), 1);
        sim.run(120, 1.0);
        let mut wants = sim.run(2, 100.0);
        wants.extend(sim.run(240, 1.0));
        let peak = *wants[..8].iter().max().unwrap();
        assert!(peak >= 3, "no scale-up within the panic window: {wants:?}");
        let peaked = wants.iter().position(|&w| w == peak).unwrap();
        // The stable window still remembers the spike: nothing is shed during it.
        assert!(
            wants[peaked..peaked + 60].iter().all(|&w| w == peak),
            "scaled down within a stable window of the spike: {wants:?}"
        );
        assert_eq!(wants.last(), Some(&1), "never came back down: {wants:?}");
    }

    #[test]
    fn a_sawtooth_faster_than_the_stable_window_scales_down_at_most_once_per_window() {
        // 45 concurrent for 8 s, none for 9 s: 17 s does not divide the 60 s window, so the
        // stable average itself swings between needing 2 and 3 instances.
        let mut sim = Sim::new(Policy::new(1, 10, 10.0), 1);
        let mut wants = Vec::new();
        for _ in 0..40 {
            wants.extend(sim.run(8, 45.0));
            wants.extend(sim.run(9, 0.0));
        }
        let downs = scale_downs(&wants[120..]);
        for pair in downs.windows(2) {
            assert!(
                pair[1] - pair[0] >= 60,
                "two scale-downs {}s apart: {wants:?}",
                pair[1] - pair[0]
            );
        }
        assert!(wants[120..].iter().all(|&w| w >= 2), "{wants:?}");
    }

    #[test]
    fn with_min_0_the_count_is_0_exactly_idle_after_the_last_load() {
        let policy = Policy::new(0, 10, 10.0);
        let idle_after = policy.idle_after;
        let start = Instant::now();
        let mut scaler = Autoscaler::new(policy, start);
        let mut now = start;
        for _ in 0..90 {
            now += SECOND;
            scaler.observe(now, 40.0);
            scaler.decide(now, 4);
        }
        let last_load = now;
        while now + SECOND < last_load + idle_after {
            now += SECOND;
            scaler.observe(now, 0.0);
            assert!(scaler.decide(now, 4).want >= 1);
        }
        let almost = last_load + idle_after - Duration::from_millis(1);
        let before = scaler.decide(almost, 4);
        assert!(before.want >= 1, "gone before idle_after: {before:?}");
        let after = scaler.decide(last_load + idle_after, 4);
        assert_eq!(
            after,
            Decision {
                want: 0,
                reason: Reason::Idle { since_secs: 30 }
            }
        );
    }

    #[test]
    fn with_min_above_0_the_count_decays_to_min_and_no_lower() {
        let mut sim = Sim::new(Policy::new(2, 10, 10.0), 2);
        sim.run(90, 40.0);
        let wants = sim.run(200, 0.0);
        assert!(wants.iter().all(|&w| w >= 2), "{wants:?}");
        assert_eq!(wants.last(), Some(&2), "{wants:?}");
        assert_eq!(
            sim.scaler.last_decision().unwrap().reason,
            Reason::AtMin {
                min: 2,
                recommended: 0
            }
        );
    }

    #[test]
    fn load_returning_during_the_idle_wait_restarts_it() {
        let mut sim = Sim::new(Policy::new(0, 10, 10.0), 0);
        sim.run(10, 5.0);
        sim.run(20, 0.0);
        sim.run(1, 5.0);
        let wants = sim.run(31, 0.0);
        // 30 s after the first stop the load came back 20 s ago: still kept.
        assert!(wants[..29].iter().all(|&w| w >= 1), "{wants:?}");
        assert_eq!(
            wants[29], 0,
            "not idle 30 s after the second stop: {wants:?}"
        );
    }

    #[test]
    fn with_min_0_one_instance_stays_until_idle_after_even_when_the_average_is_long_zero() {
        let policy = Policy {
            idle_after: Duration::from_secs(300),
            ..Policy::new(0, 10, 10.0)
        };
        let mut sim = Sim::new(policy, 0);
        sim.run(10, 5.0);
        let decisions = sim.decisions(300, 0.0);
        assert!(
            decisions[..299].iter().all(|d| d.want == 1),
            "{decisions:?}"
        );
        assert!(matches!(decisions[298].reason, Reason::Quiet { .. }));
        assert_eq!(decisions[299].want, 0, "{decisions:?}");
    }

    #[test]
    fn a_reading_with_load_keeps_the_funko_awake_however_late_the_next_one_is() {
        let mut sim = Sim::new(Policy::new(0, 10, 10.0), 0);
        sim.tick(3.0);
        let much_later = sim.now + Duration::from_secs(600);
        assert_eq!(sim.scaler.decide(much_later, 1).want, 1);
    }

    #[test]
    fn memory_stays_bounded_however_often_the_load_is_sampled() {
        let start = Instant::now();
        let mut scaler = Autoscaler::new(Policy::new(0, 10, 10.0), start);
        for i in 0..60_000u64 {
            let now = start + Duration::from_millis(10 * i);
            scaler.observe(now, (i % 7) as f64);
            scaler.decide(now, 3);
        }
        let bound = (DEFAULT_STABLE_WINDOW.as_millis() / RESOLUTION.as_millis()) as usize + 2;
        assert!(scaler.readings.len() <= bound, "{}", scaler.readings.len());
        assert!(scaler.peaks.len() <= bound, "{}", scaler.peaks.len());
    }

    #[test]
    fn a_first_request_wakes_one_instance_at_once_even_after_a_burst() {
        let mut sim = Sim::new(Policy::new(0, 10, 10.0), 0);
        assert_eq!(sim.tick(0.0).want, 0, "woke with no load");
        sim.run(60, 40.0);
        assert_eq!(sim.run(40, 0.0).last(), Some(&0));

        // A held request, sampled on demand between two ticks.
        let now = sim.now + Duration::from_millis(300);
        sim.scaler.observe(now, 1.0);
        let wake = sim.scaler.decide(now, 0);
        assert_eq!(wake.want, 1, "{wake:?}");
        assert!(matches!(wake.reason, Reason::Panic { ready: 0, .. }));
    }

    #[test]
    fn a_restart_keeps_what_runs_for_a_stable_window_and_wakes_nothing() {
        let mut sim = Sim::new(Policy::new(1, 10, 10.0), 3);
        let wants = sim.run(70, 0.0);
        assert!(wants[..58].iter().all(|&w| w == 3), "{wants:?}");
        assert_eq!(wants.last(), Some(&1));

        let mut at_zero = Sim::new(Policy::new(0, 10, 10.0), 0);
        assert_eq!(at_zero.tick(0.0).want, 0);
    }

    #[test]
    fn the_bounds_decide_and_say_so() {
        let mut sim = Sim::new(Policy::new(2, 3, 10.0), 0);
        assert_eq!(
            sim.tick(0.0),
            Decision {
                want: 2,
                reason: Reason::AtMin {
                    min: 2,
                    recommended: 0
                }
            }
        );
        let busy = sim.run(10, 100.0);
        assert_eq!(busy.last(), Some(&3));
        assert!(matches!(
            sim.scaler.last_decision().unwrap().reason,
            Reason::AtMax { max: 3, .. }
        ));
    }

    #[test]
    fn a_decision_serialises_with_its_kind() {
        let decision = Decision {
            want: 0,
            reason: Reason::Idle { since_secs: 31 },
        };
        assert_eq!(
            serde_json::to_value(&decision).unwrap(),
            serde_json::json!({"want": 0, "reason": {"kind": "idle", "since_secs": 31}})
        );
        assert_eq!(decision.reason.describe(), "idle: no load for 31s");
    }

    /// A policy within what funko.yml validation allows, with short windows so that a few
    /// hundred steps cross them.
    fn policy_strategy() -> impl Strategy<Value = Policy> {
        (
            0..4u32,
            0..8u32,
            1..20u32,
            2..30u64,
            1..10u64,
            1..30u64,
            1..4u32,
        )
            .prop_map(
                |(min, extra, target, stable, panic, idle, threshold)| Policy {
                    min,
                    max: min + extra,
                    target: f64::from(target),
                    stable_window: Duration::from_secs(stable),
                    panic_window: Duration::from_secs(panic.min(stable)),
                    panic_threshold: f64::from(threshold),
                    idle_after: Duration::from_secs(idle),
                },
            )
    }

    /// Steps of (milliseconds later, a reading if any, instances ready).
    fn steps_strategy() -> impl Strategy<Value = Vec<(u64, Option<f64>, u32)>> {
        let load = prop_oneof![Just(0.0), 0.0..200.0f64];
        proptest::collection::vec((0..3000u64, proptest::option::of(load), 0..12u32), 1..300)
    }

    fn replay(policy: &Policy, steps: &[(u64, Option<f64>, u32)]) -> Vec<(Decision, bool)> {
        let mut now = Instant::now();
        let mut scaler = Autoscaler::new(policy.clone(), now);
        let mut out = Vec::new();
        for &(ms, load, ready) in steps {
            now += Duration::from_millis(ms);
            if let Some(load) = load {
                scaler.observe(now, load);
            }
            let decision = scaler.decide(now, ready);
            out.push((decision, scaler.panicking()));
        }
        out
    }

    proptest! {
        #[test]
        fn want_stays_within_the_bounds(policy in policy_strategy(), steps in steps_strategy()) {
            for (decision, _) in replay(&policy, &steps) {
                prop_assert!(decision.want >= policy.min && decision.want <= policy.max,
                    "{decision:?} outside [{}, {}]", policy.min, policy.max);
            }
        }

        #[test]
        fn panic_never_scales_down_unless_the_funko_goes_idle(
            policy in policy_strategy(), steps in steps_strategy(),
        ) {
            // Also not on the way out of a panic, as long as decisions come more often than
            // once a stable window (the panic's count is then still within the window).
            let decisions = replay(&policy, &steps);
            for (i, pair) in decisions.windows(2).enumerate() {
                let ((before, panicking), (after, _)) = (&pair[0], &pair[1]);
                let gap = Duration::from_millis(steps[i + 1].0);
                if *panicking && gap < policy.stable_window
                    && !matches!(after.reason, Reason::Idle { .. })
                {
                    prop_assert!(after.want >= before.want, "{before:?} then {after:?}");
                }
            }
        }

        #[test]
        fn the_same_inputs_give_the_same_decisions(
            policy in policy_strategy(), steps in steps_strategy(),
        ) {
            prop_assert_eq!(replay(&policy, &steps), replay(&policy, &steps));
            // Deciding again at the same instant (an on-demand decision) changes nothing.
            let mut doubled = Vec::new();
            for &(ms, load, ready) in &steps {
                doubled.push((ms, load, ready));
                doubled.push((0, None, ready));
            }
            let twice = replay(&policy, &doubled);
            for pair in twice.chunks(2) {
                prop_assert_eq!(&pair[0], &pair[1]);
            }
        }
    }
}
