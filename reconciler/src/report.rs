//! What a pass reports: each funko's status and the steps it planned.

use serde::Serialize;

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
    /// The image it should run.
    pub image: Option<String>,
    /// When that image was built, in seconds since the Unix epoch (absent until it is).
    pub image_created: Option<u64>,
    /// Why it is not where it should be, if it is not.
    pub error: Option<String>,
    /// The config hash its current instances carry (absent for an invalid or removed funko);
    /// kept off the API's status, for telling current instances from outdated ones.
    #[serde(skip)]
    pub config_hash: Option<String>,
}

impl FunkoStatus {
    /// Whether the funko is at its desired scale, every instance current and ready.
    pub fn converged(&self) -> bool {
        self.error.is_none() && self.desired.is_some_and(|d| d == self.ready) && self.outdated == 0
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
}

impl<S> PassReport<S> {
    /// Whether every funko is converged.
    pub fn converged(&self) -> bool {
        self.funkos.iter().all(FunkoStatus::converged)
    }
}
