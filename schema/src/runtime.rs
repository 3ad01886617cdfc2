//! Runtimes: the templates that turn a funko folder into a Docker build context.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use serde::Deserialize;

use crate::problem::Problem;

/// The runtimes shipped inside the faaso binary, so it works from any directory.
static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../runtimes");

/// The runtime's own description file.
const RUNTIME_FILE: &str = "runtime.yml";
/// The Dockerfile template.
pub(crate) const DOCKERFILE_TEMPLATE: &str = "Dockerfile.hbs";
/// The folder `faaso new` renders.
const TEMPLATE_DIR: &str = "template";

/// A runtime loaded into memory: its description, defaults, Dockerfile template, glue and template.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The built-in name, or the folder path for a runtime given by path.
    pub name: String,
    /// Where it came from, for error messages (`<builtin>/python` or a folder).
    pub origin: PathBuf,
    /// What runtime.yml says of it.
    pub meta: RuntimeMeta,
    /// The Dockerfile template text.
    pub dockerfile_template: String,
    /// Files copied into every build context, by relative path (`/`-separated).
    pub glue: BTreeMap<String, Vec<u8>>,
    /// Files `faaso new` renders into a new funko, by relative path.
    pub template: BTreeMap<String, Vec<u8>>,
}

/// The contents of a runtime's runtime.yml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeMeta {
    /// One line saying what the runtime is for.
    pub description: String,
    /// The base images it builds on; absent for `FROM scratch` runtimes.
    #[serde(default)]
    pub base_images: Option<BaseImages>,
    /// Every option the template reads: its default, type and the pattern a value must match.
    #[serde(default)]
    pub options: BTreeMap<String, OptionDecl>,
}

/// What a runtime's option may hold. Written in runtime.yml as
/// `executable: {default: app, pattern: '^[A-Za-z0-9._/-]+$', description: ...}` (the type is
/// the default's unless `type` says), or in the older form `executable: app`, which takes the
/// default's type and, for a string, [`SAFE_OPTION_PATTERN`].
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "OptionDeclWritten")]
pub struct OptionDecl {
    /// The value when the funko gives none.
    pub default: serde_json::Value,
    /// The kind of value it takes.
    pub kind: OptionKind,
    /// For a string: the pattern the whole value must match.
    pub pattern: Option<regex::Regex>,
    /// For a whole number: the least and most it may be.
    pub range: (i64, i64),
    /// What the option does, for people writing a funko.
    pub description: String,
}

/// The kinds of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionKind {
    /// Text matching the option's pattern.
    String,
    /// A whole number within the option's range.
    Integer,
    /// `true` or `false`.
    Boolean,
}

impl OptionKind {
    fn of(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(_) => Some(Self::String),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(Self::Integer),
            serde_json::Value::Bool(_) => Some(Self::Boolean),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "a whole number",
            Self::Boolean => "true or false",
        }
    }
}

/// The pattern of a string option declared without one: characters that stay one token in any
/// Dockerfile line (no space, quote, `$`, `\\` or control character), not starting with `-`.
pub const SAFE_OPTION_PATTERN: &str = r"^[A-Za-z0-9._/:@+=,][A-Za-z0-9._/:@+=,-]*$";

/// The pattern as the runtime wrote it, without the anchors faaso adds.
fn written_pattern(pattern: &regex::Regex) -> &str {
    let anchored = pattern.as_str();
    anchored
        .strip_prefix("^(?:")
        .and_then(|p| p.strip_suffix(")$"))
        .unwrap_or(anchored)
}

/// An option declaration as written: a plain default, or the full form.
#[derive(Deserialize)]
#[serde(untagged)]
enum OptionDeclWritten {
    Full(OptionDeclFull),
    Plain(serde_json::Value),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionDeclFull {
    default: serde_json::Value,
    #[serde(default, rename = "type")]
    kind: Option<OptionKind>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    minimum: Option<i64>,
    #[serde(default)]
    maximum: Option<i64>,
    #[serde(default)]
    description: String,
}

impl TryFrom<OptionDeclWritten> for OptionDecl {
    type Error = String;

    fn try_from(written: OptionDeclWritten) -> Result<Self, String> {
        let full = match written {
            OptionDeclWritten::Full(full) => full,
            OptionDeclWritten::Plain(default) => OptionDeclFull {
                default,
                kind: None,
                pattern: None,
                minimum: None,
                maximum: None,
                description: String::new(),
            },
        };
        let kind = match (full.kind, OptionKind::of(&full.default)) {
            (Some(kind), _) | (None, Some(kind)) => kind,
            (None, None) => {
                return Err(format!(
                    "the default `{}` is not a string, whole number or boolean",
                    full.default
                ));
            }
        };
        let pattern = match kind {
            OptionKind::String => {
                let written = full.pattern.as_deref().unwrap_or(SAFE_OPTION_PATTERN);
                // Anchored whatever the author wrote: the whole value must match.
                let anchored = format!("^(?:{written})$");
                Some(
                    regex::Regex::new(&anchored)
                        .map_err(|e| format!("the pattern `{written}` is not a regex: {e}"))?,
                )
            }
            _ if full.pattern.is_some() => {
                return Err("a `pattern` applies only to a string option".to_owned());
            }
            _ => None,
        };
        let decl = Self {
            default: serde_json::Value::Null,
            kind,
            pattern,
            range: (
                full.minimum.unwrap_or(i64::MIN),
                full.maximum.unwrap_or(i64::MAX),
            ),
            description: full.description,
        };
        let default = decl
            .check(&full.default)
            .map_err(|e| format!("its default does not fit it: {e}"))?;
        Ok(Self { default, ..decl })
    }
}

impl OptionDecl {
    /// What the option takes, in one phrase for an error message.
    pub fn describe(&self) -> String {
        let what = match (self.kind, &self.pattern) {
            (OptionKind::String, Some(pattern)) => {
                format!("a string matching `{}`", written_pattern(pattern))
            }
            (OptionKind::Integer, _) if self.range != (i64::MIN, i64::MAX) => {
                format!("a whole number from {} to {}", self.range.0, self.range.1)
            }
            (kind, _) => kind.name().to_owned(),
        };
        format!("this option takes {what} (default `{}`)", self.default)
    }

    /// `value` if this option takes it, or why not (said in funko.yml's terms).
    pub fn check(&self, value: &serde_json::Value) -> Result<serde_json::Value, String> {
        if OptionKind::of(value) != Some(self.kind) {
            return Err(format!("`{value}` is not {}", self.kind.name()));
        }
        match value {
            serde_json::Value::String(text) => {
                if let Some(c) = text.chars().find(|c| c.is_control()) {
                    return Err(format!(
                        "{text:?} holds the control character {c:?}, which could start a new line of the Dockerfile"
                    ));
                }
                if self.pattern.as_ref().is_some_and(|p| !p.is_match(text)) {
                    return Err(format!("{text:?} does not match the option's pattern"));
                }
            }
            serde_json::Value::Number(n) => {
                let (min, max) = self.range;
                if !n.as_i64().is_some_and(|n| (min..=max).contains(&n)) {
                    return Err(format!("`{n}` is outside {min} to {max}"));
                }
            }
            _ => {}
        }
        Ok(value.clone())
    }
}

/// A runtime's two base images: one made offline, one from a public registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseImages {
    /// Built on this machine by `scripts/base-images` (no registry needed).
    pub local: String,
    /// The official image, for hosts that can pull.
    pub official: String,
}

/// Which of a runtime's base images a build uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseChoice {
    /// The image made offline by `scripts/base-images`.
    Local,
    /// The official registry image.
    Official,
}

impl Runtime {
    /// The names of the built-in runtimes, sorted.
    pub fn builtin_names() -> Vec<String> {
        let mut names: Vec<String> = BUILTIN
            .dirs()
            .filter(|d| d.get_file(d.path().join(RUNTIME_FILE)).is_some())
            .filter_map(|d| d.path().file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Loads the built-in runtime `name`; the error suggests the closest built-in name.
    pub fn builtin(name: &str) -> Result<Self, String> {
        let Some(dir) = BUILTIN.get_dir(name).filter(|_| !name.contains(['/', '.'])) else {
            let names = Self::builtin_names();
            let closest = names
                .iter()
                .map(|n| (strsim::jaro_winkler(name, n), n))
                .filter(|(score, _)| *score > 0.7)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match closest {
                Some((_, n)) => format!("did you mean `{n}`? "),
                None => String::new(),
            };
            return Err(format!(
                "there is no runtime `{name}`; {hint}built-in runtimes: {} (or give a path to a runtime folder, like `./my-runtime`)",
                names.join(", ")
            ));
        };
        let mut files = BTreeMap::new();
        collect_embedded(dir, dir.path(), &mut files);
        Self::from_files(name, Path::new("<builtin>").join(name), files)
    }

    /// Loads a runtime from a folder on disk.
    pub fn from_folder(dir: &Path) -> Result<Self, String> {
        if !dir.join(RUNTIME_FILE).is_file() {
            return Err(format!(
                "`{}` is not a runtime folder: it has no {RUNTIME_FILE}",
                dir.display()
            ));
        }
        let mut files = BTreeMap::new();
        for entry in walkdir(dir)? {
            let bytes = std::fs::read(&entry)
                .map_err(|e| format!("cannot read `{}`: {e}", entry.display()))?;
            files.insert(relative(dir, &entry), bytes);
        }
        Self::from_files(&dir.display().to_string(), dir.to_owned(), files)
    }

    fn from_files(
        name: &str,
        origin: PathBuf,
        mut files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, String> {
        let meta_bytes = files.remove(RUNTIME_FILE).unwrap_or_default();
        let meta_text = String::from_utf8_lossy(&meta_bytes);
        let meta: RuntimeMeta = serde_saphyr::from_str(&meta_text).map_err(|e| {
            format!(
                "{}: {}",
                origin.join(RUNTIME_FILE).display(),
                e.without_snippet()
            )
        })?;
        let dockerfile_template = files
            .remove(DOCKERFILE_TEMPLATE)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| format!("runtime `{name}` has no {DOCKERFILE_TEMPLATE}"))?;
        let prefix = format!("{TEMPLATE_DIR}/");
        let (template, glue): (BTreeMap<_, _>, BTreeMap<_, _>) = files
            .into_iter()
            .partition(|(path, _)| path.starts_with(&prefix));
        let template = template
            .into_iter()
            .map(|(path, bytes)| (path[prefix.len()..].to_owned(), bytes))
            .collect();
        Ok(Self {
            name: name.to_owned(),
            origin,
            meta,
            dockerfile_template,
            glue,
            template,
        })
    }

    /// The base image for `choice`, or `None` for a runtime that builds `FROM scratch`.
    pub fn base_image(&self, choice: BaseChoice) -> Option<&str> {
        self.meta.base_images.as_ref().map(|b| match choice {
            BaseChoice::Local => b.local.as_str(),
            BaseChoice::Official => b.official.as_str(),
        })
    }
}

fn collect_embedded(dir: &Dir<'_>, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for file in dir.files() {
        let rel = file.path().strip_prefix(root).unwrap_or(file.path());
        out.insert(slash_path(rel), file.contents().to_vec());
    }
    for sub in dir.dirs() {
        collect_embedded(sub, root, out);
    }
}

/// Every regular file under `dir`, skipping `.git`, in a stable order.
pub(crate) fn walkdir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| format!("cannot read `{}`: {e}", current.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read `{}`: {e}", current.display()))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot read `{}`: {e}", entry.path().display()))?;
            if kind.is_dir() && entry.file_name() != ".git" {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `path` relative to `root`, with `/` separators as in a tar archive.
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    slash_path(path.strip_prefix(root).unwrap_or(path))
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The runtime a funko names: a built-in, or a folder relative to the funko.
pub fn resolve(funko_dir: &Path, runtime: &str) -> Result<Runtime, String> {
    if runtime.contains('/') || runtime.starts_with('.') {
        // Drop `.` components so messages show `f/rt/…`, not `f/./rt/…`.
        let folder: PathBuf = funko_dir
            .join(runtime)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        Runtime::from_folder(&folder)
    } else {
        Runtime::builtin(runtime)
    }
}

/// Renders the runtime's `template/` into a new funko folder `dir` named `name`.
pub fn scaffold(runtime: &Runtime, name: &crate::FunkoName, dir: &Path) -> Result<(), Problem> {
    if dir.exists() {
        return Err(Problem::whole(
            dir,
            "already exists; choose another name or folder",
        ));
    }
    let data = serde_json::json!({ "name": name.as_str(), "runtime": runtime.name });
    let registry = crate::context::registry();
    let mut rendered = Vec::new();
    for (path, bytes) in &runtime.template {
        let text = String::from_utf8_lossy(bytes);
        let out = registry.render_template(&text, &data).map_err(|e| {
            Problem::whole(
                runtime.origin.join(TEMPLATE_DIR).join(path),
                format!("cannot be rendered: {e}"),
            )
        })?;
        rendered.push((dir.join(path), out));
    }
    for (path, text) in rendered {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Problem::whole(parent, format!("cannot be created: {e}")))?;
        }
        std::fs::write(&path, &text)
            .map_err(|e| Problem::whole(&path, format!("cannot be written: {e}")))?;
        // Embedded files carry no mode: a script (`#!`) is what must stay executable.
        if text.starts_with("#!") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Problem::whole(&path, format!("cannot be made executable: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_runtimes_load() {
        let names = Runtime::builtin_names();
        for expected in ["binary", "express", "flask", "node", "python"] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
        for name in names {
            let runtime = Runtime::builtin(&name).unwrap();
            assert!(!runtime.meta.description.is_empty(), "{name}");
            assert!(runtime.template.contains_key("funko.yml"), "{name}");
        }
    }

    #[test]
    fn an_unknown_runtime_suggests_a_builtin() {
        let err = Runtime::builtin("pyton").unwrap_err();
        assert!(err.contains("did you mean `python`?"), "{err}");
        assert!(Runtime::builtin("../python").is_err());
    }
}
