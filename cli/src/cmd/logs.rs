//! `faaso logs`: every instance's output, each line prefixed by its instance.

use std::process::ExitCode;

use clap::Args;
use faaso_reconciler::swarm::SwarmEngine;
use faaso_reconciler::{Backend, DockerEngine, LogOptions};
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
    let tail =
        match args.tail.as_str() {
            "all" => None,
            n => Some(n.parse().map_err(|_| {
                anyhow::anyhow!("--tail takes a number of lines or `all`, not `{n}`")
            })?),
        };
    let options = LogOptions {
        tail,
        follow: args.follow,
    };
    let logs = match global.backend {
        super::BackendKind::Docker => {
            let engine = DockerEngine::connect(global.namespace()).await?;
            engine.logs(&args.name, options).await?
        }
        super::BackendKind::Swarm => {
            let engine = SwarmEngine::connect(global.namespace(), global.registry.clone()).await?;
            engine.logs(&args.name, options).await?
        }
    };
    if logs.is_empty() {
        anyhow::bail!("funko `{}` has no instances", args.name);
    }
    let streams = logs.into_iter().map(|log| {
        let name = log.instance;
        log.output.map(move |chunk| (name.clone(), chunk))
    });
    let mut merged = futures_util::stream::select_all(streams);
    while let Some((name, chunk)) = merged.next().await {
        let Ok(chunk) = chunk else { continue };
        for line in String::from_utf8_lossy(&chunk).lines() {
            println!("{name} | {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
