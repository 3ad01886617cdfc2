//! One module per subcommand, plus the flags they share.

pub mod build;
pub mod deploy;
pub mod export;
pub mod login;
pub mod logs;
pub mod new;
pub mod plan;
pub mod proxy;
pub mod purge;
pub mod reconcile;
pub mod runtimes;
pub mod scale;
pub mod secret;
pub mod server;
pub mod status;
pub mod validate;
pub mod version;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use faaso_reconciler::{BasePolicy, DockerEngine, Namespace, Reconciler};
use faaso_schema::{Funko, Problem};

pub use crate::backend::BackendKind;

/// Flags every command takes; each is also an environment variable.
#[derive(Debug, Args)]
pub struct Global {
    /// Which base images runtimes build on: `local` (made offline by scripts/base-images),
    /// `official` (pulled from a registry) or `auto` (local when the engine has it).
    #[arg(long, global = true, env = "FAASO_BASE_IMAGES", value_enum, default_value_t = BaseImages::Auto)]
    pub base_images: BaseImages,
    /// The Docker network instances join.
    #[arg(
        long,
        global = true,
        env = "FAASO_NETWORK",
        default_value = "faaso-net"
    )]
    pub network: String,
    /// Prefix of container and image names.
    #[arg(long, global = true, env = "FAASO_PREFIX", default_value = "faaso")]
    pub prefix: String,
    /// Namespace of the labels faaso puts on what it creates.
    #[arg(long, global = true, env = "FAASO_LABELS", default_value = "faaso")]
    pub labels: String,
    /// Where faaso keeps its state: secret values (`secrets/<funko>/<key>`) and the last errors.
    #[arg(long, global = true, env = "FAASO_STATE_DIR", default_value = ".faaso")]
    pub state_dir: PathBuf,
    /// How many builds run at once (each funko's starts, rollouts and readiness waits run on
    /// their own, holding no build slot).
    #[arg(long, global = true, env = "FAASO_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// The faaso server that build, status, logs, up, down, scale, purge, deploy, secret and
    /// version act on (default: the one `faaso login` saved).
    #[arg(long, global = true, env = "FAASO_SERVER")]
    pub server: Option<String>,
    /// Act on the local Docker engine even when a server is configured.
    #[arg(long, short = 'l', global = true)]
    pub local: bool,
    /// The engine local commands act on: one Docker engine, or a Swarm through its manager
    /// (`DOCKER_HOST`).
    #[arg(long, global = true, env = "FAASO_BACKEND", value_enum, default_value_t = BackendKind::Docker)]
    pub backend: BackendKind,
    /// The registry (`host:port`) that Swarm nodes pull funko images from.
    #[arg(long, global = true, env = "FAASO_REGISTRY")]
    pub registry: Option<String>,
}

impl Global {
    /// The names this invocation gives to what it creates.
    pub fn namespace(&self) -> Namespace {
        Namespace {
            network: self.network.clone(),
            prefix: self.prefix.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// The funkos folder argument of the commands that act on one.
#[derive(Debug, Args)]
pub struct FunkosDir {
    /// The funkos folder: each subfolder with a funko.yml is a funko.
    #[arg(default_value = "funkos", env = "FAASO_FUNKOS")]
    pub dir: PathBuf,
}

impl Global {
    /// The `--base-images` setting as the reconciler takes it.
    pub fn base_policy(&self) -> BasePolicy {
        match self.base_images {
            BaseImages::Auto => BasePolicy::Auto,
            BaseImages::Local => BasePolicy::Local,
            BaseImages::Official => BasePolicy::Official,
        }
    }

    /// A reconciler for `dir` on the Docker engine.
    pub async fn reconciler(&self, dir: &Path) -> anyhow::Result<Reconciler<DockerEngine>> {
        crate::backend::refuse_on_swarm(self)?;
        let engine = DockerEngine::connect(self.namespace()).await?;
        Ok(Reconciler::new(engine, crate::backend::settings(self, dir)))
    }
}

/// The `--base-images` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaseImages {
    /// Local when the engine has it, official otherwise.
    Auto,
    /// Always the images made offline by scripts/base-images.
    Local,
    /// Always the official registry images.
    Official,
}

/// Loads the funkos at `paths`: each path is a funko folder, or a folder of funko folders.
/// Returns the valid funkos and every problem found.
pub fn load_paths(paths: &[PathBuf]) -> (Vec<Funko>, Vec<Problem>) {
    let mut funkos = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if is_funko_dir(path) || !path.is_dir() {
            match faaso_schema::load_funko(path) {
                Ok(funko) => funkos.push(funko),
                Err(problem) => problems.push(problem),
            }
        } else {
            match faaso_schema::load_funkos_dir(path) {
                Ok((found, invalid)) => {
                    if found.is_empty() && invalid.is_empty() {
                        problems.push(Problem::whole(
                            path,
                            "holds no funko folders (a funko is a folder with funko.yml)",
                        ));
                    }
                    funkos.extend(found);
                    problems.extend(invalid);
                }
                Err(problem) => problems.push(problem),
            }
        }
    }
    (funkos, problems)
}

fn is_funko_dir(path: &Path) -> bool {
    path.join(faaso_schema::SPEC_FILE).is_file()
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
