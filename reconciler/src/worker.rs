//! One funko's work: its steps in order, the first failure stopping the rest (so the old
//! instances, whose removal comes last, keep serving). What funkos share stays bounded: a
//! build waits for one of the build slots and ends at its timeout, while starts and readiness
//! waits hold no slot. A panic fails this funko and no other. Cancelling (its funko changed or
//! went, or faaso stops) ends the work where it is, a cut-short build's leftovers removed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, StepFailure, StepInfo};
use crate::desired::Prepared;
use crate::in_flight::{InFlight, Working};
use crate::listener::Listener;

/// One funko's planned steps and its valid spec, when it has one.
#[derive(Debug, Clone)]
pub struct FunkoWork<S> {
    /// The funko.
    pub funko: String,
    /// Its steps, in the order they run.
    pub steps: Vec<S>,
    /// Its spec and build context (absent for a funko whose folder is gone or invalid).
    pub prepared: Option<Prepared>,
}

impl<S> FunkoWork<S> {
    /// The content this work is for: a change to it makes the work stale.
    pub fn content(&self) -> Option<(&str, &str)> {
        self.prepared
            .as_ref()
            .map(|p| (p.image.as_str(), p.config_hash.as_str()))
    }
}

/// What every funko's work shares: the build slots and the record of what runs.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// One permit per build that may run at once.
    pub slots: Arc<Semaphore>,
    /// Which funkos are being worked on, and at which step.
    pub in_flight: InFlight,
}

impl Shared {
    /// `builds` builds at once (at least one).
    pub fn new(builds: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(builds.max(1))),
            in_flight: InFlight::default(),
        }
    }
}

/// The work ended because it was cancelled; it neither succeeded nor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cancelled;

/// Runs `work` until it ends or `cancel` fires; `working` (from [`InFlight::begin`], taken
/// when the work is handed out, so a status made right after already shows it) tells where
/// it is, and ends with it.
pub(crate) async fn run<B: Backend>(
    backend: &B,
    work: &FunkoWork<B::Step>,
    listener: &dyn Listener<B::Step>,
    shared: &Shared,
    cancel: &CancellationToken,
    working: Working,
) -> Result<Result<(), StepFailure>, Cancelled> {
    let steps = run_steps(backend, work, listener, shared, cancel, &working);
    match AssertUnwindSafe(steps).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!(funko = %work.funko, %message, "a bug stopped this funko's work; the others go on");
            Ok(Err(StepFailure {
                key: held_key(work),
                error: format!(
                    "faaso hit a bug while converging this funko ({message}); it is held until \
                     its files change (please report this)"
                ),
            }))
        }
    }
}

async fn run_steps<B: Backend>(
    backend: &B,
    work: &FunkoWork<B::Step>,
    listener: &dyn Listener<B::Step>,
    shared: &Shared,
    cancel: &CancellationToken,
    working: &Working,
) -> Result<Result<(), StepFailure>, Cancelled> {
    let prepared = work.prepared.as_ref();
    // Test builds only: a panic on cue, for the tests that a bug in one funko's work is
    // contained (release builds have no such hook).
    #[cfg(debug_assertions)]
    if std::env::var("FAASO_TEST_PANIC_FUNKO").is_ok_and(|name| name == work.funko) {
        panic!("forced by FAASO_TEST_PANIC_FUNKO for `{}`", work.funko);
    }
    for step in &work.steps {
        let (action, detail) = step.describe();
        listener.step_started(step);
        let result = if step.builds() {
            working.at("waiting for a build slot".to_owned());
            let slot = tokio::select! {
                slot = shared.slots.acquire() => slot,
                () = cancel.cancelled() => return Err(Cancelled),
            };
            working.at_build(format!("{action} {detail}"));
            let result = build(backend, step, prepared, listener, cancel).await;
            drop(slot);
            result?
        } else {
            working.at(format!("{action} {detail}"));
            tokio::select! {
                result = backend.execute(step, prepared, listener) => result,
                () = cancel.cancelled() => return Err(Cancelled),
            }
        };
        listener.step_finished(step, result.as_ref().err().map(|f| f.error.as_str()));
        match &result {
            Ok(()) => tracing::debug!(funko = step.funko(), ?step, "step done"),
            Err(failure) => {
                tracing::debug!(funko = step.funko(), ?step, error = %failure.error, "step failed")
            }
        }
        if result.is_err() {
            return Ok(result);
        }
    }
    Ok(Ok(()))
}

/// Runs a build step until it ends, times out or is cancelled; a build cut short has its
/// leftovers (a `RUN` still running) removed before this returns.
async fn build<B: Backend>(
    backend: &B,
    step: &B::Step,
    prepared: Option<&Prepared>,
    listener: &dyn Listener<B::Step>,
    cancel: &CancellationToken,
) -> Result<Result<(), StepFailure>, Cancelled> {
    let limit = build_timeout(prepared);
    let outcome = tokio::select! {
        result = tokio::time::timeout(limit, backend.execute(step, prepared, listener)) => {
            result.map_err(|_| ())
        }
        () = cancel.cancelled() => Err(()),
    };
    match outcome {
        Ok(result) => Ok(result),
        Err(()) => {
            if let Some(prepared) = prepared {
                backend.clean_up_build(prepared).await;
            }
            if cancel.is_cancelled() {
                return Err(Cancelled);
            }
            Ok(Err(StepFailure {
                key: prepared.map_or_else(String::new, |p| p.image.clone()),
                error: format!(
                    "the build took longer than {} and was stopped; if it needs longer, raise \
                     `build: {{timeout: …}}` in funko.yml",
                    humantime::format_duration(limit)
                ),
            }))
        }
    }
}

/// The longest `prepared`'s build may take (its funko.yml's `build.timeout`); without a spec
/// there is nothing to build, and the step fails at once.
fn build_timeout(prepared: Option<&Prepared>) -> Duration {
    prepared.map_or(Duration::MAX, |p| p.funko.spec.build_timeout())
}

/// The content a failure holds: the image when the work builds, else the config.
fn held_key<S: StepInfo>(work: &FunkoWork<S>) -> String {
    let builds = work.steps.iter().any(StepInfo::builds);
    work.prepared.as_ref().map_or_else(String::new, |p| {
        if builds {
            p.image.clone()
        } else {
            p.config_hash.clone()
        }
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}
