//! `faaso version`: this client's version and, with a server configured, the server's; a warning
//! when they differ (the admin API may not be what this client expects).

use std::process::ExitCode;

use super::Global;

/// This binary's version.
const CLIENT: &str = env!("CARGO_PKG_VERSION");

/// Prints the versions; exit 1 when the server cannot be asked.
pub async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    println!("client: faaso {CLIENT}");
    let Some(remote) = crate::remote::select(global)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let server = remote.version().await?;
    println!("server: faaso {server} at {}", remote.server());
    if server != CLIENT {
        eprintln!(
            "warning: the server runs faaso {server} and this client is {CLIENT}; use the same version on both"
        );
    }
    Ok(ExitCode::SUCCESS)
}
