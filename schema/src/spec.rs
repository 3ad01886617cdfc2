//! `Spec`: the contents of a funko.yml, as Rust types.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::cors::{Cors, cors_block};
use crate::name::FunkoName;
use crate::scale::{Idle, Scale};
use crate::units::{Cpus, Duration, Memory};

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
    /// The longest a request may take before the proxy answers 504.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Browser origins allowed to call the funko; the proxy answers preflights itself. Absent:
    /// no CORS headers are added (the funko may still send its own).
    #[serde(
        default,
        deserialize_with = "cors_block",
        skip_serializing_if = "Option::is_none"
    )]
    pub cors: Option<Cors>,
    /// Free settings handed to the runtime's Dockerfile template (see each runtime's defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, serde_json::Value>,
}

/// The readiness probe: `GET <path>` on port 3000 answering 2xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The path probed; it must start with `/`.
    #[serde(default = "default_health_path", deserialize_with = "url_path")]
    pub path: String,
    /// Time between probes once the instance is running.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// How long one probe may take.
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
    /// Grace time after start during which failed probes do not count.
    #[serde(default = "default_start_period")]
    pub start_period: Duration,
    /// Consecutive failures after which an instance counts as unhealthy.
    #[serde(default = "default_retries")]
    #[schemars(range(min = 1))]
    pub retries: u32,
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
    /// The most processes an instance may run.
    #[serde(default = "default_pids_limit")]
    #[schemars(range(min = 1))]
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
