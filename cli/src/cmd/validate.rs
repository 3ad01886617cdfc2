//! `faaso validate`: every problem in the given funkos, not just the first.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use faaso_schema::{BaseChoice, BuildContext};

use super::{Global, load_paths};
use crate::report;

/// Arguments of `faaso validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Funko folders, or folders of funkos.
    #[arg(default_value = "funkos")]
    pub paths: Vec<PathBuf>,
}

/// Parses each funko.yml and renders each build context (which checks the runtime and its
/// template), then reports every problem.
pub fn run(_global: &Global, args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (funkos, mut problems) = load_paths(&args.paths);
    let mut valid = 0;
    for funko in &funkos {
        match BuildContext::assemble(funko, BaseChoice::Local) {
            Ok(_) => valid += 1,
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        println!("{valid} funko{} valid", if valid == 1 { "" } else { "s" });
        Ok(ExitCode::SUCCESS)
    } else {
        report::problems(&problems);
        Ok(ExitCode::FAILURE)
    }
}
