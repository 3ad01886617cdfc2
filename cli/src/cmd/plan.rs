//! `faaso plan`: what `reconcile` would do, touching nothing.

use std::process::ExitCode;

use clap::Args;
use faaso_reconciler::{Step, StepInfo};

use super::{FunkosDir, Global};
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
    let mut reconciler = global.reconciler(&args.funkos.dir).await?;
    // An autoscaled funko's count inside its bounds is the autoscaler's (runtime state), not
    // drift: the plan holds it to its bounds only.
    reconciler.follow_demand(faaso_reconciler::Demand::default());
    let (state, _, steps) = reconciler.plan().await?;
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
    Ok(if args.exit_code && !steps.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(steps: &[Step]) {
    if steps.is_empty() {
        println!("nothing to do: Docker matches the funkos folder");
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
