//! Staging an upload: unpacked into a hidden folder beside the funkos, validated as the
//! reconciler will read it, then swapped in whole with one `renameat2(RENAME_EXCHANGE)`.

use std::path::{Component, Path};

use faaso_schema::{BaseChoice, BuildContext, FunkoName, Problem};

use super::archive::{Unpacked, make_dir, unpack_checked};
use super::error::{UploadError, UploadLimits};

/// The outcome of [`deploy`].
pub(super) struct Deployed {
    /// What the archive held.
    pub(super) unpacked: Unpacked,
    /// Whether an older version was replaced.
    pub(super) replaced: bool,
}

/// Checks, stages, validates and swaps in one upload. Blocking.
pub(super) fn deploy(
    funkos_dir: &Path,
    name: &FunkoName,
    compressed: &[u8],
    limits: &UploadLimits,
) -> Result<Deployed, UploadError> {
    let (staging, unpacked) = stage(funkos_dir, name, compressed, limits)?;
    let staged = staging.path().join(name.as_str());
    let replaced = swap_in(&staged, &funkos_dir.join(name.as_str()), name)?;
    // The staging folder now holds the old version (or nothing); both go.
    if let Err(e) = staging.close() {
        tracing::warn!(funko = %name, error = %e, "Cannot remove the replaced version of an uploaded funko.");
    }
    Ok(Deployed { unpacked, replaced })
}

/// Checks an upload and unpacks it into a hidden staging folder in `parent`, as
/// `<staging>/<name>`, validated like the reconciler will. Blocking.
pub(crate) fn stage(
    parent: &Path,
    name: &FunkoName,
    compressed: &[u8],
    limits: &UploadLimits,
) -> Result<(tempfile::TempDir, Unpacked), UploadError> {
    if compressed.is_empty() {
        return Err(UploadError::Archive("the body is empty".into()));
    }
    if !compressed.starts_with(&[0x1f, 0x8b]) {
        return Err(UploadError::Archive(
            "it does not start like gzip data".into(),
        ));
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!(".upload-{name}-"))
        .tempdir_in(parent)
        .map_err(UploadError::io(format!(
            "make a staging folder in {}",
            parent.display()
        )))?;
    let staged = staging.path().join(name.as_str());
    make_dir(&staged).map_err(UploadError::io("make the staging folder"))?;
    let unpacked = unpack_checked(compressed, limits, &staged)?;
    hoist_single_folder(&staged, name)?;
    validate(&staged)?;
    Ok((staging, unpacked))
}

/// An archive of a single folder named like the funko (`tar czf - <name>`) is that folder.
fn hoist_single_folder(staged: &Path, name: &FunkoName) -> Result<(), UploadError> {
    if staged.join(faaso_schema::SPEC_FILE).exists() {
        return Ok(());
    }
    let entries: Vec<_> = std::fs::read_dir(staged)
        .and_then(|d| d.collect::<Result<_, _>>())
        .map_err(UploadError::io("read the staging folder"))?;
    let [only] = entries.as_slice() else {
        return Ok(());
    };
    if only.file_name() != name.as_str() || !only.file_type().is_ok_and(|t| t.is_dir()) {
        return Ok(());
    }
    let parent = staged.parent().unwrap_or(staged);
    // Funko names never start with a dot, so this cannot be taken.
    let aside = parent.join(".hoisted");
    let io = UploadError::io("unwrap the funko's top-level folder");
    std::fs::rename(only.path(), &aside)
        .and_then(|()| std::fs::remove_dir(staged))
        .and_then(|()| std::fs::rename(&aside, staged))
        .map_err(io)
}

/// Validates the staged funko like the reconciler will: funko.yml, the folder-name rule, the
/// runtime and the rendered Dockerfile.
fn validate(staged: &Path) -> Result<(), UploadError> {
    let funko = faaso_schema::load_funko(staged).map_err(|p| funko_error(staged, p))?;
    if let Some(runtime) = &funko.spec.runtime {
        let is_path = runtime.contains('/') || runtime.starts_with('.');
        let escapes = Path::new(runtime)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if is_path && escapes {
            let problem = funko.field_problem(
                "runtime",
                format!(
                    "`{runtime}` points outside the funko; an uploaded funko names a built-in runtime (see `faaso runtimes`) or a runtime folder inside itself"
                ),
            );
            return Err(funko_error(staged, problem));
        }
    }
    BuildContext::assemble(&funko, BaseChoice::Local).map_err(|p| funko_error(staged, p))?;
    Ok(())
}

/// A problem with the staged funko, told relative to the uploaded folder.
fn funko_error(staged: &Path, mut problem: Problem) -> UploadError {
    let prefix = format!("{}/", staged.display());
    problem.message = problem
        .message
        .replace(&prefix, "")
        .replace(&staged.display().to_string(), ".");
    match problem.file.strip_prefix(staged) {
        Ok(rel) if rel.as_os_str().is_empty() => {
            UploadError::Funko(format!("the uploaded folder {}", problem.message))
        }
        Ok(rel) => {
            problem.file = rel.to_owned();
            UploadError::Funko(problem.to_string())
        }
        Err(_) => UploadError::Funko(problem.to_string()),
    }
}

/// Puts `staged` at `target` in one step: exchanges the two folders when `target` exists, else
/// renames without replacing. Returns whether an old version was replaced; it is then at
/// `staged`.
fn swap_in(staged: &Path, target: &Path, name: &FunkoName) -> Result<bool, UploadError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    let failed = |e: Errno| {
        let reason = if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP {
            format!(
                "the filesystem of the funkos folder cannot exchange folders atomically ({e}); keep it on a local filesystem such as ext4, xfs, btrfs or tmpfs"
            )
        } else {
            e.to_string()
        };
        UploadError::Swap {
            funko: name.to_string(),
            reason,
        }
    };
    // Another upload of the same funko may appear or vanish between the two calls; try again.
    for _ in 0..8 {
        match renameat_with(CWD, staged, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(true),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(failed(e)),
        }
        match renameat_with(CWD, staged, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(false),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Err(UploadError::Swap {
        funko: name.to_string(),
        reason: "other uploads of it keep racing this one; try again".into(),
    })
}
