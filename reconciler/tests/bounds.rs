//! Every value funko.yml may hold, at and near its bounds, driven through what reads it: the
//! reading of the folder, planning and execution on the in-memory twin, the readiness wait and
//! the autoscaler's policy. None of it may panic, and one field just past its bound is refused
//! with that field named (issue 24: a huge `healthcheck.interval` once panicked the server).

use std::path::Path;
use std::time::{Duration, Instant};

use faaso_reconciler::twin::Twin;
use faaso_reconciler::{
    Autoscaled, Autoscaler, BasePolicy, Demand, Namespace, Policy, Quiet, Reconciler, Settings,
};
use faaso_schema::parse_spec;
use proptest::prelude::*;

/// One funko.yml's values, each written as funko.yml text (`None`: left out).
#[derive(Debug, Clone)]
struct Values {
    interval: Option<&'static str>,
    probe_timeout: Option<&'static str>,
    start_period: Option<&'static str>,
    retries: Option<u64>,
    timeout: Option<&'static str>,
    pids_limit: Option<u64>,
    memory: Option<&'static str>,
    cpus: Option<&'static str>,
    max_age: Option<&'static str>,
    build_timeout: Option<&'static str>,
    scale: ScaleValues,
}

#[derive(Debug, Clone)]
enum ScaleValues {
    Fixed(u64),
    Auto {
        min: u64,
        max: u64,
        target: u64,
        limit: Option<u64>,
        queue: u64,
        stable_window: &'static str,
        panic_window: &'static str,
        pause_after: &'static str,
        stop_after: &'static str,
    },
}

/// Durations from 100ms (the least a probe interval or timeout takes) to a day.
const PROBE: &[&str] = &["100ms", "101ms", "10s", "23h59m59s", "24h"];

fn pick<T: Clone + std::fmt::Debug + 'static>(from: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(from)
}

fn maybe<T: Clone + std::fmt::Debug + 'static>(
    from: &'static [T],
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(pick(from))
}

fn scale_values() -> impl Strategy<Value = ScaleValues> {
    let fixed = pick(&[0u64, 1, 3, 100]).prop_map(ScaleValues::Fixed);
    let windows = (
        pick(&["1s", "60s", "24h"]),
        pick(&["1ms", "6s", "23h59m59s"]),
    );
    let auto = (
        (pick(&[0u64, 1, 100]), pick(&[1u64, 2, 100])),
        pick(&[1u64, 10, 10_000]),
        prop::option::of(pick(&[10_000u64])),
        pick(&[0u64, 100, 10_000]),
        windows,
        (pick(&["1ms", "30s", "24h"]), pick(&["0s", "15m", "24h"])),
    )
        .prop_map(
            |((min, max), target, limit, queue, (stable, panic), (pause, stop))| {
                let stable_at = faaso_schema::parse_duration(stable).unwrap();
                let panic_at = faaso_schema::parse_duration(panic).unwrap();
                ScaleValues::Auto {
                    min: min.min(max),
                    max,
                    target,
                    limit,
                    queue,
                    stable_window: stable,
                    panic_window: if panic_at < stable_at { panic } else { "1ms" },
                    pause_after: pause,
                    stop_after: stop,
                }
            },
        );
    prop_oneof![fixed, auto]
}

fn values() -> impl Strategy<Value = Values> {
    (
        (
            maybe(PROBE),
            maybe(PROBE),
            maybe(&["0s", "1ms", "30s", "24h"]),
            maybe(&[1u64, 2, 99, 100]),
        ),
        (
            maybe(&["100ms", "30s", "24h"]),
            maybe(&[1u64, 2, 256, 4_194_303, 4_194_304]),
            maybe(&["6M", "128M", "1024G"]),
            maybe(&["0.01", "0.5", "1024"]),
        ),
        (maybe(&["0s", "5m", "24h"]), maybe(&["10s", "30m", "24h"])),
        scale_values(),
    )
        .prop_map(
            |(
                (interval, probe_timeout, start_period, retries),
                (timeout, pids_limit, memory, cpus),
                (max_age, build_timeout),
                scale,
            )| Values {
                interval,
                probe_timeout,
                start_period,
                retries,
                timeout,
                pids_limit,
                memory,
                cpus,
                max_age,
                build_timeout,
                scale,
            },
        )
}

impl Values {
    /// The funko.yml of funko `name` holding these values.
    fn yaml(&self, name: &str) -> String {
        let mut yaml = format!("name: {name}\n");
        let block = |yaml: &mut String, key: &str, fields: &[(&str, Option<String>)]| {
            let fields: Vec<String> = fields
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("  {k}: {v}\n")))
                .collect();
            if !fields.is_empty() {
                yaml.push_str(&format!("{key}:\n{}", fields.concat()));
            }
        };
        let text = |v: Option<&str>| v.map(str::to_owned);
        let number = |v: Option<u64>| v.map(|n| n.to_string());
        block(
            &mut yaml,
            "healthcheck",
            &[
                ("interval", text(self.interval)),
                ("timeout", text(self.probe_timeout)),
                ("start_period", text(self.start_period)),
                ("retries", number(self.retries)),
            ],
        );
        if let Some(timeout) = self.timeout {
            yaml.push_str(&format!("timeout: {timeout}\n"));
        }
        block(
            &mut yaml,
            "hardening",
            &[("pids_limit", number(self.pids_limit))],
        );
        block(
            &mut yaml,
            "resources",
            &[("memory", text(self.memory)), ("cpus", text(self.cpus))],
        );
        if let Some(max_age) = self.max_age {
            yaml.push_str(&format!("cors:\n  origins: ['*']\n  max_age: {max_age}\n"));
        }
        block(&mut yaml, "build", &[("timeout", text(self.build_timeout))]);
        match &self.scale {
            ScaleValues::Fixed(n) => yaml.push_str(&format!("scale: {n}\n")),
            ScaleValues::Auto {
                min,
                max,
                target,
                limit,
                queue,
                stable_window,
                panic_window,
                pause_after,
                stop_after,
            } => {
                // `limit` may not be below `target`.
                let limit = limit.map(|l| l.max(*target));
                block(
                    &mut yaml,
                    "scale",
                    &[
                        ("min", number(Some(*min))),
                        ("max", number(Some(*max))),
                        ("target", number(Some(*target))),
                        ("limit", number(limit)),
                        ("queue", number(Some(*queue))),
                        ("stable_window", text(Some(stable_window))),
                        ("panic_window", text(Some(panic_window))),
                    ],
                );
                block(
                    &mut yaml,
                    "idle",
                    &[
                        ("pause_after", text(Some(pause_after))),
                        ("stop_after", text(Some(stop_after))),
                    ],
                );
            }
        }
        yaml
    }
}

/// One field just past its bound: the YAML to add after `name: x`, and the field refused.
const PAST: &[(&str, &str)] = &[
    ("healthcheck:\n  interval: 24h1s\n", "healthcheck.interval"),
    ("healthcheck:\n  interval: 99ms\n", "healthcheck.interval"),
    (
        "healthcheck:\n  timeout: 300000000000y\n",
        "healthcheck.timeout",
    ),
    (
        "healthcheck:\n  start_period: 86401s\n",
        "healthcheck.start_period",
    ),
    ("healthcheck:\n  retries: 0\n", "healthcheck.retries"),
    ("healthcheck:\n  retries: 101\n", "healthcheck.retries"),
    ("timeout: 99ms\n", "timeout"),
    ("timeout: 25h\n", "timeout"),
    ("hardening:\n  pids_limit: 0\n", "hardening.pids_limit"),
    (
        "hardening:\n  pids_limit: 4194305\n",
        "hardening.pids_limit",
    ),
    ("resources:\n  memory: 1025G\n", "resources.memory"),
    ("resources:\n  cpus: 1024.5\n", "resources.cpus"),
    (
        "cors:\n  origins: ['*']\n  max_age: 24h1s\n",
        "cors.max_age",
    ),
    ("build:\n  timeout: 9s\n", "build.timeout"),
    ("build:\n  timeout: 24h1s\n", "build.timeout"),
    ("scale:\n  min: 101\n", "scale.min"),
    ("scale:\n  max: 101\n", "scale.max"),
    ("scale:\n  target: 10001\n", "scale.target"),
    ("scale:\n  limit: 10001\n", "scale.limit"),
    ("scale:\n  queue: 10001\n", "scale.queue"),
    ("scale:\n  stable_window: 24h1s\n", "scale.stable_window"),
    (
        "scale: {min: 0}\nidle:\n  pause_after: 24h1s\n",
        "idle.pause_after",
    ),
    (
        "scale: {min: 0}\nidle:\n  stop_after: 24h1s\n",
        "idle.stop_after",
    ),
];

fn reconciler(twin: &Twin, dir: &Path, demand: &Demand) -> Reconciler<Twin> {
    let settings = Settings {
        funkos_dir: dir.to_owned(),
        namespace: Namespace::default(),
        base_policy: BasePolicy::Local,
        secrets_dir: dir.join(".secrets"),
        state_dir: None,
        concurrency: 4,
    };
    let mut reconciler = Reconciler::new(twin.clone(), settings);
    reconciler.follow_demand(demand.clone());
    reconciler
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_spec_validate_accepts_runs_through_planning_execution_and_autoscaling(
        values in values(),
        loads in prop::collection::vec((0u64..4, pick(&[0u64, 1, 200, 1_000, 86_400_000, 2_592_000_000]), 0u32..=100), 1..12),
    ) {
        let yaml = values.yaml("f");
        let spec = parse_spec(&yaml).map_err(|p| TestCaseError::fail(format!("{p}\n{yaml}")))?;
        let within = spec.healthcheck.ready_within();
        prop_assert!(within <= Duration::from_secs(101 * 24 * 3600), "{yaml}");
        prop_assert!(Instant::now().checked_add(within).is_some());

        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("f");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("funko.yml"), &yaml).unwrap();
        std::fs::write(folder.join("Dockerfile"), "FROM scratch\n").unwrap();
        let twin = Twin::default();
        let demand = Demand::default();
        let mut reconciler = reconciler(&twin, dir.path(), &demand);
        block_on(async {
            let report = reconciler.pass(&Quiet).await.unwrap();
            prop_assert!(report.funkos.iter().all(|f| f.error.is_none()), "{:?}\n{yaml}", report.funkos);
            let again = reconciler.pass(&Quiet).await.unwrap();
            prop_assert_eq!(again.plan, vec![], "{}", yaml);

            let Some(bounds) = Autoscaled::of(&spec) else { return Ok(()) };
            let start = Instant::now();
            let mut now = start;
            let mut scaler = Autoscaler::new(Policy::from(&bounds), now);
            let mut ready = 0;
            for (load, step_ms, at_most) in &loads {
                now += Duration::from_millis(*step_ms);
                let load = f64::from(u32::try_from(*load).unwrap()) * f64::from(bounds.target);
                scaler.observe(now, load);
                let decision = scaler.decide(now, ready);
                prop_assert!(decision.want <= bounds.max, "{decision:?}\n{yaml}");
                prop_assert!(decision.want >= bounds.min.min(bounds.max), "{decision:?}\n{yaml}");
                let _ = decision.reason.describe();
                // Passes follow the autoscaler, with the count held to a few instances so a
                // case stays quick (the bounds are what is tested, not a hundred instances).
                demand.set("f", decision.want.min(*at_most % 4));
                reconciler.pass(&Quiet).await.unwrap();
                ready = decision.want;
            }
            Ok(())
        })?;
    }

    #[test]
    fn one_field_past_its_bound_is_refused_and_named(past in pick(PAST)) {
        let (yaml, field) = past;
        let problem = parse_spec(&format!("name: x\n{yaml}")).expect_err(yaml);
        prop_assert_eq!(problem.field.as_deref(), Some(field), "{}", problem);
        prop_assert!(problem.line.is_some(), "{}", problem);
    }
}
