//! The files of a funko folder, as a build sees them: the one walk that both the build context
//! (and so the content hash) and an upload use, so that the two never disagree on what a funko
//! holds.

use std::path::{Path, PathBuf};

use crate::problem::Problem;
use crate::runtime;

/// One regular file of a funko folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunkoFile {
    /// Its path inside the folder, `/`-separated.
    pub rel: String,
    /// Where it is on disk.
    pub path: PathBuf,
    /// 0755 for an executable, 0644 otherwise: only the executable bit survives into an image.
    pub mode: u32,
}

/// Every regular file under the funko folder `dir`, in path order, funko.yml included:
/// `.gitignore` and `.dockerignore` honoured, `.git/` left out. A link, or anything but a regular
/// file or a folder, is an error naming it.
pub fn funko_files(dir: &Path) -> Result<Vec<FunkoFile>, Problem> {
    let walker = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .add_custom_ignore_filename(".dockerignore")
        .filter_entry(|e| e.file_name() != ".git")
        .sort_by_file_name(Ord::cmp)
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| Problem::whole(dir, format!("cannot be read: {e}")))?;
        let Some(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            let what = if kind.is_symlink() {
                "is a symbolic link"
            } else {
                "is not a regular file"
            };
            return Err(Problem::whole(
                entry.path(),
                format!("{what}; a funko may hold only regular files and folders"),
            ));
        }
        files.push(FunkoFile {
            rel: runtime::relative(dir, entry.path()),
            mode: file_mode(entry.path()),
            path: entry.into_path(),
        });
    }
    Ok(files)
}

/// 0755 for executables, 0644 otherwise.
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let executable = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if executable { 0o755 } else { 0o644 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_and_an_upload_see_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        for file in [
            "funko.yml",
            "handler.py",
            "lib/util.py",
            ".git/HEAD",
            "build/x",
            "secret.env",
        ] {
            std::fs::write(root.join(file), "x").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.env\n").unwrap();
        let rels: Vec<String> = funko_files(root)
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(
            rels,
            [
                ".dockerignore",
                ".gitignore",
                "funko.yml",
                "handler.py",
                "lib/util.py"
            ]
        );
    }

    #[test]
    fn a_link_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let problem = funko_files(dir.path()).unwrap_err();
        assert!(problem.to_string().contains("symbolic link"), "{problem}");
    }
}
