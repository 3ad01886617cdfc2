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
    /// How many instances should run; without it, the scale is printed.
    pub scale: Option<u32>,
    #[command(flatten)]
    pub funkos: FunkosDir,
}

/// A funko's count follows load: `up`, `down` and `scale <n>` would throw its bounds away, so
/// they refuse, with the reason schema gives.
fn refuse_autoscaled(name: &str, dir: &Path) -> anyhow::Result<()> {
    let Ok(funko) = faaso_schema::load_funko(&dir.join(name)) else {
        return Ok(());
    };
    match funko.refuses_fixed_scale() {
        Some(refusal) => anyhow::bail!("{refusal}"),
        None => Ok(()),
    }
}

/// Prints a funko's scale (`faaso scale <funko>`): on the server, or from its funko.yml.
pub async fn show(global: &Global, name: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    if crate::remote::select(global)?.is_none()
        && let Ok(funko) = faaso_schema::load_funko(&dir.join(name))
        && let Some(auto) = funko.spec.scale.auto()
    {
        println!(
            "{name}: autoscaled, min {} max {} target {} concurrent requests per instance (the count inside follows load; `faaso status {name}` shows it)",
            auto.min, auto.max, auto.target
        );
        return Ok(ExitCode::SUCCESS);
    }
    let scale = match crate::remote::select(global)? {
        Some(remote) => remote.desired(name).await?.ok_or_else(|| {
            anyhow::anyhow!("funko `{name}` is invalid on the server; see `faaso status {name}`")
        })?,
        None => faaso_schema::load_funko(&dir.join(name))
            .map_err(|p| anyhow::anyhow!("{p}"))?
            .spec
            .scale
            .min(),
    };
    println!("{name}: scale {scale}");
    Ok(ExitCode::SUCCESS)
}

/// Sets the scale to `scale` (for `up`: at least 1) and runs a pass.
pub async fn run(
    global: &Global,
    name: &str,
    dir: &Path,
    scale: Option<u32>,
) -> anyhow::Result<ExitCode> {
    if let Some(remote) = crate::remote::select(global)? {
        return on_server(&remote, name, scale).await;
    }
    refuse_autoscaled(name, dir)?;
    let funko_dir = dir.join(name);
    let current = faaso_schema::load_funko(&funko_dir)
        .map_err(|p| anyhow::anyhow!("{p}"))?
        .spec
        .scale
        .min();
    let target = scale.unwrap_or(current.max(1));
    faaso_schema::write_scale(&funko_dir, target).map_err(|p| anyhow::anyhow!("{p}"))?;
    println!("{name}: scale {current} → {target}");
    // Only this funko: other funkos that changed in the folder wait for their own command (or
    // `faaso reconcile`), as the user asked about this one.
    let converged = match global.backend {
        super::BackendKind::Docker => converge(global.reconciler(dir).await?, name).await?,
        super::BackendKind::Swarm => {
            converge(crate::backend::swarm_reconciler(global, dir).await?, name).await?
        }
    };
    Ok(if converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Converges only `name`: other funkos that changed in the folder wait for their own command.
async fn converge<B: faaso_reconciler::Backend>(
    mut reconciler: faaso_reconciler::Reconciler<B>,
    name: &str,
) -> anyhow::Result<bool> {
    reconciler.limit_to([name.to_owned()]);
    let report = reconciler
        .pass(&super::reconcile::TerminalListener::default())
        .await?;
    super::reconcile::print_summary(&report);
    Ok(report.converged())
}

/// Sets the scale on the server and follows it until the funko has converged.
pub(crate) async fn on_server(
    remote: &crate::remote::Remote,
    name: &str,
    scale: Option<u32>,
) -> anyhow::Result<ExitCode> {
    use crate::remote::progress::{Outcome, follow};
    let target = match scale {
        Some(scale) => scale,
        None => remote.desired(name).await?.unwrap_or(0).max(1),
    };
    let before = remote.board().await?.pass;
    let scaled = remote.scale(name, target).await?;
    println!("{name}: scale {} → {}", scaled.from, scaled.to);
    match follow(remote, name, before, std::time::Duration::from_secs(300)).await? {
        Outcome::Converged(_) => Ok(ExitCode::SUCCESS),
        Outcome::Failed(error) => {
            eprintln!("error: {name}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
