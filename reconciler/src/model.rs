//! What should run (`Desired`) and what runs (`Observed`): the two inputs of the planner.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One valid funko as the planner needs it: which image, which container config, how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredFunko {
    /// The funko's name.
    pub name: String,
    /// The image reference its instances run (`<prefix>-<name>:<content hash>`).
    pub image: String,
    /// The hash of everything that needs a new container (image, env, secrets, resources), not
    /// the scale: a scale change must never recreate the instances that stay.
    pub config_hash: String,
    /// How many instances should run.
    pub scale: u32,
}

/// The desired state: every valid funko, and the names of funkos to leave alone (an invalid
/// funko.yml, or content that already failed and has not changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Valid funkos by name.
    pub funkos: BTreeMap<String, DesiredFunko>,
    /// Funkos whose running instances must not be touched this pass.
    pub held: BTreeSet<String>,
}

/// The lifecycle state of a container, reduced to what the planner acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Running (it may not be ready yet).
    Running,
    /// Docker is restarting it under its restart policy.
    Restarting,
    /// Created, exited, dead or paused: it serves nothing and must be replaced.
    Stopped,
}

/// One container, as found by listing the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// The container id.
    pub id: String,
    /// The container name, without Docker's leading `/`.
    pub name: String,
    /// Whether faaso created it (its managed label is set): only these are ever changed.
    pub managed: bool,
    /// The funko it belongs to (from its label, or `faaso-<x>` for unmanaged ones).
    pub funko: String,
    /// The instance number from its label (1-based).
    pub number: u32,
    /// The config hash from its label.
    pub config_hash: String,
    /// The image it runs.
    pub image: String,
    /// Its state.
    pub state: InstanceState,
    /// Its address on the faaso network, when it has one.
    pub ip: Option<std::net::IpAddr>,
    /// The request timeout from its label (what the proxy applies).
    pub timeout: Option<std::time::Duration>,
    /// The readiness path from its label.
    pub health_path: Option<String>,
}

/// The actual state: the containers and the funko images the engine has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every container of interest, managed or not.
    pub instances: Vec<Instance>,
    /// Image references present on the engine, each with when its image was built (seconds
    /// since the Unix epoch).
    pub images: BTreeMap<String, u64>,
}
