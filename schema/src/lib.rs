//! faaso's funko model: funko.yml as Rust types, the runtimes, and the build context they make.
#![forbid(unsafe_code)]

mod context;
mod cors;
mod files;
mod load;
mod name;
mod probe;
mod problem;
mod runtime;
mod scale;
mod spec;
mod units;

pub use context::{BuildContext, ContextFile};
pub use cors::Cors;
pub use files::{FunkoFile, funko_files};
pub use load::{Funko, SPEC_FILE, load_funko, load_funkos_dir, parse_spec, set_scale, write_scale};
pub use name::{FunkoName, MAX_NAME_LEN, NameError};
pub use probe::{PROBE, PROBE_FILE, PROBE_PATH, Probed, probe_copy_line, probed};
pub use problem::Problem;
pub use runtime::{
    BaseChoice, BaseImages, Runtime, RuntimeMeta, resolve as resolve_runtime, scaffold,
};
pub use scale::{AutoScale, Idle, MAX_CONCURRENCY, MAX_INSTANCES, MAX_QUEUE, Scale};
pub use spec::{
    BUILD_TIMEOUT_BOUNDS, Build, EnvName, EnvValue, Hardening, Healthcheck, MAX_PIDS_LIMIT,
    MAX_RETRIES, MIN_PROBE_DURATION, OptionValue, Resources, SecretKey, Spec,
};
pub use units::{
    Cpus, Duration, MAX_CPUS, MAX_DURATION, MAX_MEMORY, MIN_CPUS, MIN_MEMORY, Memory,
    parse_duration,
};

/// The JSON Schema of funko.yml, pretty-printed, as committed at `schema/funko.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Spec);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
