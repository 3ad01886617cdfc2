//! `Backend`: the reconciler's one side-effect boundary, and what crosses it.
//!
//! Why this shape. A backend brings its own `Step` type and its own pure planner, because
//! backends own their instances differently: on one Docker engine faaso creates numbered
//! containers and rolls them itself (`plan::plan`, [`crate::Step`]); on Docker Swarm the engine
//! owns the tasks of a service and rolls them, so its steps are "make the service look like
//! this" and "remove the service". A trait with `start(number)` would force the first shape on
//! the second (the lowest common denominator); a trait of associated `Step` + `plan` +
//! `execute` lets each be honest, as kube-runtime and plane separate decision from effect.
//! What every backend shares stays above it, in the reconciler: reading the funkos folder,
//! failure holds, one funko's steps in order while funkos run concurrently, the listener,
//! status, pruning and watch mode. The change stream and instance logs are behind it too, so
//! `watch` and the admin API never see the engine's own client.
//!
//! What a second backend implements: `observe` (its instances as [`Instance`]s and the images
//! it has), `plan` (pure, from desired and observed), `execute` (one step, telling the
//! listener when an instance becomes ready or is about to leave), `prepare` (what a pass's
//! steps share, before they run), `prune_images`, `changes`, and for operators `inspect`,
//! `restart` and `logs`.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::Serialize;

use crate::desired::{Desired, Prepared};
use crate::listener::Listener;
use crate::observe::{Instance, Observed};

/// A failed engine operation; each backend's own error inside, message and source kept.
pub struct EngineError(Box<dyn std::error::Error + Send + Sync>, Vanishing);

/// Whether the engine refused because the object is going away (being removed, or gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vanishing {
    No,
    Yes,
}

impl EngineError {
    /// Wraps a backend's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error), Vanishing::No)
    }

    /// Wraps a backend's refusal to act on an object that is being removed or is gone: a
    /// state the caller can name (a 409), not a failure of the engine.
    pub fn vanishing(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error), Vanishing::Yes)
    }

    /// What this backend cannot do.
    pub fn unsupported(what: &str) -> Self {
        Self(
            format!("{what} is not supported by this backend").into(),
            Vanishing::No,
        )
    }

    /// Whether the object acted on is being removed or is already gone.
    pub fn is_vanishing(&self) -> bool {
        self.1 == Vanishing::Yes
    }
}

impl fmt::Debug for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A freshly started instance, ready to be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The instance id (a container id on Docker).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it listens (its address on the network, port 3000).
    pub addr: SocketAddr,
    /// The request timeout its funko's spec sets (what a proxy applies to it).
    pub request_timeout: Duration,
    /// The browser origins its funko's spec lets call it (what a proxy applies to it).
    pub cors: Option<faaso_schema::Cors>,
}

/// What a step is, for logs, tables and scoping: every backend's `Step` says it.
pub trait StepInfo {
    /// The funko the step acts on.
    fn funko(&self) -> &str;
    /// A short verb (`build`, `start`, `remove`…) and a detail for a table row.
    fn describe(&self) -> (&'static str, String);
    /// Whether it builds an image (a terminal shows build output for these).
    fn builds(&self) -> bool;
}

/// A step failed: the content it was for (an image or a config hash; empty when it was for
/// no content) and why. A funko whose content failed is held until that content changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The image or config hash that failed.
    pub key: String,
    /// Why.
    pub error: String,
}

/// Something changed on the engine; the watch loop passes again. `Died` and `Started` are
/// trusted over a listing that lags behind them (see [`crate::Deaths`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The instance stopped running.
    Died(String),
    /// The instance (re)started.
    Started(String),
    /// Something else worth a look (an instance went away, ran out of memory…).
    Other,
}

/// Which logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Lines of past output per instance (`None`: all of it).
    pub tail: Option<u64>,
    /// Keep the streams open for new output.
    pub follow: bool,
}

/// One instance's output: its name and a stream of chunks (lines, possibly several a chunk).
pub struct InstanceLog {
    /// The instance's name.
    pub instance: String,
    /// Its output as it comes; an engine error ends it.
    pub output: BoxStream<'static, Result<Bytes, EngineError>>,
}

/// An instance as an operator sees it: the model's view, and what only a closer look tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDetails {
    /// The instance.
    pub instance: Instance,
    /// The engine's own word for its state (`running`, `exited`, `restarting`…).
    pub status: String,
    /// When it last started, in seconds since the Unix epoch (absent when not running).
    pub started_at: Option<u64>,
    /// The engine's own healthcheck status, when the image declares one.
    pub health: Option<String>,
}

/// What the reconciler needs from an engine that runs funko instances.
pub trait Backend: Send + Sync {
    /// One thing to do; the steps of one funko run in order.
    type Step: StepInfo + Serialize + fmt::Debug + Clone + PartialEq + Send + Sync;

    /// What runs now: the instances of interest (managed or named like funkos) and the
    /// images present.
    fn observe(&self) -> impl Future<Output = Result<Observed, EngineError>> + Send;

    /// What it takes to make `observed` match `desired`: pure, deterministic, and touching no
    /// held funko and no instance faaso did not create.
    fn plan(&self, desired: &Desired, observed: &Observed) -> Vec<Self::Step>;

    /// Readies what a pass's steps share before any runs (Docker: the network).
    fn prepare(&self, steps: &[Self::Step])
    -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Runs one step. `prepared` is the funko's valid spec and build context, when it has
    /// one. The listener hears of an instance that becomes ready (it may get traffic) and of
    /// one about to be stopped (it must get no new traffic), in that order in a replacement.
    fn execute(
        &self,
        step: &Self::Step,
        prepared: Option<&Prepared>,
        listener: &dyn Listener<Self::Step>,
    ) -> impl Future<Output = Result<(), StepFailure>> + Send;

    /// Removes what a build of `prepared` that was cut short (its timeout, a cancel, faaso
    /// stopping) leaves behind, a `RUN` still running above all. A backend whose builds leave
    /// nothing behind has nothing to do.
    fn clean_up_build(&self, prepared: &Prepared) -> impl Future<Output = ()> + Send {
        let _ = prepared;
        async {}
    }

    /// Removes the funko images nothing needs: all but `keep` and one previous image per
    /// funko, and any left dangling by an interrupted build. Returns how many went.
    fn prune_images(
        &self,
        keep: &BTreeSet<String>,
    ) -> impl Future<Output = Result<usize, EngineError>> + Send;

    /// The engine's changes as they happen, from now on. The stream ends (or yields an error)
    /// when the engine goes away; the caller asks again after a pause.
    fn changes(&self) -> BoxStream<'static, Result<Change, EngineError>>;

    /// Every instance faaso created for `funko`, running or not, looked at closely.
    fn inspect(
        &self,
        funko: &str,
    ) -> impl Future<Output = Result<Vec<InstanceDetails>, EngineError>> + Send;

    /// Restarts one instance in place (SIGTERM, the grace period, SIGKILL, start).
    fn restart(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Freezes an idle instance, memory and address kept (it must get no traffic first). A
    /// backend that cannot says so.
    fn pause(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send {
        let _ = id;
        async { Err(EngineError::unsupported("pausing an instance")) }
    }

    /// Waits until a (re)started instance answers its healthcheck, or says why it never did
    /// (it stopped running, say).
    fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &faaso_schema::Healthcheck,
    ) -> impl Future<Output = Result<(), EngineError>> + Send {
        let _ = (started, healthcheck);
        async { Err(EngineError::unsupported("waiting for an instance")) }
    }

    /// Thaws a paused instance; its address is the one it had.
    fn unpause(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send {
        let _ = id;
        async { Err(EngineError::unsupported("unpausing an instance")) }
    }

    /// Stops an idle instance and keeps it (memory freed), to be resumed later.
    fn stop(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send {
        let _ = id;
        async {
            Err(EngineError::unsupported(
                "stopping an instance and keeping it",
            ))
        }
    }

    /// Thaws a paused instance or starts a stopped one; where it listens now.
    fn resume(
        &self,
        id: &str,
        paused: bool,
    ) -> impl Future<Output = Result<SocketAddr, EngineError>> + Send {
        let _ = (id, paused);
        async { Err(EngineError::unsupported("resuming an instance")) }
    }

    /// Whether a running instance has passed the engine's own healthcheck already (Swarm keeps
    /// a task `starting` until it does), so status need not probe it; its address may not be
    /// reachable from where faaso runs.
    fn vouches_for_health(&self) -> bool {
        false
    }

    /// The output of every instance of `funko`, running or not (empty when it has none).
    fn logs(
        &self,
        funko: &str,
        options: LogOptions,
    ) -> impl Future<Output = Result<Vec<InstanceLog>, EngineError>> + Send;
}
