//! faaso's reconciler: what runs now (Docker), what should run (the funkos folder), and making
//! the first match the second.
#![forbid(unsafe_code)]

mod docker;
mod image;
mod model;
mod namespace;
mod plan;
pub mod twin;

pub use bollard::Docker;
pub use docker::{DockerError, connect};
pub use image::{BuildOutcome, build_image, image_exists, resolve_base_choice};
pub use model::{Desired, DesiredFunko, Instance, InstanceState, Observed};
pub use namespace::Namespace;
pub use plan::{InstanceRef, RemoveReason, Step, plan};
