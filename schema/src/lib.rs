//! faaso's funko model: funko.yml as Rust types, the runtimes, and the build context they make.
#![forbid(unsafe_code)]

mod load;
mod name;
mod problem;
mod spec;
mod units;

pub use load::{Funko, SPEC_FILE, load_funko, load_funkos_dir, parse_spec};
pub use name::{FunkoName, MAX_NAME_LEN, NameError};
pub use problem::Problem;
pub use spec::{EnvName, EnvValue, Healthcheck, Resources, SecretKey, Spec};
pub use units::{Cpus, Duration, Memory};
