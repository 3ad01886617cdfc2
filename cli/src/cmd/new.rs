//! `faaso new`: a fresh funko from a runtime's template.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use faaso_schema::{FunkoName, Problem};

use super::Global;
use crate::report;

/// Arguments of `faaso new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The funko's name (lowercase letters, digits and `-`).
    pub name: String,
    /// The runtime to use: a built-in name (see `faaso runtimes`) or a path to a runtime folder.
    #[arg(long, short)]
    pub runtime: String,
    /// The folder the funko is created in.
    #[arg(long, env = "FAASO_FUNKOS", default_value = "funkos")]
    pub dir: PathBuf,
}

/// Renders the runtime's template into `<dir>/<name>`.
pub fn run(_global: &Global, args: NewArgs) -> anyhow::Result<ExitCode> {
    let target = args.dir.join(&args.name);
    let result = FunkoName::new(&args.name)
        .map_err(|e| Problem::whole(&target, e.to_string()))
        .and_then(|name| {
            let runtime = faaso_schema::resolve_runtime(std::path::Path::new("."), &args.runtime)
                .map_err(|e| Problem::whole(&target, e))?;
            faaso_schema::scaffold(&runtime, &name, &target)
        });
    match result {
        Ok(()) => {
            println!(
                "created funko `{}` in {} (runtime {}); build it with `faaso build {}`",
                args.name,
                target.display(),
                args.runtime,
                target.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            report::problems(&[problem]);
            Ok(ExitCode::FAILURE)
        }
    }
}
