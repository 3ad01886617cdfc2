//! `faaso status`: each funko's desired and ready instances, image, and last error.

use std::process::ExitCode;

use clap::Args;

use super::{FunkosDir, Global};

/// Arguments of `faaso status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub funkos: FunkosDir,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the status table (or JSON).
pub async fn run(global: &Global, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let statuses = match crate::remote::select(global)? {
        Some(remote) => remote.board().await?.funkos,
        None => global.reconciler(&args.funkos.dir).await?.status().await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = statuses
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:width$}  {:>7}  {:>5}  {:>8}  {:30}  ERROR",
        "FUNKO", "DESIRED", "READY", "OUTDATED", "IMAGE"
    );
    for s in &statuses {
        let desired = s.desired.map_or("-".to_owned(), |d| d.to_string());
        let image = s.image.as_deref().unwrap_or("-");
        let error = s
            .error
            .as_deref()
            .map(|e| e.lines().next().unwrap_or_default())
            .unwrap_or("");
        println!(
            "{:width$}  {desired:>7}  {:>5}  {:>8}  {image:30}  {error}",
            s.name, s.ready, s.outdated
        );
    }
    Ok(ExitCode::SUCCESS)
}
