//! `faaso reconcile`: make Docker match the funkos folder, once or for as long as it runs.

use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use faaso_reconciler::{
    Backend, Listener, PassReport, Reconciler, Started, StepInfo, Triggers, WatchTiming,
};
use tokio_util::sync::CancellationToken;

use super::plan::describe;
use super::{BackendKind, FunkosDir, Global};
use crate::report::Progress;

/// Arguments of `faaso reconcile`.
#[derive(Debug, Args)]
#[group(id = "mode", required = true, multiple = false, args = ["once", "watch"])]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub funkos: FunkosDir,
    /// Converge, then exit: 0 when every funko is at its desired scale and ready, 1 otherwise.
    #[arg(long)]
    pub once: bool,
    /// Keep converging on file changes, Docker events and a periodic resync, until stopped.
    #[arg(long)]
    pub watch: bool,
    /// Try again content that failed before (otherwise it waits for a change).
    #[arg(long)]
    pub retry: bool,
    /// Print the outcome as JSON (with --once).
    #[arg(long)]
    pub json: bool,
}

/// Runs one pass, or watches.
pub async fn run(global: &Global, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.funkos.dir;
    match global.backend {
        BackendKind::Docker => reconcile_on(global.reconciler(dir).await?, args).await,
        BackendKind::Swarm => {
            reconcile_on(crate::backend::swarm_reconciler(global, dir).await?, args).await
        }
    }
}

async fn reconcile_on<B: Backend + Clone + 'static>(
    mut reconciler: Reconciler<B>,
    args: ReconcileArgs,
) -> anyhow::Result<ExitCode> {
    if args.retry {
        reconciler.retry_failed();
    }
    let listener = TerminalListener::default();
    if args.watch {
        let listener = std::sync::Arc::new(listener);
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            super::shutdown_signal().await;
            tracing::info!("stopping: the running containers stay up");
            on_signal.cancel();
        });
        faaso_reconciler::watch(
            &mut reconciler,
            listener,
            WatchTiming::default(),
            Triggers::new(),
            stop,
        )
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = reconciler.pass(&listener).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(if report.converged() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints each funko's outcome (and the pass's warnings) to standard error.
pub(crate) fn print_summary<S>(report: &PassReport<S>) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for funko in &report.funkos {
        let desired = funko.desired.map_or("-".to_owned(), |d| d.to_string());
        let state = if funko.converged() { "ok" } else { "NOT READY" };
        eprint!("{}: {state}, {}/{desired} ready", funko.name, funko.ready);
        if funko.outdated > 0 {
            eprint!(", {} outdated", funko.outdated);
        }
        match &funko.error {
            Some(error) => eprintln!("\n  {}", error.replace('\n', "\n  ")),
            None => eprintln!(),
        }
    }
}

/// The first line of a message (a build error can run to pages; the summary has all of it).
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// Shows build output as it happens and logs each step as one line.
#[derive(Default)]
pub(crate) struct TerminalListener {
    builds: Mutex<std::collections::HashMap<String, Progress>>,
}

impl<S: StepInfo> Listener<S> for TerminalListener {
    fn build_output(&self, funko: &str, line: &str) {
        let mut builds = self.builds.lock().unwrap_or_else(|e| e.into_inner());
        builds
            .entry(funko.to_owned())
            .or_insert_with(|| Progress::start(funko))
            .line(line);
    }

    fn step_finished(&self, step: &S, error: Option<&str>) {
        if step.builds() {
            let progress = self
                .builds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(step.funko());
            if let Some(progress) = progress {
                progress.finish(if error.is_some() {
                    "build failed"
                } else {
                    "built"
                });
            }
        }
        let (funko, action, detail) = describe(step);
        match error {
            None => tracing::info!(%funko, action, %detail, "done"),
            Some(error) => tracing::warn!(%funko, action, %detail, %error, "failed"),
        }
    }

    fn instance_ready(&self, funko: &str, instance: &Started) {
        tracing::info!(%funko, instance = %instance.name, addr = %instance.addr, "instance ready");
    }

    // Each funko is named as its work ends, so a slow one stands out while the rest are done.
    fn funko_finished(&self, funko: &str, error: Option<&str>) {
        match error {
            None => eprintln!("{funko}: done"),
            Some(error) => eprintln!("{funko}: failed: {}", first_line(error)),
        }
    }
}
