//! `faaso up`, `down` and `scale`: change a funko's scale in its funko.yml (the folder stays the
//! one source of truth), then converge.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{FunkosDir, Global};

/// Arguments of `faaso up` and `faaso down`.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The funko.
    pub name: String,
    #[command(flatten)]
    pub funkos: FunkosDir,
}

/// Arguments of `faaso scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The funko.
    pub name: String,
    /// How many instances should run.
    pub scale: u32,
    #[command(flatten)]
    pub funkos: FunkosDir,
}

/// Sets the scale to `scale` (for `up`: at least 1) and runs a pass.
pub async fn run(
    global: &Global,
    name: &str,
    dir: &Path,
    scale: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let funko_dir = dir.join(name);
    let funko = faaso_schema::load_funko(&funko_dir).map_err(|p| anyhow::anyhow!("{p}"))?;
    let target = scale.unwrap_or(funko.spec.scale.max(1));
    let file = funko_dir.join(faaso_schema::SPEC_FILE);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let updated = with_scale(&text, target);
    // Check the edit before it lands: never leave a broken funko.yml behind.
    faaso_schema::parse_spec(&updated).map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
    let tmp = file.with_extension("yml.tmp");
    std::fs::write(&tmp, &updated)?;
    std::fs::rename(&tmp, &file)?;
    println!("{name}: scale {} → {target}", funko.spec.scale);
    super::reconcile::run(
        global,
        super::reconcile::ReconcileArgs {
            funkos: FunkosDir {
                dir: dir.to_owned(),
            },
            once: true,
            watch: false,
            retry: false,
            json: false,
        },
    )
    .await
}

/// `text` with its top-level `scale:` line set to `scale` (added after `name:` when absent),
/// keeping comments and everything else as written.
fn with_scale(text: &str, scale: u32) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = format!("scale: {scale}");
    match lines.iter().position(|l| l.starts_with("scale:")) {
        Some(i) => lines[i] = line,
        None => {
            let at = lines
                .iter()
                .position(|l| l.starts_with("name:"))
                .map_or(lines.len(), |i| i + 1);
            lines.insert(at, line);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::with_scale;

    #[test]
    fn scale_is_replaced_or_added_and_comments_stay() {
        assert_eq!(
            with_scale("# c\nname: a\nscale: 1 # one\n", 3),
            "# c\nname: a\nscale: 3\n"
        );
        assert_eq!(
            with_scale("name: a\nruntime: python\n", 0),
            "name: a\nscale: 0\nruntime: python\n"
        );
    }
}
