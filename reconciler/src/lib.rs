//! faaso's reconciler: what runs now (`observe`), what should run (`desired`), what to do about
//! it (`plan`) and doing it (`execute`), on any engine behind the [`Backend`] boundary; the
//! Docker backend is in `docker/`.
#![forbid(unsafe_code)]

pub mod autoscale;
mod backend;
mod deaths;
mod desired;
mod docker;
mod execute;
mod failures;
mod in_flight;
mod listener;
mod namespace;
mod observe;
mod plan;
mod probe;
mod prune;
mod reconcile;
mod report;
mod runner;
mod status;
pub mod swarm;
pub mod twin;
mod watch;
mod worker;

pub use autoscale::{
    Autoscaler, DEFAULT_IDLE_AFTER, DEFAULT_PANIC_THRESHOLD, DEFAULT_PANIC_WINDOW,
    DEFAULT_STABLE_WINDOW, Decision, Policy, Reason,
};
pub use backend::{
    Backend, Change, EngineError, InstanceDetails, InstanceLog, LogOptions, Started, StepFailure,
    StepInfo,
};
pub use deaths::Deaths;
pub use desired::{
    Autoscaled, BasePolicy, Demand, Desired, DesiredFunko, DesiredState, Prepared, SecretMount,
    config_hash, load_desired, secret_path, wanted,
};
pub use docker::{BuildOutcome, DockerEngine, DockerError};
pub use execute::Containers;
pub use failures::{Failure, Failures};
pub use in_flight::InFlight;
pub use listener::{Listener, Quiet};
pub use namespace::Namespace;
pub use observe::{
    DEFAULT_HEALTH_PATH, FUNKO_PORT, Instance, InstanceState, Listed, Observed, read_instance,
};
pub use plan::{InstanceRef, RemoveReason, Step, plan};
pub use probe::probe;
pub use prune::{BuiltImage, images_to_remove};
pub use reconcile::{Planned, ReconcileError, Reconciler, Settings};
pub use report::{Bounds, Converging, FunkoStatus, PassReport, ScaleDecision};
pub use watch::{Trigger, Triggers, WatchTiming, watch};
pub use worker::FunkoWork;
