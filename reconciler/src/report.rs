//! What a pass reports: each funko's status and the steps it planned.

use serde::{Deserialize, Serialize};

use crate::desired::Desired;
use crate::observe::Observed;

/// How one funko stands after a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunkoStatus {
    /// The funko.
    pub name: String,
    /// Instances its spec asks for (absent for an invalid or removed funko).
    pub desired: Option<u32>,
    /// Running instances with the current config that answer their healthcheck.
    pub ready: u32,
    /// Running instances with an older config.
    pub outdated: u32,
    /// Paused instances with the current config (an autoscaled funko's idle ones).
    pub paused: u32,
    /// Stopped and kept instances with the current config (idle longer).
    pub stopped: u32,
    /// An autoscaled funko's bounds (absent for a fixed scale).
    pub autoscaled: Option<Bounds>,
    /// The autoscaler's last decision, when a server runs one.
    pub last_decision: Option<ScaleDecision>,
    /// The image it should run.
    pub image: Option<String>,
    /// When that image was built, in seconds since the Unix epoch (absent until it is).
    pub image_created: Option<u64>,
    /// Why it is not where it should be, if it is not.
    pub error: Option<String>,
    /// Its work running now, when it has some: since when and at which step.
    pub converging: Option<Converging>,
    /// The config hash its current instances carry (absent for an invalid or removed funko);
    /// kept off the API's status, for telling current instances from outdated ones.
    #[serde(skip)]
    pub config_hash: Option<String>,
}

/// A funko's work in progress: what `faaso status` shows for one converging for long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converging {
    /// When its work began, in seconds since the Unix epoch.
    pub since: u64,
    /// For how many seconds it has been at it.
    pub seconds: u64,
    /// The step it is at (`build faaso-a:1234`, `waiting for a build slot`…).
    pub step: String,
}

/// An autoscaled funko's bounds, as its funko.yml sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// The fewest instances kept ready (0: scales to zero).
    pub min: u32,
    /// The most instances.
    pub max: u32,
    /// Concurrent requests per instance aimed for.
    pub target: u32,
}

/// A decision of the autoscaler, as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleDecision {
    /// How many ready instances it wanted.
    pub want: u32,
    /// Why, in a sentence.
    pub reason: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

impl FunkoStatus {
    /// Whether the funko is where it should be, every instance current: a fixed scale with
    /// exactly its count ready; an autoscaled funko with at least its count kept (ready,
    /// paused or stopped), within its bounds.
    pub fn converged(&self) -> bool {
        let counted = match self.autoscaled {
            None => self.desired.is_some_and(|d| d == self.ready),
            Some(bounds) => {
                let kept = self.ready + self.paused + self.stopped;
                self.desired.is_some_and(|d| kept >= d) && kept <= bounds.max
            }
        };
        self.error.is_none() && self.converging.is_none() && counted && self.outdated == 0
    }
}

/// What a pass did and where it left things; `S` is the backend's step type.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport<S> {
    /// The steps planned.
    pub plan: Vec<S>,
    /// Each funko's status after the pass, by name.
    pub funkos: Vec<FunkoStatus>,
    /// Non-fatal notes (a secret without a value).
    pub warnings: Vec<String>,
    /// The instances and images at the end of the pass.
    #[serde(skip)]
    pub observed: Observed,
    /// What the pass aimed for (each valid funko's image, config and bounds).
    #[serde(skip)]
    pub desired: Desired,
    /// The funkos whose work ran during the pass (watch mode): what `observed` says of them
    /// may predate that work, so a route table leaves them to what the work tells it.
    #[serde(skip)]
    pub busy: std::collections::BTreeSet<String>,
}

impl<S> PassReport<S> {
    /// Whether every funko is converged.
    pub fn converged(&self) -> bool {
        self.funkos.iter().all(FunkoStatus::converged)
    }
}
