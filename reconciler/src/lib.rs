//! faaso's reconciler: what runs now (Docker), what should run (the funkos folder), and making
//! the first match the second.
#![forbid(unsafe_code)]

mod container;
mod deaths;
mod desired;
mod docker;
mod docker_engine;
mod engine;
mod failed_build;
mod failures;
mod image;
mod model;
mod namespace;
mod plan;
mod probe;
mod prune;
mod reconcile;
pub mod twin;
mod watch;

pub use bollard::Docker;
pub use container::{FUNKO_PORT, config_hash, container_config, container_name};
pub use deaths::Deaths;
pub use desired::{BasePolicy, DesiredState, Prepared, SecretMount, load_desired, secret_path};
pub use docker::{DockerError, connect};
pub use docker_engine::DockerEngine;
pub use engine::{Engine, Started};
pub use failures::{Failure, Failures};
pub use image::{BuildOutcome, build_image, image_exists, image_tags, remove_funko_images};
pub use model::{Desired, DesiredFunko, Instance, InstanceState, Observed};
pub use namespace::Namespace;
pub use plan::{InstanceRef, RemoveReason, Step, plan};
pub use probe::probe;
pub use prune::{BuiltImage, images_to_remove};
pub use reconcile::{FunkoStatus, Listener, PassReport, Quiet, Reconciler, Settings};
pub use watch::{Trigger, Triggers, WatchTiming, watch};
