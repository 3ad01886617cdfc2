//! What the admin API asks of the engine that runs the instances, whichever backend it is: the
//! reconciler's [`Backend`] is not object-safe (its futures are `impl Future`), so this boxes
//! the three calls the API makes, and one `AdminState` serves one Docker engine or a Swarm.

use faaso_reconciler::{Backend, EngineError, InstanceDetails, InstanceLog, LogOptions};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

/// The instance operations of the admin API.
pub trait Engine: Send + Sync {
    /// Every instance faaso created for `funko`, running or not, looked at closely.
    fn inspect<'a>(
        &'a self,
        funko: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceDetails>, EngineError>>;

    /// Restarts one instance in place, or says why the backend cannot.
    fn restart<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// The output of every instance of `funko`.
    fn logs<'a>(
        &'a self,
        funko: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<Vec<InstanceLog>, EngineError>>;
}

impl<B: Backend> Engine for B {
    fn inspect<'a>(
        &'a self,
        funko: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceDetails>, EngineError>> {
        Backend::inspect(self, funko).boxed()
    }

    fn restart<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Backend::restart(self, id).boxed()
    }

    fn logs<'a>(
        &'a self,
        funko: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<Vec<InstanceLog>, EngineError>> {
        Backend::logs(self, funko, options).boxed()
    }
}
