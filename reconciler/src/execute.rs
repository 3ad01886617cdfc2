//! Do it: running the container planner's steps on an engine of numbered containers (one
//! Docker engine, or the twin). A replacement starts the new instance, waits until it is
//! ready, tells the listener, and only then drains and removes the old one.
//!
//! `Containers` is the lower half of a [`Backend`](crate::Backend) that runs containers itself:
//! a backend whose engine owns its instances (Swarm services) implements `Backend` directly
//! and never this.

use std::future::Future;
use std::net::SocketAddr;

use faaso_schema::Healthcheck;

use crate::backend::{EngineError, Started, StepFailure, StepInfo};
use crate::desired::Prepared;
use crate::listener::Listener;
use crate::plan::{InstanceRef, RemoveReason, Step};

/// An engine that creates, starts and removes numbered containers for faaso.
pub trait Containers: Send + Sync {
    /// Creates the network instances join, when it is missing.
    fn ensure_network(&self) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Builds the funko's image; `output` receives each line of build output.
    fn build(
        &self,
        prepared: &Prepared,
        output: &(dyn Fn(&str) + Send + Sync),
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Creates and starts instance `number` of the funko.
    fn start(
        &self,
        prepared: &Prepared,
        number: u32,
    ) -> impl Future<Output = Result<Started, EngineError>> + Send;
    /// Waits until the instance answers its healthcheck, or says why it never did.
    fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Freezes a running container (memory and address kept).
    fn pause(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Stops a container and keeps it (memory freed).
    fn stop(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Thaws a paused container or starts a stopped one; where it listens now.
    fn resume(
        &self,
        id: &str,
        paused: bool,
    ) -> impl Future<Output = Result<SocketAddr, EngineError>> + Send;
    /// Stops (SIGTERM, grace period, SIGKILL) and removes a container; a missing one is fine.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Removes a container seen stopped, unless it runs again by now (restarted meanwhile);
    /// whether it is gone.
    fn remove_stopped(&self, id: &str) -> impl Future<Output = Result<bool, EngineError>> + Send;
}

/// Readies what a pass's steps share: the network, when they start something.
pub async fn prepare<C: Containers>(engine: &C, steps: &[Step]) -> Result<(), EngineError> {
    if steps
        .iter()
        .any(|s| matches!(s, Step::Start { .. } | Step::Replace { .. }))
    {
        engine.ensure_network().await?;
    }
    Ok(())
}

/// Runs one step of the container planner.
pub async fn execute<C: Containers>(
    engine: &C,
    step: &Step,
    prepared: Option<&Prepared>,
    listener: &dyn Listener<Step>,
) -> Result<(), StepFailure> {
    let funko = step.funko();
    let need = || {
        prepared.ok_or_else(|| StepFailure {
            key: String::new(),
            error: format!("funko `{funko}` has no valid spec"),
        })
    };
    match step {
        Step::Build { image, .. } => {
            let output = |line: &str| listener.build_output(funko, line);
            engine
                .build(need()?, &output)
                .await
                .map_err(|e| StepFailure {
                    key: image.clone(),
                    error: e.to_string(),
                })
        }
        Step::Start { number, .. } => start_ready(engine, need()?, *number, listener)
            .await
            .map(|_| ()),
        Step::Replace { old, .. } => {
            start_ready(engine, need()?, old.number, listener).await?;
            listener.instance_leaving(funko, &old.id);
            remove(engine, &old.id).await
        }
        Step::Resume {
            instance, paused, ..
        } => resume_ready(engine, need()?, instance, *paused, listener).await,
        // Seen stopped, but a pass's view can be stale: an instance restarted since (from the
        // admin API) runs again and stays, routed as it is.
        Step::Remove {
            instance,
            reason: RemoveReason::Stopped,
            ..
        } => {
            if engine
                .remove_stopped(&instance.id)
                .await
                .map_err(step_failure)?
            {
                listener.instance_leaving(funko, &instance.id);
            }
            Ok(())
        }
        Step::Remove { instance, .. } => {
            listener.instance_leaving(funko, &instance.id);
            remove(engine, &instance.id).await
        }
    }
}

/// Wakes a kept instance and waits until it is ready; one that never is gets removed (a new
/// one takes its place on the next pass, so the failure holds no content).
async fn resume_ready<C: Containers>(
    engine: &C,
    prepared: &Prepared,
    instance: &InstanceRef,
    paused: bool,
    listener: &dyn Listener<Step>,
) -> Result<(), StepFailure> {
    let failure = |error: EngineError| StepFailure {
        key: String::new(),
        error: error.to_string(),
    };
    let spec = &prepared.funko.spec;
    let addr = engine.resume(&instance.id, paused).await.map_err(failure)?;
    let started = Started {
        id: instance.id.clone(),
        name: instance.name.clone(),
        addr,
        request_timeout: spec.timeout.0,
        cors: spec.cors.clone(),
    };
    if let Err(error) = engine.wait_ready(&started, &spec.healthcheck).await {
        let _ = engine.remove(&started.id).await;
        return Err(failure(error));
    }
    listener.instance_ready(spec.name.as_str(), &started);
    Ok(())
}

/// Starts an instance and waits until it is ready; one that never is gets removed again.
async fn start_ready<C: Containers>(
    engine: &C,
    prepared: &Prepared,
    number: u32,
    listener: &dyn Listener<Step>,
) -> Result<Started, StepFailure> {
    let failure = |error: EngineError| StepFailure {
        key: prepared.config_hash.clone(),
        error: error.to_string(),
    };
    let started = engine.start(prepared, number).await.map_err(failure)?;
    if let Err(error) = engine
        .wait_ready(&started, &prepared.funko.spec.healthcheck)
        .await
    {
        let _ = engine.remove(&started.id).await;
        return Err(failure(error));
    }
    listener.instance_ready(prepared.funko.spec.name.as_str(), &started);
    Ok(started)
}

async fn remove<C: Containers>(engine: &C, id: &str) -> Result<(), StepFailure> {
    engine.remove(id).await.map_err(step_failure)
}

fn step_failure(e: EngineError) -> StepFailure {
    StepFailure {
        key: String::new(),
        error: e.to_string(),
    }
}
