//! `faaso plan`: what `reconcile` would do, touching nothing.

use std::process::ExitCode;

use clap::Args;
use faaso_reconciler::{Backend, Reconciler, StepInfo};

use super::{BackendKind, FunkosDir, Global};
use crate::report;

/// Arguments of `faaso plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub funkos: FunkosDir,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 2 when anything would change (a drift check for CI).
    #[arg(long)]
    pub exit_code: bool,
}

/// Prints the plan.
pub async fn run(global: &Global, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.funkos.dir;
    match global.backend {
        BackendKind::Docker => plan_on(global.reconciler(dir).await?, args, |_| None).await,
        BackendKind::Swarm => {
            let reconciler = crate::backend::swarm_reconciler(global, dir).await?;
            let engine = reconciler.backend().clone();
            plan_on(reconciler, args, move |p| engine.refusal(p)).await
        }
    }
}

/// Plans on any backend; `refusal` says why a funko cannot run there as its spec says.
async fn plan_on<B: Backend>(
    mut reconciler: Reconciler<B>,
    args: PlanArgs,
    refusal: impl Fn(&faaso_reconciler::Prepared) -> Option<String>,
) -> anyhow::Result<ExitCode> {
    // An autoscaled funko's count inside its bounds is the autoscaler's (runtime state), not
    // drift: the plan holds it to its bounds only.
    reconciler.follow_demand(faaso_reconciler::Demand::default());
    let (mut state, _, steps) = reconciler.plan().await?;
    // Refused when planning, never dropped silently: deploying it would fail the same way.
    let refused: Vec<String> = state.prepared.values().filter_map(&refusal).collect();
    state
        .warnings
        .extend(refused.iter().map(|r| format!("refused: {r}")));
    if args.json {
        let problems: Vec<_> = state.problems.values().collect();
        let out =
            serde_json::json!({ "steps": steps, "problems": problems, "warnings": state.warnings });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&steps);
        report::problems(&state.problems.values().cloned().collect::<Vec<_>>());
        for warning in &state.warnings {
            eprintln!("warning: {warning}");
        }
    }
    Ok(
        if args.exit_code && (!steps.is_empty() || !refused.is_empty()) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn print_table(steps: &[impl StepInfo]) {
    if steps.is_empty() {
        println!("nothing to do: the engine matches the funkos folder");
        return;
    }
    let rows: Vec<(String, &str, String)> = steps.iter().map(describe).collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
    println!("{:width$}  {:8}  DETAIL", "FUNKO", "ACTION");
    for (funko, action, detail) in rows {
        println!("{funko:width$}  {action:8}  {detail}");
    }
    println!(
        "{} step{}",
        steps.len(),
        if steps.len() == 1 { "" } else { "s" }
    );
}

/// One table row: funko, action, detail.
pub fn describe(step: &impl StepInfo) -> (String, &'static str, String) {
    let (action, detail) = step.describe();
    (step.funko().to_owned(), action, detail)
}
