//! `faaso status`: each funko's desired and ready instances, image, and last error.

use std::process::ExitCode;

use clap::Args;

use super::{FunkosDir, Global};

/// Arguments of `faaso status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub funkos: FunkosDir,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the status table (or JSON).
pub async fn run(global: &Global, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let statuses = match crate::remote::select(global)? {
        Some(remote) => remote.board().await?.funkos,
        None => global.reconciler(&args.funkos.dir).await?.status().await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = statuses
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "{:width$}  {:>7}  {:>5}  {:>8}  {:30}  {:>5}  ERROR",
        "FUNKO", "DESIRED", "READY", "OUTDATED", "IMAGE", "AGE"
    );
    for s in &statuses {
        let desired = s.desired.map_or("-".to_owned(), |d| d.to_string());
        let image = s.image.as_deref().unwrap_or("-");
        let error = s
            .error
            .as_deref()
            .map(|e| e.lines().next().unwrap_or_default())
            .unwrap_or("");
        let age = s
            .image_created
            .map_or("-".to_owned(), |built| age(now.saturating_sub(built)));
        println!(
            "{:width$}  {desired:>7}  {:>5}  {:>8}  {image:30}  {age:>5}  {error}",
            s.name, s.ready, s.outdated
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An age the way `docker ps` says it, in its largest whole unit: `45s`, `12m`, `3h`, `9d`.
fn age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_in_their_largest_whole_unit() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60), "1m");
        assert_eq!(age(3599), "59m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(86400 * 3 + 5), "3d");
    }
}
