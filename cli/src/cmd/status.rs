//! `faaso status`: each funko's desired and ready instances, image, and last error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use faaso_reconciler::FunkoStatus;

use super::Global;

/// Arguments of `faaso status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Funko names (or funko folders) to show, and at most one funkos folder to read them from
    /// (default `funkos`, or FAASO_FUNKOS); none: every funko.
    pub targets: Vec<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the arguments of `faaso status` ask for.
#[derive(Debug, PartialEq, Eq)]
struct Selection {
    /// The funkos folder.
    dir: PathBuf,
    /// The funkos asked about; empty: all of them.
    names: Vec<String>,
}

/// Reads each argument as a funko folder (it holds a funko.yml: its name, its parent the
/// folder), a funkos folder (another existing folder), or else a funko name.
fn select(targets: &[String], default_dir: PathBuf) -> anyhow::Result<Selection> {
    let mut dir: Option<PathBuf> = None;
    let mut names = Vec::new();
    let mut folder = |path: &Path| -> anyhow::Result<()> {
        match &dir {
            Some(other) if other != path => anyhow::bail!(
                "`faaso status` reads one funkos folder, not both {} and {}",
                other.display(),
                path.display()
            ),
            _ => dir = Some(path.to_owned()),
        }
        Ok(())
    };
    for target in targets {
        let path = Path::new(target);
        if path.join(faaso_schema::SPEC_FILE).is_file() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            folder(parent.unwrap_or(Path::new(".")))?;
            names.extend(name);
        } else if path.is_dir() {
            folder(path)?;
        } else {
            names.push(target.clone());
        }
    }
    Ok(Selection {
        dir: dir.unwrap_or(default_dir),
        names,
    })
}

/// Prints the status table (or JSON); exit 1 when a funko asked about is unknown.
pub async fn run(global: &Global, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let default_dir =
        std::env::var_os("FAASO_FUNKOS").map_or_else(|| "funkos".into(), PathBuf::from);
    let selection = select(&args.targets, default_dir)?;
    let mut statuses = match crate::remote::select(global)? {
        Some(remote) => remote.board().await?.funkos,
        None if global.backend == super::BackendKind::Swarm => {
            let dir = &selection.dir;
            crate::backend::swarm_reconciler(global, dir)
                .await?
                .status()
                .await?
        }
        None => global.reconciler(&selection.dir).await?.status().await?,
    };
    let mut unknown = false;
    if !selection.names.is_empty() {
        statuses.retain(|s| selection.names.contains(&s.name));
        for name in &selection.names {
            if !statuses.iter().any(|s| &s.name == name) {
                eprintln!("error: there is no funko `{name}`");
                unknown = true;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print!("{}", table(&statuses, now()));
        for line in statuses.iter().filter_map(autoscaling) {
            println!("{line}");
        }
        for line in statuses.iter().filter_map(converging) {
            println!("{line}");
        }
    }
    Ok(if unknown {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A funko at work's line under the table: for how long, and at which step.
fn converging(s: &FunkoStatus) -> Option<String> {
    let at = s.converging.as_ref()?;
    let took = humantime::format_duration(std::time::Duration::from_secs(at.seconds));
    Some(format!(
        "{}: converging for {took}, at: {}",
        s.name, at.step
    ))
}

/// An autoscaled funko's line under the table: bounds, idle instances, last decision.
fn autoscaling(s: &FunkoStatus) -> Option<String> {
    let bounds = s.autoscaled?;
    let decision = s.last_decision.as_ref().map_or_else(
        || "no decision yet".to_owned(),
        |d| format!("last decision: {} ready wanted, {}", d.want, d.reason),
    );
    Some(format!(
        "{}: autoscaled {}-{} (target {} per instance); {} ready, {} paused, {} stopped; {decision}",
        s.name, bounds.min, bounds.max, bounds.target, s.ready, s.paused, s.stopped
    ))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The status table: every column as wide as its widest cell, header included.
fn table(statuses: &[FunkoStatus], now: u64) -> String {
    let header = [
        "FUNKO", "DESIRED", "READY", "OUTDATED", "IMAGE", "AGE", "ERROR",
    ];
    let mut rows = vec![header.map(str::to_owned)];
    for s in statuses {
        let error = s.error.as_deref().and_then(|e| e.lines().next());
        rows.push([
            s.name.clone(),
            s.desired.map_or("-".to_owned(), |d| d.to_string()),
            s.ready.to_string(),
            s.outdated.to_string(),
            s.image.clone().unwrap_or_else(|| "-".to_owned()),
            s.image_created
                .map_or("-".to_owned(), |built| age(now.saturating_sub(built))),
            error.unwrap_or_default().to_owned(),
        ]);
    }
    let mut widths = [0; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Counts and ages are right-aligned, like `docker ps`; the last column is not padded.
    let right = [false, true, true, true, false, true, false];
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let width = if i == row.len() - 1 { 0 } else { widths[i] };
            if i > 0 {
                line.push_str("  ");
            }
            if right[i] {
                line.push_str(&format!("{cell:>width$}"));
            } else {
                line.push_str(&format!("{cell:width$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
    use super::*;

    fn status(name: &str, image: Option<&str>) -> FunkoStatus {
        FunkoStatus {
            name: name.into(),
            desired: Some(1),
            ready: 1,
            outdated: 0,
            paused: 0,
            stopped: 0,
            autoscaled: None,
            last_decision: None,
            converging: None,
            image: image.map(str::to_owned),
            image_created: Some(100),
            error: None,
            config_hash: None,
        }
    }

    #[test]
    fn columns_line_up_whatever_the_image_name() {
        let long = "rt1234abcd5678ef0-a-rather-long-funko-name:0123456789abcdef0123456789abcdef";
        let statuses = [
            status("a-rather-long-funko-name", Some(long)),
            status("hi", None),
        ];
        let text = table(&statuses, 160);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // Each column starts where its header starts, on every line.
        for header in ["DESIRED", "READY", "OUTDATED", "IMAGE", "AGE"] {
            let at = lines[0].find(&format!(" {header}")).unwrap() + 1;
            for line in &lines[1..] {
                let before = line[..at].chars().last();
                assert_eq!(before, Some(' '), "`{header}` in\n{text}");
            }
        }
        let age_end = lines[0].find(" AGE").unwrap() + 4;
        for line in &lines[1..] {
            assert_eq!(&line[age_end - 2..age_end], "1m", "{text}");
        }
        assert!(lines[1].contains(long), "{text}");
    }

    #[test]
    fn arguments_are_funko_names_funko_folders_or_one_funkos_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let funkos = tmp.path().join("fs");
        std::fs::create_dir_all(funkos.join("hello")).unwrap();
        std::fs::write(funkos.join("hello/funko.yml"), "name: hello\n").unwrap();
        let arg = |p: &Path| p.to_str().unwrap().to_owned();
        let default = PathBuf::from("funkos");
        let names = ["hello".to_owned(), "other".to_owned()];
        assert_eq!(
            select(&names, default.clone()).unwrap(),
            Selection {
                dir: default.clone(),
                names: names.to_vec()
            }
        );
        let mixed = [arg(&funkos), "other".to_owned()];
        assert_eq!(
            select(&mixed, default.clone()).unwrap(),
            Selection {
                dir: funkos.clone(),
                names: vec!["other".into()]
            }
        );
        let folder = [arg(&funkos.join("hello"))];
        assert_eq!(
            select(&folder, default.clone()).unwrap(),
            Selection {
                dir: funkos.clone(),
                names: vec!["hello".into()]
            }
        );
        let two = [arg(&funkos), arg(tmp.path())];
        assert!(select(&two, default).is_err());
    }

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
