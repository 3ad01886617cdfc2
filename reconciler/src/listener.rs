//! `Listener`: told about what a pass does as it happens: build output for a terminal,
//! instance changes for a route table. Generic over the backend's step type.

use crate::backend::Started;
use crate::report::PassReport;

/// Told about what a pass does as it happens. Every method has a do-nothing default.
pub trait Listener<S>: Send + Sync {
    /// One line of a funko's build output.
    fn build_output(&self, _funko: &str, _line: &str) {}
    /// A step is about to run.
    fn step_started(&self, _step: &S) {}
    /// A step ended; `error` says why when it failed.
    fn step_finished(&self, _step: &S, _error: Option<&str>) {}
    /// A new instance answers its healthcheck: it may get traffic now.
    fn instance_ready(&self, _funko: &str, _instance: &Started) {}
    /// An instance is about to be stopped: it must get no new traffic.
    fn instance_leaving(&self, _funko: &str, _id: &str) {}
    /// One funko's work ended, with the error that stopped it, if one did.
    fn funko_finished(&self, _funko: &str, _error: Option<&str>) {}
    /// A pass ended; the report holds what the engine looked like at its end.
    fn pass_finished(&self, _report: &PassReport<S>) {}
}

/// A listener that ignores everything.
pub struct Quiet;
impl<S> Listener<S> for Quiet {}
