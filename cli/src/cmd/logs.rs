//! `faaso logs`: every instance's output, each line prefixed by its instance.

use std::collections::HashMap;
use std::process::ExitCode;

use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use clap::Args;
use futures_util::StreamExt;

use super::Global;

/// Arguments of `faaso logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The funko.
    pub name: String,
    /// Keep printing new output.
    #[arg(long, short)]
    pub follow: bool,
    /// Lines of past output per instance.
    #[arg(long, default_value = "100")]
    pub tail: String,
}

/// Streams the logs of all the funko's instances, interleaved as they come.
pub async fn run(global: &Global, args: LogsArgs) -> anyhow::Result<ExitCode> {
    if let Some(remote) = crate::remote::select(global)? {
        remote
            .logs(&args.name, args.follow, &args.tail, &mut std::io::stdout())
            .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let docker = faaso_reconciler::connect().await?;
    let ns = global.namespace();
    let filters = HashMap::from([(
        "label",
        vec![
            ns.managed_filter(),
            format!("{}={}", ns.label("funko"), args.name),
        ],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(options)).await?;
    if containers.is_empty() {
        anyhow::bail!("funko `{}` has no instances", args.name);
    }
    let streams = containers.into_iter().map(|c| {
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(args.follow)
            .tail(&args.tail)
            .build();
        docker
            .logs(c.id.as_deref().unwrap_or_default(), Some(options))
            .map(move |chunk| (name.clone(), chunk))
    });
    let mut merged = futures_util::stream::select_all(streams.map(Box::pin));
    while let Some((name, chunk)) = merged.next().await {
        let Ok(chunk) = chunk else { continue };
        for line in String::from_utf8_lossy(&chunk.into_bytes()).lines() {
            println!("{name} | {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
