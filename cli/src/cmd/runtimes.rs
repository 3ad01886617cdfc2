//! `faaso runtimes`: the built-in runtimes and what each is for.

use std::process::ExitCode;

use faaso_schema::Runtime;

/// Prints each built-in runtime with its description.
pub fn run() -> anyhow::Result<ExitCode> {
    let names = Runtime::builtin_names();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for name in names {
        let runtime = Runtime::builtin(&name).map_err(anyhow::Error::msg)?;
        println!("{name:width$}  {}", runtime.meta.description);
    }
    Ok(ExitCode::SUCCESS)
}
