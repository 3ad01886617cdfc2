//! Which engine the local commands act on: one Docker engine (`docker`, the default) or a
//! Docker Swarm through its manager (`swarm`), chosen by `--backend` or `FAASO_BACKEND`.

use std::path::Path;

use clap::ValueEnum;
use faaso_reconciler::swarm::SwarmEngine;
use faaso_reconciler::{Reconciler, Settings};

use crate::cmd::Global;

/// The `--backend` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The Docker engine of `DOCKER_HOST` (or the local socket): faaso runs the containers.
    Docker,
    /// The Swarm whose manager is `DOCKER_HOST`: one service per funko, Swarm runs the tasks.
    Swarm,
}

/// Fails with a clear message when a command that needs one Docker engine meets a Swarm.
pub fn refuse_on_swarm(global: &Global) -> anyhow::Result<()> {
    if global.backend == BackendKind::Swarm {
        anyhow::bail!(
            "this command needs one Docker engine and does not work with --backend swarm \
             (FAASO_BACKEND=swarm) yet"
        );
    }
    Ok(())
}

/// A reconciler for `dir` on the Swarm whose manager `DOCKER_HOST` names.
pub async fn swarm_reconciler(
    global: &Global,
    dir: &Path,
) -> anyhow::Result<Reconciler<SwarmEngine>> {
    let engine = SwarmEngine::connect(global.namespace(), global.registry.clone()).await?;
    Ok(Reconciler::new(engine, settings(global, dir)))
}

/// The reconciler's settings from the global flags.
pub fn settings(global: &Global, dir: &Path) -> Settings {
    Settings {
        funkos_dir: dir.to_owned(),
        namespace: global.namespace(),
        base_policy: global.base_policy(),
        secrets_dir: global.state_dir.join("secrets"),
        state_dir: Some(global.state_dir.clone()),
        concurrency: global.concurrency,
    }
}
