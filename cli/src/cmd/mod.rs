//! One module per subcommand, plus the flags they share.

pub mod build;
pub mod export;
pub mod new;
pub mod runtimes;
pub mod validate;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use faaso_reconciler::Namespace;
use faaso_schema::{Funko, Problem};

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
