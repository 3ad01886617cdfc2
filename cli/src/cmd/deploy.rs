//! `faaso deploy <funko dir>`: check a funko here, send it to the server as a gzipped tar, and
//! follow the server until it serves the new version (or says why not).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use faaso_schema::{BaseChoice, BuildContext};

use super::Global;
use crate::remote::{self, progress::Outcome};

/// Arguments of `faaso deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The funko folder (holding funko.yml).
    pub dir: PathBuf,
    /// How long to wait for the server to build and roll out the funko.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Return once the server has accepted the upload, without following the rollout.
    #[arg(long)]
    pub no_wait: bool,
}

/// Uploads the funko and follows its rollout: exit 0 once converged, 1 on an error.
pub async fn run(global: &Global, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let funko = faaso_schema::load_funko(&args.dir).map_err(|p| anyhow!("{p}"))?;
    // The same checks a build makes (runtime known, Dockerfile renders, no links), here first.
    BuildContext::assemble(&funko, BaseChoice::Local).map_err(|p| anyhow!("{p}"))?;
    let name = funko.spec.name.to_string();
    let remote = remote::select(global)?.ok_or_else(|| {
        anyhow!(
            "no faaso server to deploy to: run `faaso login <url>` or pass --server (a local faaso serves whatever is in its funkos folder)"
        )
    })?;
    let (archive, files) = pack(&args.dir)?;
    eprintln!(
        "{name}: uploading {files} files ({}) to {}",
        size(archive.len()),
        remote.server()
    );
    let before = remote.board().await?.pass;
    remote.deploy(&name, archive).await?;
    if args.no_wait {
        println!("{name}: accepted by {}", remote.server());
        return Ok(ExitCode::SUCCESS);
    }
    match remote::progress::follow(&remote, &name, before, args.timeout).await? {
        Outcome::Converged(_) => {
            if remote.about().await.is_ok_and(|a| a.backend == "swarm") {
                println!("{name}: serving at /funko/{name}/ on port 8888 of every Swarm node");
            } else {
                println!("{name}: serving at {}/funko/{name}/", remote.server());
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failed(error) => {
            eprintln!("error: {name}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The funko folder as a gzipped tar, entries relative to it: every regular file that a build
/// would see (`.gitignore` and `.dockerignore` honoured, `.git/` left out) plus funko.yml.
/// Returns the archive and its number of files.
pub fn pack(dir: &Path) -> anyhow::Result<(Vec<u8>, usize)> {
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let mut files = 0;
    for file in faaso_schema::funko_files(dir).map_err(|problem| anyhow!("{problem}"))? {
        let bytes = std::fs::read(&file.path)
            .with_context(|| format!("cannot read {}", file.path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        tar.append_data(&mut header, &file.rel, bytes.as_slice())
            .with_context(|| format!("cannot pack {}", file.path.display()))?;
        files += 1;
    }
    let mut gzip = tar.into_inner()?;
    gzip.flush()?;
    Ok((gzip.finish()?, files))
}

fn size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_what_a_build_sees_relative_to_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("funko.yml"), "name: hello\nruntime: python\n").unwrap();
        std::fs::write(root.join("handler.py"), "x").unwrap();
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("build/out"), "y").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "z").unwrap();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("lib/util.py"), "u").unwrap();
        let (archive, files) = pack(root).unwrap();
        let mut names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]))
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".gitignore", "funko.yml", "handler.py", "lib/util.py"]
        );
        assert_eq!(files, 4);
    }
}
