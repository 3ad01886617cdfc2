//! `faaso new`: a fresh funko from a runtime's template.

use std::path::{Path, PathBuf};
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
            faaso_schema::scaffold(&runtime, &name, &target)?;
            link_schema(&target)
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

/// Where the committed JSON Schema of funko.yml sits in a faaso checkout.
const SCHEMA_FILE: &str = "schema/funko.schema.json";

/// Puts a `# yaml-language-server: $schema=` line first in the new funko.yml, pointing at the
/// nearest `schema/funko.schema.json` above it (relative, so the checkout can move), so editors
/// validate it with no manual step. Outside a checkout there is no such file, and no line.
fn link_schema(funko_dir: &Path) -> Result<(), Problem> {
    let spec = funko_dir.join(faaso_schema::SPEC_FILE);
    let Some(schema) = schema_path(funko_dir) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&spec)
        .map_err(|e| Problem::whole(&spec, format!("cannot be read: {e}")))?;
    if text.starts_with("# yaml-language-server:") {
        return Ok(());
    }
    let text = format!("# yaml-language-server: $schema={schema}\n{text}");
    std::fs::write(&spec, text)
        .map_err(|e| Problem::whole(&spec, format!("cannot be written: {e}")))
}

/// The schema file's path relative to `funko_dir`, when a folder above it holds one.
fn schema_path(funko_dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(funko_dir).ok()?;
    dir.ancestors()
        .enumerate()
        .skip(1)
        .find(|(_, ancestor)| ancestor.join(SCHEMA_FILE).is_file())
        .map(|(up, _)| format!("{}{SCHEMA_FILE}", "../".repeat(up)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_line_points_at_the_nearest_schema_file_above() {
        let root = tempfile::tempdir().unwrap();
        let funko = root.path().join("funkos/hello");
        std::fs::create_dir_all(&funko).unwrap();
        assert_eq!(schema_path(&funko), None);
        std::fs::create_dir_all(root.path().join("schema")).unwrap();
        std::fs::write(root.path().join(SCHEMA_FILE), "{}").unwrap();
        assert_eq!(
            schema_path(&funko).as_deref(),
            Some("../../schema/funko.schema.json")
        );
    }
}
