//! `faaso up`, `down` and `scale`: change a funko's scale in its funko.yml (the folder stays the
//! one source of truth), then converge.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{FunkosDir, Global};

/// Arguments of `faaso up` and `faaso down`.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The funko.
    pub name: String,
    #[command(flatten)]
    pub funkos: FunkosDir,
}

/// Arguments of `faaso scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The funko.
    pub name: String,
    /// How many instances should run.
    pub scale: u32,
    #[command(flatten)]
    pub funkos: FunkosDir,
}

/// Sets the scale to `scale` (for `up`: at least 1) and runs a pass.
pub async fn run(
    global: &Global,
    name: &str,
    dir: &Path,
    scale: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let funko_dir = dir.join(name);
    let current = faaso_schema::load_funko(&funko_dir)
        .map_err(|p| anyhow::anyhow!("{p}"))?
        .spec
        .scale;
    let target = scale.unwrap_or(current.max(1));
    faaso_schema::write_scale(&funko_dir, target).map_err(|p| anyhow::anyhow!("{p}"))?;
    println!("{name}: scale {current} → {target}");
    super::reconcile::run(
        global,
        super::reconcile::ReconcileArgs {
            funkos: FunkosDir {
                dir: dir.to_owned(),
            },
            once: true,
            watch: false,
            retry: false,
            json: false,
        },
    )
    .await
}
