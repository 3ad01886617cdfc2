//! `scale:` and `idle:` in funko.yml: a fixed instance count, or bounds within which the
//! autoscaler chooses the count from load, and when an idle instance is paused and stopped.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::units::Duration;

/// The most instances a funko may have.
pub const MAX_INSTANCES: u32 = 100;

/// The most requests the proxy may hold for one funko.
pub const MAX_QUEUE: u32 = 10_000;

/// The most concurrent requests per instance `target` and `limit` may name: as many as one
/// funko's queue holds; more is no aim an instance can meet.
pub const MAX_CONCURRENCY: u32 = 10_000;

/// How many instances run: a fixed count, or bounds for the autoscaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Scale {
    /// A fixed number of instances (0 to 100); 0 keeps the funko defined but stopped.
    Fixed(#[schemars(range(max = 100))] u32),
    /// Bounds within which the autoscaler sets the count from the requests in flight.
    Auto(AutoScale),
}

impl Scale {
    /// The fewest instances that may run (a fixed count is its own bounds).
    pub fn min(&self) -> u32 {
        match self {
            Scale::Fixed(n) => *n,
            Scale::Auto(auto) => auto.min,
        }
    }

    /// The most instances that may run.
    pub fn max(&self) -> u32 {
        match self {
            Scale::Fixed(n) => *n,
            Scale::Auto(auto) => auto.max,
        }
    }

    /// The autoscaler's settings, when the count is not fixed.
    pub fn auto(&self) -> Option<&AutoScale> {
        match self {
            Scale::Fixed(_) => None,
            Scale::Auto(auto) => Some(auto),
        }
    }
}

impl Default for Scale {
    fn default() -> Self {
        Scale::Fixed(1)
    }
}

impl<'de> Deserialize<'de> for Scale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScaleVisitor;
        impl<'de> Visitor<'de> for ScaleVisitor {
            type Value = Scale;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of instances (0 to 100), or bounds like `{min: 0, max: 10}`")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scale, E> {
                match u32::try_from(n) {
                    Ok(n) if n <= MAX_INSTANCES => Ok(Scale::Fixed(n)),
                    _ => Err(E::custom(format!(
                        "`scale: {n}` is more than {MAX_INSTANCES} instances; write at most {MAX_INSTANCES}"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scale, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "`scale: {n}` is not a number of instances; write one from 0 to {MAX_INSTANCES}"
                    ))),
                }
            }
            // Earlier versions read `scale: "3"` as 3; such files keep loading.
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scale, E> {
                match text.trim().parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(not_a_count(text)),
                }
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Scale, E> {
                Err(not_a_count(format!("{n:?}")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scale, E> {
                Err(E::custom(format!(
                    "`scale` is empty; write a number of instances (0 to {MAX_INSTANCES}), or bounds \
                     such as `min: 0` and `max: 10` indented below it"
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scale, A::Error> {
                AutoScale::deserialize(de::value::MapAccessDeserializer::new(map)).map(Scale::Auto)
            }
        }
        deserializer.deserialize_any(ScaleVisitor)
    }
}

fn not_a_count<E: de::Error>(written: impl fmt::Display) -> E {
    E::custom(format!(
        "`{written}` is not a number of instances; write a whole number from 0 to \
         {MAX_INSTANCES}, or bounds like `{{min: 0, max: 10}}`"
    ))
}

/// The autoscaler's bounds and aims for one funko.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoScale {
    /// The fewest instances (0 to 100, at most `max`); 0 lets the funko scale to zero when idle.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub min: u32,
    /// The most instances (at most 100).
    #[serde(default = "default_max")]
    #[schemars(range(min = 1, max = 100))]
    pub max: u32,
    /// Concurrent requests per instance the autoscaler aims for; from 1 to 10000.
    #[serde(default = "default_target")]
    #[schemars(range(min = 1, max = 10000))]
    pub target: u32,
    /// A hard limit of concurrent requests per instance, from 1 to 10000; more wait in the
    /// proxy's queue. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: Option<u32>,
    /// Requests the proxy holds while the funko wakes or every instance is at `limit` (0 to
    /// 10000); one more is answered 503.
    #[serde(default = "default_queue")]
    #[schemars(range(max = 10000))]
    pub queue: u32,
    /// Scaling down follows the highest recommendation over this window, so a short lull does
    /// not remove instances; more than 0s, at most 24h.
    #[serde(default = "default_stable_window")]
    pub stable_window: Duration,
    /// The short window: when load over it reaches twice the target, the autoscaler scales up at
    /// once. More than 0s and shorter than `stable_window`.
    #[serde(default = "default_panic_window")]
    pub panic_window: Duration,
}

impl Default for AutoScale {
    fn default() -> Self {
        Self {
            min: 0,
            max: default_max(),
            target: default_target(),
            limit: None,
            queue: default_queue(),
            stable_window: default_stable_window(),
            panic_window: default_panic_window(),
        }
    }
}

impl AutoScale {
    /// The rules that span fields; each message says what to write instead.
    fn check(self) -> Result<Self, String> {
        if self.min > self.max {
            return Err(format!(
                "`min` ({}) is more than `max` ({}); raise `max` or lower `min`",
                self.min, self.max
            ));
        }
        if let Some(limit) = self.limit.filter(|limit| *limit < self.target) {
            return Err(format!(
                "`limit` ({limit}) is below `target` ({}), so the target could never be reached; \
                 raise `limit` or lower `target`",
                self.target
            ));
        }
        if self.panic_window >= self.stable_window {
            return Err(format!(
                "`panic_window` ({}) must be shorter than `stable_window` ({}); it is the short \
                 window that reacts to bursts (defaults: 6s and 60s)",
                self.panic_window, self.stable_window
            ));
        }
        Ok(self)
    }
}

impl<'de> Deserialize<'de> for AutoScale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = AutoScaleFields::deserialize(deserializer)?;
        AutoScale {
            min: fields.min,
            max: fields.max,
            target: fields.target,
            limit: fields.limit,
            queue: fields.queue,
            stable_window: fields.stable_window,
            panic_window: fields.panic_window,
        }
        .check()
        .map_err(de::Error::custom)
    }
}

/// `AutoScale` as written, each field checked on its own (so its error points at its line);
/// the rules across fields follow in [`AutoScale::check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoScaleFields {
    #[serde(default, deserialize_with = "min_instances")]
    min: u32,
    #[serde(default = "default_max", deserialize_with = "max_instances")]
    max: u32,
    #[serde(default = "default_target", deserialize_with = "target")]
    target: u32,
    #[serde(default, deserialize_with = "limit")]
    limit: Option<u32>,
    #[serde(default = "default_queue", deserialize_with = "queue")]
    queue: u32,
    #[serde(default = "default_stable_window", deserialize_with = "stable_window")]
    stable_window: Duration,
    #[serde(default = "default_panic_window", deserialize_with = "panic_window")]
    panic_window: Duration,
}

/// When an autoscaled funko's idle instances are paused and stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Idle {
    /// With `min: 0`, a funko that had no request for this long is paused (memory kept, wakes in
    /// milliseconds); more than 0s, at most 24h.
    #[serde(default = "default_pause_after", deserialize_with = "pause_after")]
    pub pause_after: Duration,
    /// A paused instance is stopped after this (memory freed, container kept); `0s` stops an
    /// idle instance at once instead of pausing it; at most 24h.
    #[serde(default = "default_stop_after")]
    pub stop_after: Duration,
}

impl Default for Idle {
    fn default() -> Self {
        Self {
            pause_after: default_pause_after(),
            stop_after: default_stop_after(),
        }
    }
}

impl Idle {
    /// Whether these are the defaults (the block is then left out when a spec is written).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Why an `idle:` block cannot go with `scale`, if it cannot.
pub(crate) fn idle_needs_autoscale(scale: &Scale) -> Option<String> {
    let Scale::Fixed(n) = scale else {
        return None;
    };
    Some(format!(
        "`idle:` applies only to an autoscaled funko, and `scale: {n}` is a fixed count; to scale \
         to zero when idle write `scale: {{min: 0, max: {}}}`, or remove `idle:`",
        (*n).max(1)
    ))
}

fn max_instances<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let max = u32::deserialize(deserializer)?;
    if max == 0 {
        return Err(de::Error::custom(
            "`max: 0` would never run an instance; write at least 1 (or `scale: 0` to keep the funko stopped)",
        ));
    }
    if max > MAX_INSTANCES {
        return Err(de::Error::custom(format!(
            "`max: {max}` is more than {MAX_INSTANCES} instances; write at most {MAX_INSTANCES}"
        )));
    }
    Ok(max)
}

fn min_instances<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let min = u32::deserialize(deserializer)?;
    if min > MAX_INSTANCES {
        return Err(de::Error::custom(format!(
            "`min: {min}` is more than {MAX_INSTANCES} instances; write at most {MAX_INSTANCES}"
        )));
    }
    Ok(min)
}

fn target<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let target = u32::deserialize(deserializer)?;
    if target == 0 {
        return Err(de::Error::custom(
            "`target: 0` can never be aimed for; write the concurrent requests one instance should \
             serve, at least 1 (default 10)",
        ));
    }
    if target > MAX_CONCURRENCY {
        return Err(de::Error::custom(format!(
            "`target: {target}` is more than {MAX_CONCURRENCY} concurrent requests per instance; \
             write at most {MAX_CONCURRENCY}"
        )));
    }
    Ok(target)
}

fn limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let limit = Option::<u32>::deserialize(deserializer)?;
    if limit == Some(0) {
        return Err(de::Error::custom(
            "`limit: 0` would let no request through; write at least 1, or leave `limit` out for no limit",
        ));
    }
    if let Some(limit) = limit.filter(|l| *l > MAX_CONCURRENCY) {
        return Err(de::Error::custom(format!(
            "`limit: {limit}` is more than {MAX_CONCURRENCY} concurrent requests per instance; \
             write at most {MAX_CONCURRENCY}, or leave `limit` out for no limit"
        )));
    }
    Ok(limit)
}

fn queue<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let queue = u32::deserialize(deserializer)?;
    if queue > MAX_QUEUE {
        return Err(de::Error::custom(format!(
            "`queue: {queue}` is more than {MAX_QUEUE} held requests; write at most {MAX_QUEUE}"
        )));
    }
    Ok(queue)
}

/// A duration that must not be zero, for the field `key` whose default is `default`.
fn nonzero<'de, D: Deserializer<'de>>(
    deserializer: D,
    key: &str,
    default: Duration,
) -> Result<Duration, D::Error> {
    let duration = Duration::deserialize(deserializer)?;
    if duration.0.is_zero() {
        return Err(de::Error::custom(format!(
            "`{key}` cannot be zero; write a duration such as `{default}` (the default)"
        )));
    }
    Ok(duration)
}

fn stable_window<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    nonzero(deserializer, "stable_window", default_stable_window())
}

fn panic_window<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    nonzero(deserializer, "panic_window", default_panic_window())
}

fn pause_after<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    nonzero(deserializer, "pause_after", default_pause_after())
}

fn default_max() -> u32 {
    10
}
fn default_target() -> u32 {
    10
}
fn default_queue() -> u32 {
    100
}
fn default_stable_window() -> Duration {
    Duration::from_secs(60)
}
fn default_panic_window() -> Duration {
    Duration::from_secs(6)
}
fn default_pause_after() -> Duration {
    Duration::from_secs(30)
}
fn default_stop_after() -> Duration {
    Duration::from_secs(15 * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_spec;

    fn auto(yaml: &str) -> AutoScale {
        let spec = parse_spec(&format!("name: x\n{yaml}")).unwrap();
        *spec.scale.auto().expect("autoscaled")
    }

    #[test]
    fn a_fixed_count_loads_as_before() {
        let spec = parse_spec("name: x\nscale: 3\n").unwrap();
        assert_eq!(spec.scale, Scale::Fixed(3));
        assert_eq!((spec.scale.min(), spec.scale.max()), (3, 3));
        assert_eq!(spec.scale.auto(), None);
        assert_eq!(spec.idle, Idle::default());
        assert_eq!(parse_spec("name: x\n").unwrap().scale, Scale::Fixed(1));
        assert_eq!(
            parse_spec("name: x\nscale: 0\n").unwrap().scale,
            Scale::Fixed(0)
        );
        assert_eq!(
            parse_spec("name: x\nscale: 100\n").unwrap().scale,
            Scale::Fixed(100)
        );
        assert_eq!(
            parse_spec("name: x\nscale: \"3\"\n").unwrap().scale,
            Scale::Fixed(3)
        );
    }

    #[test]
    fn bounds_take_the_defaults_for_what_they_leave_out() {
        let bounds = auto("scale:\n  max: 4\n");
        assert_eq!(
            bounds,
            AutoScale {
                min: 0,
                max: 4,
                target: 10,
                limit: None,
                queue: 100,
                stable_window: Duration::from_secs(60),
                panic_window: Duration::from_secs(6),
            }
        );
        assert_eq!(auto("scale: {}\n"), AutoScale::default());
        let idle = Idle::default();
        assert_eq!(idle.pause_after, Duration::from_secs(30));
        assert_eq!(idle.stop_after, Duration::from_secs(15 * 60));
    }

    #[test]
    fn every_field_of_the_bounds_and_idle_is_read() {
        let spec = parse_spec(
            "name: x\nscale:\n  min: 1\n  max: 20\n  target: 5\n  limit: 8\n  queue: 10000\n  \
             stable_window: 2m\n  panic_window: 10s\nidle:\n  pause_after: 1m\n  stop_after: 0s\n",
        )
        .unwrap();
        let bounds = spec.scale.auto().unwrap();
        assert_eq!((spec.scale.min(), spec.scale.max()), (1, 20));
        assert_eq!(
            (bounds.target, bounds.limit, bounds.queue),
            (5, Some(8), 10000)
        );
        assert_eq!(bounds.stable_window, Duration::from_secs(120));
        assert_eq!(bounds.panic_window, Duration::from_secs(10));
        assert_eq!(spec.idle.pause_after, Duration::from_secs(60));
        assert_eq!(
            spec.idle.stop_after,
            Duration::from_secs(0),
            "0s stops at once"
        );
    }

    #[test]
    fn both_forms_write_back_as_they_were_written() {
        for yaml in [
            "name: x\nscale: 3\n",
            "name: x\nscale: {min: 0, max: 5, limit: 12, queue: 0}\nidle: {stop_after: 1h}\n",
            "name: x\nscale: {min: 2}\n",
        ] {
            let spec = parse_spec(yaml).unwrap();
            let written = serde_saphyr::to_string(&spec).unwrap();
            assert_eq!(parse_spec(&written).unwrap(), spec, "{written}");
        }
        let fixed = serde_saphyr::to_string(&parse_spec("name: x\nscale: 3\n").unwrap()).unwrap();
        assert!(fixed.contains("scale: 3\n"), "{fixed}");
        assert!(!fixed.contains("idle"), "{fixed}");
        let json = serde_json::to_value(parse_spec("name: x\nscale: {max: 5}\n").unwrap()).unwrap();
        assert_eq!(json["scale"]["max"], 5);
        assert_eq!(json["scale"]["stable_window"], "1m");
    }

    /// Each rule: the YAML after `name: x`, the field and line the problem points at, and words
    /// its message must hold.
    #[test]
    fn each_rule_names_its_field_and_line_and_says_what_to_write() {
        let cases: &[(&str, &str, u64, &[&str])] = &[
            (
                "scale:\n  min: 5\n  max: 3\n",
                "scale",
                2,
                &["`min` (5) is more than `max` (3)", "raise `max`"],
            ),
            (
                "scale:\n  min: 20\n",
                "scale",
                2,
                &["`min` (20) is more than `max` (10)"],
            ),
            (
                "scale:\n  max: 0\n",
                "scale.max",
                3,
                &["at least 1", "`scale: 0`"],
            ),
            (
                "scale:\n  min: 0\n  max: 101\n",
                "scale.max",
                4,
                &["at most 100"],
            ),
            ("scale:\n  target: 0\n", "scale.target", 3, &["at least 1"]),
            (
                "scale:\n  limit: 0\n",
                "scale.limit",
                3,
                &["at least 1", "leave `limit` out"],
            ),
            (
                "scale:\n  target: 10\n  limit: 5\n",
                "scale",
                2,
                &["`limit` (5) is below `target` (10)", "never be reached"],
            ),
            (
                "scale:\n  queue: 10001\n",
                "scale.queue",
                3,
                &["at most 10000"],
            ),
            (
                "scale:\n  stable_window: 0s\n",
                "scale.stable_window",
                3,
                &["cannot be zero", "`1m`"],
            ),
            (
                "scale:\n  panic_window: 0s\n",
                "scale.panic_window",
                3,
                &["cannot be zero", "`6s`"],
            ),
            (
                "scale:\n  stable_window: 10s\n  panic_window: 10s\n",
                "scale",
                2,
                &["must be shorter than `stable_window`"],
            ),
            (
                "scale:\n  stable_window: 5s\n",
                "scale",
                2,
                &["`panic_window` (6s) must be shorter than `stable_window` (5s)"],
            ),
            ("scale:\n  min: -1\n", "scale.min", 3, &["whole number"]),
            (
                "scale:\n  max: 3\n  targt: 4\n",
                "scale.targt",
                4,
                &["unknown field `targt`", "did you mean `target`?"],
            ),
            (
                "scale: {min: 5, max: 3}\n",
                "scale",
                2,
                &["more than `max`"],
            ),
            ("scale: 101\n", "scale", 2, &["`scale: 101`", "at most 100"]),
            ("scale: -1\n", "scale", 2, &["from 0 to 100"]),
            (
                "scale: lots\n",
                "scale",
                2,
                &["`lots` is not a number", "{min: 0, max: 10}"],
            ),
            ("scale: 2.5\n", "scale", 2, &["`2.5` is not a number"]),
            ("scale:\n", "scale", 2, &["`scale` is empty"]),
            (
                "scale: {min: 0}\nidle:\n  pause_after: 0s\n",
                "idle.pause_after",
                4,
                &["cannot be zero", "`30s`"],
            ),
            (
                "scale: {min: 0}\nidle:\n  pause: 1m\n",
                "idle.pause",
                4,
                &["unknown field `pause`", "did you mean `pause_after`?"],
            ),
            (
                "scale: 3\nidle:\n  pause_after: 1m\n",
                "idle",
                3,
                &[
                    "only to an autoscaled funko",
                    "`scale: {min: 0, max: 3}`",
                    "remove `idle:`",
                ],
            ),
            (
                "idle: {stop_after: 1m}\n",
                "idle",
                2,
                &["`scale: 1` is a fixed count", "`scale: {min: 0, max: 1}`"],
            ),
            (
                "scale: 0\nidle: {}\n",
                "idle",
                3,
                &["`scale: {min: 0, max: 1}`"],
            ),
        ];
        for (body, field, line, words) in cases {
            let problem = parse_spec(&format!("name: x\n{body}")).expect_err(body);
            assert_eq!(
                problem.field.as_deref(),
                Some(*field),
                "{body}: {problem:?}"
            );
            assert_eq!(problem.line, Some(*line), "{body}: {problem:?}");
            for word in *words {
                assert!(problem.message.contains(word), "{body}: {problem}");
            }
        }
    }

    #[test]
    fn idle_goes_with_bounds_and_a_fixed_count_without_idle_is_unchanged() {
        let spec =
            parse_spec("name: x\nscale: {min: 0, max: 2}\nidle: {pause_after: 5s}\n").unwrap();
        assert_eq!(spec.idle.pause_after, Duration::from_secs(5));
        assert_eq!(spec.idle.stop_after, Duration::from_secs(15 * 60));
    }

    #[test]
    fn the_json_schema_allows_a_count_or_bounds() {
        let schema: serde_json::Value = serde_json::from_str(&crate::json_schema()).unwrap();
        let scale = &schema["$defs"]["Scale"]["anyOf"];
        assert_eq!(scale[0]["type"], "integer");
        assert_eq!(scale[0]["maximum"], 100);
        let auto = &schema["$defs"]["AutoScale"];
        assert_eq!(auto["additionalProperties"], false);
        for field in [
            "min",
            "max",
            "target",
            "limit",
            "queue",
            "stable_window",
            "panic_window",
        ] {
            let property = &auto["properties"][field];
            assert!(property["description"].is_string(), "{field}: {property}");
        }
        assert_eq!(auto["properties"]["max"]["maximum"], 100);
        assert_eq!(auto["properties"]["queue"]["maximum"], 10000);
        assert_eq!(auto["properties"]["max"]["default"], 10);
        assert_eq!(
            schema["$defs"]["Idle"]["properties"]["pause_after"]["default"],
            "30s"
        );
    }
}
