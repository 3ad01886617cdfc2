//! `faaso export`: the build context as a plain folder, so faaso never locks anyone in.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use faaso_schema::{BuildContext, Problem};

use super::Global;
use crate::report;

/// Arguments of `faaso export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The funko folder.
    pub funko: PathBuf,
    /// Where to write the context; must not exist yet, or be empty.
    pub out: PathBuf,
}

/// Writes the funko's complete build context to `out`.
pub fn run(global: &Global, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let result = faaso_schema::load_funko(&args.funko).and_then(|funko| {
        let not_empty = std::fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_some());
        if not_empty {
            return Err(Problem::whole(
                &args.out,
                "exists and is not empty; choose an empty folder",
            ));
        }
        let base = super::build::base_choice_offline(global.base_images);
        let context = BuildContext::assemble(&funko, base)?;
        context.export(&args.out)?;
        Ok(context)
    });
    match result {
        Ok(context) => {
            println!(
                "wrote {} files to {}; build with `docker build {}` (content hash {})",
                context.files.len(),
                args.out.display(),
                args.out.display(),
                context.content_hash()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            report::problems(&[problem]);
            Ok(ExitCode::FAILURE)
        }
    }
}
