//! `Spec`: the contents of a funko.yml, as Rust types.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::cors::{Cors, cors_block};
use crate::name::FunkoName;
use crate::scale::{Idle, Scale};
use crate::units::{Cpus, Duration, MAX_DURATION, Memory, duration_within};

/// One funko's desired state, as written in its funko.yml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "funko.yml",
    description = "A faaso funko: one function, its runtime and how to run it."
)]
pub struct Spec {
    /// The funko's name; must equal its folder's name.
    pub name: FunkoName,
    /// A built-in runtime (`python`, `node`, `flask`, `express`, `binary`) or a path to a runtime
    /// folder, relative to the funko. Absent: the funko brings its own Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// How many instances run: a fixed count (0 keeps the funko defined but stopped), or
    /// bounds for the autoscaler such as `{min: 0, max: 10}`.
    #[serde(default)]
    pub scale: Scale,
    /// When an autoscaled funko's idle instances are paused and stopped; only with bounds in
    /// `scale`.
    #[serde(default, skip_serializing_if = "Idle::is_default")]
    pub idle: Idle,
    /// Environment variables for every instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, EnvValue>,
    /// Secret keys mounted read-only at `/secrets/<key>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretKey>,
    /// How faaso decides an instance is ready.
    #[serde(default)]
    pub healthcheck: Healthcheck,
    /// Memory and CPU limits of each instance.
    #[serde(default)]
    pub resources: Resources,
    /// How locked down each instance runs; everything is on unless a funko needs otherwise.
    #[serde(default)]
    pub hardening: Hardening,
    /// The longest a request may take before the proxy answers 504; from 100ms to 24h.
    #[serde(default = "default_timeout", deserialize_with = "request_timeout")]
    pub timeout: Duration,
    /// How the image is built.
    #[serde(default, skip_serializing_if = "Build::is_default")]
    pub build: Build,
    /// Browser origins allowed to call the funko; the proxy answers preflights itself. Absent:
    /// no CORS headers are added (the funko may still send its own).
    #[serde(
        default,
        deserialize_with = "cors_block",
        skip_serializing_if = "Option::is_none"
    )]
    pub cors: Option<Cors>,
    /// Settings for the runtime's Dockerfile template: only the options the runtime declares,
    /// each a string, whole number or boolean matching the runtime's pattern, never with a
    /// control character (see `faaso runtimes` and each runtime's runtime.yml).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, OptionValue>,
}

impl Spec {
    /// The longest the funko's image build may take; a hung build is stopped then.
    pub fn build_timeout(&self) -> std::time::Duration {
        self.build.timeout.0
    }
}

/// A value of `options:`: a string, whole number or boolean, with no control character (a
/// newline would start a new line of the rendered Dockerfile).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct OptionValue(#[schemars(with = "OptionValueSchema")] pub serde_json::Value);

/// What YAML may hold as an option value.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OptionValueSchema {
    Text(#[schemars(regex(pattern = r"^[^\u0000-\u001f\u007f]*$"))] String),
    Number(i64),
    Flag(bool),
}

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = OptionValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, whole number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OptionValue, E> {
                if let Some(c) = v.chars().find(|c| c.is_control()) {
                    return Err(E::custom(format!(
                        "{:?} holds the control character {c:?}; an option is one value on one \
                         line of the Dockerfile, so newlines and other control characters are refused",
                        v
                    )));
                }
                Ok(OptionValue(serde_json::Value::String(v.to_owned())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<OptionValue, E> {
                Ok(OptionValue(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<OptionValue, E> {
                Ok(OptionValue(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<OptionValue, E> {
                Ok(OptionValue(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<OptionValue, E> {
                Err(E::custom(format!(
                    "`{v}` is a fraction; an option is a string, whole number or boolean (quote it for a string)"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `build:` in funko.yml: how the funko's image is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The longest a build may take; a hung build is stopped then. From 10s (a build that
    /// starts a container needs a few seconds) to 24h; default 30m.
    #[serde(default = "default_build_timeout", deserialize_with = "build_timeout")]
    pub timeout: Duration,
}

impl Default for Build {
    fn default() -> Self {
        Self {
            timeout: default_build_timeout(),
        }
    }
}

impl Build {
    /// Whether these are the defaults (the block is then left out when a spec is written).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The least `healthcheck.interval`, `healthcheck.timeout` and `timeout` may be: shorter would
/// probe in a busy loop or answer 504 before any funko could reply.
pub const MIN_PROBE_DURATION: Duration = Duration::from_millis(100);

/// The most `healthcheck.retries` may be: with `interval` at most a day it keeps the readiness
/// wait (`start_period + interval × retries`) finite and far from overflow.
pub const MAX_RETRIES: u32 = 100;

/// The most `hardening.pids_limit` may be: Linux's largest `pid_max` (2^22).
pub const MAX_PIDS_LIMIT: u32 = 1 << 22;

/// The least and most `build.timeout` may be.
pub const BUILD_TIMEOUT_BOUNDS: (Duration, Duration) = (Duration::from_secs(10), MAX_DURATION);

/// The readiness probe: `GET <path>` on port 3000 answering 2xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The path probed; it must start with `/`.
    #[serde(default = "default_health_path", deserialize_with = "url_path")]
    pub path: String,
    /// Time between probes once the instance is running; from 100ms to 24h.
    #[serde(default = "default_interval", deserialize_with = "probe_duration")]
    pub interval: Duration,
    /// How long one probe may take; from 100ms to 24h.
    #[serde(default = "default_probe_timeout", deserialize_with = "probe_duration")]
    pub timeout: Duration,
    /// Grace time after start during which failed probes do not count; from 0s to 24h.
    #[serde(default = "default_start_period")]
    pub start_period: Duration,
    /// Consecutive failures after which an instance counts as unhealthy; from 1 to 100.
    #[serde(default = "default_retries", deserialize_with = "retries")]
    #[schemars(range(min = 1, max = 100))]
    pub retries: u32,
}

impl Healthcheck {
    /// How long a new instance has to answer its first probe: `start_period + interval ×
    /// retries`, saturating (the bounds keep it under 102 days, but it must never panic).
    pub fn ready_within(&self) -> std::time::Duration {
        self.interval
            .0
            .checked_mul(self.retries)
            .and_then(|waits| self.start_period.0.checked_add(waits))
            .unwrap_or(std::time::Duration::MAX)
    }
}

impl Default for Healthcheck {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            interval: default_interval(),
            timeout: default_probe_timeout(),
            start_period: default_start_period(),
            retries: default_retries(),
        }
    }
}

/// Per-instance limits; absent means Docker's defaults (no limit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit such as `128M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// CPU quota in cores such as `0.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
}

/// Container hardening, on by default; relax a setting only for a funko that needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hardening {
    /// A read-only root filesystem, with a writable tmpfs at `/tmp`.
    #[serde(default = "yes")]
    pub read_only: bool,
    /// Drop every Linux capability.
    #[serde(default = "yes")]
    pub drop_capabilities: bool,
    /// Forbid gaining privileges (setuid binaries) with `no-new-privileges`.
    #[serde(default = "yes")]
    pub no_new_privileges: bool,
    /// The most processes an instance may run; from 1 to 4194304 (Linux's largest `pid_max`).
    /// Docker reads 0 as unlimited, so 0 is refused.
    #[serde(default = "default_pids_limit", deserialize_with = "pids_limit")]
    #[schemars(range(min = 1, max = 4194304))]
    pub pids_limit: u32,
}

impl Default for Hardening {
    fn default() -> Self {
        Self {
            read_only: true,
            drop_capabilities: true,
            no_new_privileges: true,
            pids_limit: default_pids_limit(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_pids_limit() -> u32 {
    256
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct EnvName(#[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))] pub String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let mut chars = raw.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "`{raw}` is not an environment variable name; use letters, digits and `_`"
            )));
        }
        if raw == "PORT" {
            return Err(serde::de::Error::custom(
                "`PORT` is set by faaso (every funko listens on 3000); remove it",
            ));
        }
        Ok(Self(raw))
    }
}

/// An environment variable value; numbers and booleans are taken as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct EnvValue(#[schemars(with = "EnvValueSchema")] pub String);

/// What YAML may hold as an env value.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum EnvValueSchema {
    Text(String),
    Number(f64),
    Flag(bool),
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A secret's key: it names the file `/secrets/<key>`, so no `/`, no leading `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretKey(#[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))] pub String);

impl SecretKey {
    /// Checks `key` against the secret key rule.
    pub fn new(key: &str) -> Result<Self, String> {
        let mut chars = key.chars();
        let valid = key.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(key.to_owned()))
        } else {
            Err(format!(
                "`{key}` is not a secret key; use up to 64 letters, digits, `.`, `_` and `-`, starting with a letter or digit"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(&raw).map_err(serde::de::Error::custom)
    }
}

fn url_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw = String::deserialize(deserializer)?;
    if raw.starts_with('/') && !raw.contains(char::is_whitespace) {
        Ok(raw)
    } else {
        Err(serde::de::Error::custom(format!(
            "`{raw}` is not a URL path; it must start with `/`, like `/ping`"
        )))
    }
}

fn request_timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration_within(deserializer, MIN_PROBE_DURATION, MAX_DURATION)
}

fn probe_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration_within(deserializer, MIN_PROBE_DURATION, MAX_DURATION)
}

fn build_timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration_within(deserializer, BUILD_TIMEOUT_BOUNDS.0, BUILD_TIMEOUT_BOUNDS.1)
}

fn retries<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    crate::units::count_within(deserializer, 1, MAX_RETRIES)
}

fn pids_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    crate::units::count_within(deserializer, 1, MAX_PIDS_LIMIT)
}

fn default_build_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_health_path() -> String {
    "/ping".to_owned()
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_start_period() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> u32 {
    3
}

#[cfg(test)]
mod tests {
    use crate::parse_spec;

    /// Each bound: the YAML after `name: x`, the field and line its problem points at, and a
    /// fragment of its message.
    #[test]
    fn every_number_and_duration_is_bounded_and_the_error_names_the_field() {
        let cases: &[(&str, &str, u64, &str)] = &[
            (
                "healthcheck: {interval: 300000000000y}\n",
                "healthcheck.interval",
                2,
                "longer than a day",
            ),
            (
                "healthcheck:\n  interval: 25h\n",
                "healthcheck.interval",
                3,
                "longer than a day",
            ),
            (
                "healthcheck:\n  interval: 10ms\n",
                "healthcheck.interval",
                3,
                "shorter than 100ms",
            ),
            (
                "healthcheck:\n  timeout: 0s\n",
                "healthcheck.timeout",
                3,
                "shorter than 100ms",
            ),
            (
                "healthcheck:\n  start_period: 2d\n",
                "healthcheck.start_period",
                3,
                "longer than a day",
            ),
            (
                "healthcheck:\n  retries: 0\n",
                "healthcheck.retries",
                3,
                "from 1 to 100",
            ),
            (
                "healthcheck: {retries: 101}\n",
                "healthcheck.retries",
                2,
                "from 1 to 100",
            ),
            (
                "healthcheck:\n  retries: 99999999999999\n",
                "healthcheck.retries",
                3,
                "from 1 to 100",
            ),
            ("timeout: 50ms\n", "timeout", 2, "shorter than 100ms"),
            ("timeout: 1000000h\n", "timeout", 2, "longer than a day"),
            (
                "hardening:\n  pids_limit: 0\n",
                "hardening.pids_limit",
                3,
                "from 1 to 4194304",
            ),
            (
                "hardening: {pids_limit: 4194305}\n",
                "hardening.pids_limit",
                2,
                "from 1 to 4194304",
            ),
            (
                "resources:\n  memory: 2048G\n",
                "resources.memory",
                3,
                "more than 1024G",
            ),
            (
                "resources:\n  memory: 1M\n",
                "resources.memory",
                3,
                "minimum of 6M",
            ),
            (
                "resources:\n  cpus: 1025\n",
                "resources.cpus",
                3,
                "from 0.01 to 1024",
            ),
            (
                "resources:\n  cpus: 0.001\n",
                "resources.cpus",
                3,
                "from 0.01 to 1024",
            ),
            (
                "cors:\n  origins: ['*']\n  max_age: 25h\n",
                "cors.max_age",
                4,
                "longer than a day",
            ),
            ("scale:\n  min: 101\n", "scale.min", 3, "at most 100"),
            (
                "scale:\n  target: 10001\n",
                "scale.target",
                3,
                "at most 10000",
            ),
            (
                "scale:\n  limit: 10001\n",
                "scale.limit",
                3,
                "at most 10000",
            ),
            (
                "scale:\n  stable_window: 2d\n",
                "scale.stable_window",
                3,
                "longer than a day",
            ),
            (
                "scale: {min: 0}\nidle:\n  pause_after: 48h\n",
                "idle.pause_after",
                4,
                "longer than a day",
            ),
            (
                "scale: {min: 0}\nidle:\n  stop_after: 86401s\n",
                "idle.stop_after",
                4,
                "longer than a day",
            ),
            (
                "build:\n  timeout: 9s\n",
                "build.timeout",
                3,
                "shorter than 10s",
            ),
            (
                "build:\n  timeout: 25h\n",
                "build.timeout",
                3,
                "longer than a day",
            ),
        ];
        for (body, field, line, says) in cases {
            let problem = parse_spec(&format!("name: x\n{body}")).expect_err(body);
            assert_eq!(
                problem.field.as_deref(),
                Some(*field),
                "{body}: {problem:?}"
            );
            assert_eq!(problem.line, Some(*line), "{body}: {problem:?}");
            assert!(problem.message.contains(says), "{body}: {problem}");
        }
    }

    #[test]
    fn values_at_the_bounds_load() {
        let spec = parse_spec(
            "name: x\nhealthcheck: {interval: 24h, timeout: 100ms, start_period: 24h, retries: 100}\n\
             timeout: 24h\nhardening: {pids_limit: 4194304}\nresources: {memory: 1024G, cpus: 1024}\n\
             cors: {origins: ['*'], max_age: 24h}\nbuild: {timeout: 10s}\n\
             scale: {min: 100, max: 100, target: 10000, limit: 10000, queue: 10000, stable_window: 24h, panic_window: 23h}\n\
             idle: {pause_after: 24h, stop_after: 24h}\n",
        )
        .unwrap();
        assert_eq!(spec.healthcheck.retries, 100);
        assert_eq!(spec.hardening.pids_limit, 4_194_304);
        assert_eq!(spec.build_timeout(), std::time::Duration::from_secs(10));
        assert_eq!(
            spec.healthcheck.ready_within(),
            std::time::Duration::from_secs(24 * 3600 * 101)
        );
        let low = parse_spec(
            "name: x\nhardening: {pids_limit: 1}\nhealthcheck: {retries: 1, interval: 100ms}\n",
        )
        .unwrap();
        assert_eq!(low.hardening.pids_limit, 1);
    }

    #[test]
    fn build_timeout_defaults_to_30_minutes_and_is_written_only_when_set() {
        let spec = parse_spec("name: x\n").unwrap();
        assert_eq!(
            spec.build_timeout(),
            std::time::Duration::from_secs(30 * 60)
        );
        assert!(!serde_saphyr::to_string(&spec).unwrap().contains("build"));
        let spec = parse_spec("name: x\nbuild:\n  timeout: 1h\n").unwrap();
        assert_eq!(spec.build_timeout(), std::time::Duration::from_secs(3600));
        let written = serde_saphyr::to_string(&spec).unwrap();
        assert_eq!(parse_spec(&written).unwrap(), spec, "{written}");
    }

    #[test]
    fn ready_within_saturates_instead_of_panicking() {
        let mut health = crate::Healthcheck::default();
        assert_eq!(health.ready_within(), std::time::Duration::from_secs(60));
        health.interval = crate::Duration(std::time::Duration::MAX);
        health.retries = u32::MAX;
        assert_eq!(health.ready_within(), std::time::Duration::MAX);
    }

    #[test]
    fn an_option_value_with_a_control_character_is_refused_at_parse() {
        let p = parse_spec(
            "name: x\nruntime: binary\noptions: {executable: \"app /funko/app\\nUSER 0:0\\nRUN echo pwned\"}\n",
        )
        .unwrap_err();
        assert_eq!(p.field.as_deref(), Some("options.executable"), "{p}");
        assert_eq!(p.line, Some(3), "{p}");
        assert!(p.message.contains("control character"), "{p}");
        let p = parse_spec("name: x\noptions:\n  app: \"a\\tb\"\n").unwrap_err();
        assert_eq!(p.field.as_deref(), Some("options.app"), "{p}");
        let p = parse_spec("name: x\noptions:\n  app: [a, b]\n").unwrap_err();
        assert_eq!(p.field.as_deref(), Some("options.app"), "{p}");
    }

    #[test]
    fn the_json_schema_shows_the_bounds() {
        let schema: serde_json::Value = serde_json::from_str(&crate::json_schema()).unwrap();
        let defs = &schema["$defs"];
        assert_eq!(defs["Healthcheck"]["properties"]["retries"]["maximum"], 100);
        assert_eq!(defs["Hardening"]["properties"]["pids_limit"]["minimum"], 1);
        assert_eq!(
            defs["Hardening"]["properties"]["pids_limit"]["maximum"],
            4_194_304
        );
        assert_eq!(defs["AutoScale"]["properties"]["target"]["maximum"], 10000);
        assert_eq!(defs["Cpus"]["maximum"], 1024.0);
        assert!(
            defs["Duration"]["description"]
                .as_str()
                .unwrap()
                .contains("24h")
        );
        let build = &defs["Build"]["properties"]["timeout"];
        assert!(
            build["description"]
                .as_str()
                .unwrap()
                .contains("hung build"),
            "{build}"
        );
        assert_eq!(build["default"], "30m");
    }
}
