//! Uploading a funko: `PUT /admin/funkos/<name>` with a gzipped tar of the folder's contents.
//!
//! The archive is checked while it streams out of the decompressor (limits, entry kinds, paths)
//! and unpacked into a hidden staging folder inside the funkos folder
//! (`.upload-<name>-<random>/<name>/`; the reconciler skips hidden folders). The staged funko
//! is validated like the reconciler would (funko.yml, name, runtime, template), then swapped in
//! with one `renameat2(RENAME_EXCHANGE)`, so the reconciler sees the old version or the new
//! one, never a missing or half-written folder. Any refusal removes the staging folder.
//!
//! Entries are relative to the funko folder (`funko.yml`, `lib/x.py`; a leading `./` is fine,
//! as `tar czf - -C <dir> .` writes). An archive holding a single top-level folder named like the
//! funko (`tar czf - <name>`) is accepted too and taken as the funko folder.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};
use std::rc::Rc;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use faaso_schema::{BaseChoice, BuildContext, FunkoName, Problem};
use futures_util::StreamExt;
use tar::EntryType;

use crate::funkos::{error, funko_name};
use crate::{AdminEvent, AdminState};

/// Bytes an entry's header data may take (long names, pax extensions, skipped global headers,
/// padding); real archives need a few hundred.
const HEADER_BUDGET: u64 = 64 * 1024;
/// Bytes the decompressed stream may go on after the tar's end marker (tar pads to 10 KiB
/// records; anything much longer is not a tar we made).
const TRAILING_BUDGET: u64 = 1 << 20;
/// The longest single path component Linux accepts.
const NAME_MAX: usize = 255;

/// Limits on an uploaded funko.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// The largest compressed upload.
    pub max_compressed: usize,
    /// The largest total of unpacked file sizes.
    pub max_unpacked: u64,
    /// The most entries.
    pub max_entries: usize,
    /// The most path components in one entry's path.
    pub max_depth: usize,
    /// The longest entry path, in bytes.
    pub max_path_len: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_compressed: 32 << 20,
            max_unpacked: 256 << 20,
            max_entries: 10_000,
            max_depth: 32,
            max_path_len: 1024,
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The archive is not a gzipped tar.
    #[error(
        "the upload is not a gzipped tar: {0}; send the funko folder as `tar czf - -C <folder> .`"
    )]
    Archive(String),
    /// The compressed upload is larger than allowed.
    #[error(
        "the upload is larger than {}; leave build outputs and caches out of it",
        amount(*limit as u64)
    )]
    CompressedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The files unpack to more bytes than allowed.
    #[error(
        "entry `{path}`: the files unpack to more than {}; leave large files out of the funko",
        amount(*limit)
    )]
    UnpackedTooLarge {
        /// The entry that went over.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// The archive holds more entries than allowed.
    #[error("the archive holds more than {limit} entries; leave dependencies and caches out of it")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// An entry's path is longer or deeper than allowed.
    #[error("entry `{path}`: the path is {what}; shorten it")]
    PathTooLong {
        /// The entry's path (cut short when very long).
        path: String,
        /// Which limit, and by how much.
        what: String,
    },
    /// An entry's header data (long name, pax extensions) is implausibly large.
    #[error(
        "an entry's header data (long name or pax extensions) is larger than {HEADER_BUDGET} bytes; this is not a funko archive"
    )]
    HeaderTooLarge,
    /// The decompressed stream goes on long after the archive's end.
    #[error(
        "the archive goes on for more than {TRAILING_BUDGET} bytes after its end marker (a decompression bomb?); send only the tar of the funko"
    )]
    Trailing,
    /// An entry that may not be in a funko.
    #[error("entry `{path}` {reason}")]
    Entry {
        /// The entry's path as the archive gives it.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The unpacked funko is not valid: the problem, relative to the funko folder.
    #[error("{0}")]
    Funko(String),
    /// Reading or writing the staging folder failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        source: io::Error,
    },
    /// The new version could not be swapped in.
    #[error("cannot swap the new version of `{funko}` in: {reason}")]
    Swap {
        /// The funko.
        funko: String,
        /// Why, and what to do.
        reason: String,
    },
}

impl UploadError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Archive(_) | Self::Entry { .. } => StatusCode::BAD_REQUEST,
            Self::CompressedTooLarge { .. }
            | Self::UnpackedTooLarge { .. }
            | Self::TooManyEntries { .. }
            | Self::PathTooLong { .. }
            | Self::HeaderTooLarge
            | Self::Trailing => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Funko(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Io { .. } | Self::Swap { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    fn entry(path: &str, reason: impl Into<String>) -> Self {
        Self::Entry {
            path: shorten(path),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        error(self.status(), self.to_string())
    }
}

/// What an archive unpacked to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: usize,
    /// Folders made (explicit entries and implied parents).
    pub dirs: usize,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// The funko named in the path and the archive in the body (read up to the size limit), or the
/// answer refusing them.
pub(crate) async fn named_archive(
    state: &AdminState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(FunkoName, Bytes), Response> {
    let name = funko_name(name)?;
    match read_body(headers, body, state.limits.max_compressed).await {
        Ok(bytes) => Ok((name, bytes)),
        Err(e) => Err(refused(&name, e)),
    }
}

/// Routes for uploads.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/funkos/{name}", put(upload))
}

async fn upload(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (name, compressed) = match named_archive(&state, &name, &headers, body).await {
        Ok(named) => named,
        Err(response) => return response,
    };
    let job = state.clone();
    let job_name = name.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        deploy(&job.funkos_dir, &job_name, &compressed, &job.limits)
    })
    .await;
    match outcome {
        Ok(Ok(deployed)) => {
            tracing::info!(
                funko = %name,
                files = deployed.unpacked.files,
                bytes = deployed.unpacked.bytes,
                replaced = deployed.replaced,
                "A funko was uploaded and swapped in."
            );
            state.changed(AdminEvent::Deployed {
                funko: name.to_string(),
            });
            let answer = serde_json::json!({
                "funko": name.as_str(),
                "status": format!("/admin/funkos/{name}"),
                "events": "/admin/events",
                "replaced": deployed.replaced,
            });
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        Ok(Err(e)) => refused(&name, e),
        Err(join) => {
            tracing::error!(funko = %name, error = ?join, "Checking an upload panicked.");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checking the upload failed unexpectedly; nothing was changed",
            )
        }
    }
}

pub(crate) fn refused(name: &FunkoName, e: UploadError) -> Response {
    if e.status().is_server_error() {
        tracing::error!(funko = %name, error = %e, "An upload failed.");
    } else {
        tracing::info!(funko = %name, error = %e, "An upload was refused.");
    }
    e.into_response()
}

/// The body, up to `max` bytes; a larger one is refused as soon as it is known to be larger.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, UploadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(UploadError::CompressedTooLarge { limit: max });
    }
    let mut stream = body.into_data_stream();
    let mut collected = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| UploadError::Archive(format!("the body could not be read ({e})")))?;
        if collected.len() + chunk.len() > max {
            return Err(UploadError::CompressedTooLarge { limit: max });
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.into())
}

/// The outcome of [`deploy`].
struct Deployed {
    unpacked: Unpacked,
    /// Whether an older version was replaced.
    replaced: bool,
}

/// Checks, stages, validates and swaps in one upload. Blocking.
fn deploy(
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

/// Counts decompressed bytes and refuses to give more than the current allowance, so header
/// data, file content and trailing padding are each bounded while streaming.
struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

#[derive(Default)]
struct Meter {
    read: Cell<u64>,
    allowed_until: Cell<u64>,
    tripped: Cell<bool>,
}

impl Meter {
    fn allow(&self, more: u64) {
        self.allowed_until.set(self.read.get().saturating_add(more));
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.meter.allowed_until.get()).saturating_sub(self.meter.read.get());
        if buf.is_empty() {
            return Ok(0);
        }
        if left == 0 {
            self.meter.tripped.set(true);
            return Err(io::Error::other("the decompressed data goes over a limit"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.meter.read.set(self.meter.read.get() + n as u64);
        Ok(n)
    }
}

/// What a path already seen in the archive is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    /// A folder; `true` when the archive has an entry for it, not only for things inside it.
    Dir(bool),
}

/// Reads a gzipped tar from `compressed` and unpacks it into `dest` (an existing, empty
/// folder), refusing it at the first entry that breaks a rule or a limit. Only regular files
/// (mode 0644, or 0755 when any executable bit is set) and folders (0755) are written, and only
/// under `dest`. On an error, `dest` may hold part of the archive: the caller removes it.
pub fn unpack_checked(
    compressed: impl Read,
    limits: &UploadLimits,
    dest: &Path,
) -> Result<Unpacked, UploadError> {
    let meter = Rc::new(Meter::default());
    let reader = Metered {
        inner: flate2::read::GzDecoder::new(compressed),
        meter: meter.clone(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut unpacked = Unpacked::default();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut count = 0usize;
    let stream_error = |e: io::Error| {
        if meter.tripped.get() {
            UploadError::HeaderTooLarge
        } else {
            UploadError::Archive(shorten(&e.to_string()))
        }
    };
    {
        let mut entries = archive.entries().map_err(stream_error)?;
        loop {
            meter.allow(HEADER_BUDGET);
            let Some(entry) = entries.next() else { break };
            let mut entry = entry.map_err(stream_error)?;
            count += 1;
            if count > limits.max_entries {
                return Err(UploadError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let kind = entry.header().entry_type();
            if kind == EntryType::XGlobalHeader {
                // Archive-wide metadata (`git archive` writes the commit id); nothing to unpack.
                continue;
            }
            let rel = checked_path(&raw, &shown, limits)?;
            let size = entry.size();
            match kind {
                EntryType::Regular => {
                    if unpacked.bytes.saturating_add(size) > limits.max_unpacked {
                        return Err(UploadError::UnpackedTooLarge {
                            path: shorten(&shown),
                            limit: limits.max_unpacked,
                        });
                    }
                    let Some(parents) = rel.split_last().map(|(_, p)| p) else {
                        return Err(UploadError::entry(
                            &shown,
                            "is a file with no name; name every file",
                        ));
                    };
                    unpacked.dirs += claim_parents(&mut seen, parents, &shown, dest)?;
                    let key = rel.join("/");
                    if let Some(before) = seen.insert(key, Seen::File) {
                        return Err(duplicate(&shown, before));
                    }
                    let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                    let mode = if executable { 0o755 } else { 0o644 };
                    meter.allow(size);
                    let written = write_file(&mut entry, &dest.join(rel.join("/")), mode, size)
                        .map_err(|e| match e {
                            Written::Read(e) => stream_error(e),
                            Written::Write(e) => UploadError::Io {
                                action: format!(
                                    "write `{}` into the staging folder",
                                    shorten(&shown)
                                ),
                                source: e,
                            },
                        })?;
                    unpacked.files += 1;
                    unpacked.bytes += written;
                }
                EntryType::Directory => {
                    if size > 0 {
                        return Err(UploadError::entry(
                            &shown,
                            "is a folder entry that carries data; this is not a funko archive",
                        ));
                    }
                    if rel.is_empty() {
                        continue; // `./`: the funko folder itself
                    }
                    unpacked.dirs += claim_parents(&mut seen, &rel[..rel.len() - 1], &shown, dest)?;
                    let key = rel.join("/");
                    match seen.get_mut(&key) {
                        Some(Seen::Dir(explicit @ false)) => *explicit = true,
                        Some(before) => return Err(duplicate(&shown, *before)),
                        None => {
                            make_dir(&dest.join(&key)).map_err(UploadError::io(format!(
                                "make folder `{}` in the staging folder",
                                shorten(&key)
                            )))?;
                            seen.insert(key, Seen::Dir(true));
                            unpacked.dirs += 1;
                        }
                    }
                }
                other => return Err(UploadError::entry(&shown, refusal(other, &entry))),
            }
        }
    }
    // Read to the end of the gzip stream, so a corrupt or truncated one is noticed, but only so
    // far: a stream of zeros behind the end marker is a bomb, not padding.
    meter.allow(TRAILING_BUDGET);
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| {
        if meter.tripped.get() {
            UploadError::Trailing
        } else {
            UploadError::Archive(shorten(&e.to_string()))
        }
    })?;
    Ok(unpacked)
}

/// An entry's path as checked components: relative, no `..`, UTF-8, within the limits. `.` and
/// empty components (`./a`, `a//b`, `a/`) are dropped.
fn checked_path(
    raw: &[u8],
    shown: &str,
    limits: &UploadLimits,
) -> Result<Vec<String>, UploadError> {
    if raw.len() > limits.max_path_len {
        return Err(UploadError::PathTooLong {
            path: shorten(shown),
            what: format!(
                "{} bytes long, more than the {} allowed",
                raw.len(),
                limits.max_path_len
            ),
        });
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(UploadError::entry(
            shown,
            "has a name that is not UTF-8; rename it",
        ));
    };
    if text.starts_with('/') {
        return Err(UploadError::entry(
            shown,
            "has an absolute path; entries must be relative to the funko folder (`tar czf - -C <folder> .`)",
        ));
    }
    if text.contains('\0') {
        return Err(UploadError::entry(shown, "has a NUL byte in its name"));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(UploadError::entry(
                    shown,
                    "has a `..` component; entries must stay inside the funko folder",
                ));
            }
            part if part.len() > NAME_MAX => {
                return Err(UploadError::PathTooLong {
                    path: shorten(shown),
                    what: format!("made of a name longer than {NAME_MAX} bytes"),
                });
            }
            part => parts.push(part.to_owned()),
        }
    }
    if parts.len() > limits.max_depth {
        return Err(UploadError::PathTooLong {
            path: shorten(shown),
            what: format!(
                "{} folders deep, more than the {} allowed",
                parts.len(),
                limits.max_depth
            ),
        });
    }
    Ok(parts)
}

/// Makes the folders `dirs` names (each prefix in turn) unless made already; returns how many
/// were made. A prefix that is a file is refused.
fn claim_parents(
    seen: &mut HashMap<String, Seen>,
    dirs: &[String],
    shown: &str,
    dest: &Path,
) -> Result<usize, UploadError> {
    let mut made = 0;
    let mut key = String::new();
    for part in dirs {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(part);
        match seen.get(&key) {
            Some(Seen::Dir(_)) => {}
            Some(Seen::File) => {
                return Err(UploadError::entry(
                    shown,
                    format!("lies inside `{key}`, which the archive has as a file"),
                ));
            }
            None => {
                make_dir(&dest.join(&key)).map_err(|e| UploadError::Io {
                    action: format!("make folder `{key}` in the staging folder"),
                    source: e,
                })?;
                seen.insert(key.clone(), Seen::Dir(false));
                made += 1;
            }
        }
    }
    Ok(made)
}

fn duplicate(shown: &str, before: Seen) -> UploadError {
    let what = match before {
        Seen::File => "a file",
        Seen::Dir(_) => "a folder",
    };
    UploadError::entry(
        shown,
        format!("appears twice (it is {what} already); an archive may hold each path once"),
    )
}

/// Why an entry of a kind we do not unpack is refused.
fn refusal<R: Read>(kind: EntryType, entry: &tar::Entry<'_, R>) -> String {
    let target = || {
        entry
            .link_name_bytes()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default()
    };
    let only = "a funko may hold only regular files and folders";
    match kind {
        EntryType::Symlink => format!(
            "is a symbolic link (to `{}`); {only}: put a copy of the file there",
            shorten(&target())
        ),
        EntryType::Link => format!(
            "is a hard link (to `{}`); {only}: put a copy of the file there",
            shorten(&target())
        ),
        EntryType::Char | EntryType::Block => format!("is a device file; {only}"),
        EntryType::Fifo => format!("is a named pipe (fifo); {only}"),
        EntryType::GNUSparse => format!("is a sparse file; {only}: archive it without `--sparse`"),
        other => format!(
            "has the entry type `{}`, which is not unpacked; {only}",
            other.as_byte().escape_ascii()
        ),
    }
}

enum Written {
    Read(io::Error),
    Write(io::Error),
}

/// Writes one file's content to a new file at `path` with `mode`.
fn write_file(entry: &mut impl Read, path: &Path, mode: u32, size: u64) -> Result<u64, Written> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Written::Write)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Written::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(Written::Write)?;
        written += n as u64;
    }
    if written != size {
        return Err(Written::Read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the archive ends inside a file",
        )));
    }
    // The umask may have taken bits away; the funko gets exactly these.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(Written::Write)?;
    Ok(written)
}

fn make_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// A byte count for a message: whole KiB and MiB as such.
fn amount(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// A path or message for an answer: long ones are cut.
fn shorten(path: &str) -> String {
    const SHOWN: usize = 200;
    if path.len() <= SHOWN {
        return path.to_owned();
    }
    let mut end = SHOWN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    /// One raw tar entry: path bytes written as they are (no `tar` crate checks), type, mode,
    /// content and link target.
    #[derive(Debug, Clone)]
    struct Raw {
        path: Vec<u8>,
        kind: u8,
        mode: u32,
        data: Vec<u8>,
        link: Vec<u8>,
        long_name: bool,
    }

    fn raw(path: &str, kind: u8, data: &[u8]) -> Raw {
        Raw {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            data: data.to_vec(),
            link: Vec::new(),
            long_name: false,
        }
    }

    fn tar_of(entries: &[Raw]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            if e.long_name {
                let mut name = e.path.clone();
                name.push(0);
                out.extend(header(
                    b"././@LongLink",
                    b'L',
                    0o644,
                    name.len() as u64,
                    b"",
                ));
                out.extend(padded(&name));
            }
            out.extend(header(
                &e.path,
                e.kind,
                e.mode,
                e.data.len() as u64,
                &e.link,
            ));
            out.extend(padded(&e.data));
        }
        out.extend([0u8; 1024]);
        out
    }

    fn header(path: &[u8], kind: u8, mode: u32, size: u64, link: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        let n = path.len().min(old.name.len());
        old.name[..n].copy_from_slice(&path[..n]);
        let n = link.len().min(old.linkname.len());
        old.linkname[..n].copy_from_slice(&link[..n]);
        h.set_mode(mode);
        h.set_size(size);
        h.set_entry_type(EntryType::new(kind));
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(512) * 512, 0);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn unpack(entries: &[Raw]) -> (tempfile::TempDir, Result<Unpacked, UploadError>) {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("f");
        std::fs::create_dir(&dest).unwrap();
        let result = unpack_checked(&gz(&tar_of(entries))[..], &UploadLimits::default(), &dest);
        (tmp, result)
    }

    fn refused(entries: &[Raw]) -> UploadError {
        unpack(entries)
            .1
            .expect_err("the archive should be refused")
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn files_and_folders_unpack_with_plain_modes() {
        let mut script = raw("./bin/run", b'0', b"#!/bin/sh\n");
        script.mode = 0o4777;
        let mut odd = raw("./lib/x.py", b'0', b"x = 1\n");
        odd.mode = 0o600;
        let (tmp, result) = unpack(&[
            raw("./", b'5', b""),
            raw("./funko.yml", b'0', b"name: f\n"),
            raw("lib/", b'5', b""),
            odd,
            script,
        ]);
        let unpacked = result.unwrap();
        assert_eq!(unpacked.files, 3);
        assert_eq!(unpacked.dirs, 2);
        let dest = tmp.path().join("f");
        assert_eq!(std::fs::read(dest.join("lib/x.py")).unwrap(), b"x = 1\n");
        assert_eq!(mode_of(&dest.join("lib/x.py")), 0o644);
        assert_eq!(mode_of(&dest.join("bin/run")), 0o755);
        assert_eq!(mode_of(&dest.join("lib")), 0o755);
    }

    #[test]
    fn each_bad_entry_is_named_with_its_reason() {
        let mut link = raw("evil", b'2', b"");
        link.link = b"/etc/passwd".to_vec();
        let cases = [
            (raw("../x", b'0', b"x"), "`..`"),
            (raw("a/../../x", b'0', b"x"), "`..`"),
            (raw("/etc/passwd", b'0', b"x"), "absolute path"),
            (link, "symbolic link (to `/etc/passwd`)"),
            (raw("hard", b'1', b""), "hard link"),
            (raw("dev", b'3', b""), "device file"),
            (raw("blk", b'4', b""), "device file"),
            (raw("pipe", b'6', b""), "named pipe"),
            (raw("weird", b'Z', b""), "entry type `Z`"),
        ];
        for (entry, expected) in cases {
            let shown = String::from_utf8_lossy(&entry.path).into_owned();
            let e = refused(&[raw("funko.yml", b'0', b"name: f\n"), entry]);
            let text = e.to_string();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{text}");
            assert!(text.contains(&format!("`{shown}`")), "{text}");
            assert!(text.contains(expected), "{text}");
        }
    }

    #[test]
    fn duplicates_and_file_folder_clashes_are_refused() {
        let a = raw("a.py", b'0', b"1");
        assert!(
            refused(&[a.clone(), a])
                .to_string()
                .contains("appears twice")
        );
        let dup = refused(&[raw("./a.py", b'0', b"1"), raw("a.py", b'0', b"2")]);
        assert!(dup.to_string().contains("appears twice"), "{dup}");
        let clash = refused(&[raw("lib", b'0', b"1"), raw("lib/x.py", b'0', b"2")]);
        assert!(
            clash
                .to_string()
                .contains("which the archive has as a file"),
            "{clash}"
        );
        let dirs = refused(&[raw("lib/", b'5', b""), raw("lib/", b'5', b"")]);
        assert!(dirs.to_string().contains("appears twice"), "{dirs}");
        // A folder first implied by a file, then listed, is fine.
        let (_, ok) = unpack(&[raw("lib/x.py", b'0', b"1"), raw("lib/", b'5', b"")]);
        assert_eq!(ok.unwrap().dirs, 1);
    }

    #[test]
    fn limits_answer_413() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = UploadLimits {
            max_unpacked: 10,
            max_entries: 3,
            max_depth: 3,
            max_path_len: 20,
            ..UploadLimits::default()
        };
        let run = |entries: &[Raw]| {
            let dest = tempfile::tempdir_in(tmp.path()).unwrap();
            unpack_checked(&gz(&tar_of(entries))[..], &limits, dest.path()).unwrap_err()
        };
        let big = run(&[raw("a", b'0', b"123456"), raw("b", b'0', b"123456")]);
        assert!(matches!(big, UploadError::UnpackedTooLarge { ref path, .. } if path == "b"));
        let many = run(&[
            raw("a", b'5', b""),
            raw("b", b'5', b""),
            raw("c", b'5', b""),
            raw("d", b'5', b""),
        ]);
        assert!(matches!(many, UploadError::TooManyEntries { limit: 3 }));
        let deep = run(&[raw("a/b/c/d", b'0', b"")]);
        assert!(deep.to_string().contains("4 folders deep"), "{deep}");
        let long = run(&[raw("abcdefghij/abcdefghij/x", b'0', b"")]);
        assert!(long.to_string().contains("bytes long"), "{long}");
        for e in [big, many, deep, long] {
            assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
    }

    /// A gzip stream of `prefix` and then `zeros` zero bytes, made in a moment: one fully
    /// flushed deflate block of 1 MiB of zeros, repeated. The trailer's CRC is not computed;
    /// a checker that reaches it has already read far too much.
    fn gzip_bomb(prefix: &[u8], mib_of_zeros: usize) -> Vec<u8> {
        use flate2::{Compress, Compression, FlushCompress};
        fn deflate(c: &mut Compress, input: &[u8], flush: FlushCompress) -> Vec<u8> {
            let mut out = Vec::with_capacity(input.len() + 1024);
            let start = c.total_in();
            loop {
                let done = (c.total_in() - start) as usize;
                c.compress_vec(&input[done..], &mut out, flush).unwrap();
                if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
                    return out;
                }
                out.reserve(64 * 1024);
            }
        }
        let mut c = Compress::new(Compression::best(), false);
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        out.extend(deflate(&mut c, prefix, FlushCompress::Full));
        let block = deflate(&mut c, &vec![0u8; 1 << 20], FlushCompress::Full);
        for _ in 0..mib_of_zeros {
            out.extend(&block);
        }
        out.extend(deflate(&mut c, &[], FlushCompress::Finish));
        let size = (prefix.len() + (mib_of_zeros << 20)) as u32;
        out.extend(0u32.to_le_bytes());
        out.extend(size.to_le_bytes());
        out
    }

    #[test]
    fn a_bomb_is_refused_while_streaming() {
        // A header promising a 1 GiB file, and the gigabyte of zeros.
        let bomb = gzip_bomb(&header(b"funko.yml", b'0', 0o644, 1 << 30, b""), 1024);
        assert!(bomb.len() < 2 << 20, "{}", bomb.len());
        let tmp = tempfile::tempdir().unwrap();
        let e = unpack_checked(&bomb[..], &UploadLimits::default(), tmp.path()).unwrap_err();
        assert!(matches!(e, UploadError::UnpackedTooLarge { .. }), "{e}");
        assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
        // Only zeros: the tar ends at once, and the zeros behind its end are not read through.
        let e = unpack_checked(
            &gzip_bomb(b"", 1024)[..],
            &UploadLimits::default(),
            tmp.path(),
        )
        .unwrap_err();
        assert!(matches!(e, UploadError::Trailing), "{e}");
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn a_huge_long_name_is_not_read_into_memory() {
        let name = vec![b'a'; 10 << 20];
        let mut entry = raw("x", b'0', b"");
        entry.path = name;
        entry.long_name = true;
        let e = refused(&[entry]);
        assert!(matches!(e, UploadError::HeaderTooLarge), "{e}");
    }

    #[test]
    fn not_gzip_and_truncated_archives_are_400() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = UploadLimits::default();
        let e = unpack_checked(&b"hello, world"[..], &limits, tmp.path()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
        let whole = gz(&tar_of(&[raw("a", b'0', &[7u8; 5000])]));
        let dest = tmp.path().join("t");
        std::fs::create_dir(&dest).unwrap();
        let e = unpack_checked(&whole[..whole.len() / 2], &limits, &dest).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
    }

    /// Cases per fuzz property: `FAASO_FUZZ_CASES` (the flagged run uses 1000000), else a
    /// short CI run.
    fn fuzz_cases() -> u32 {
        std::env::var("FAASO_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    fn fuzz_config() -> ProptestConfig {
        ProptestConfig {
            cases: fuzz_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Path components chosen to hit every rule, plus arbitrary bytes.
    fn component() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "", ".", "..", "a", "lib", "funko.yml", "f", "/", "/tmp", "x\u{0}y", "é",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn entry() -> impl Strategy<Value = Raw> {
        (
            prop::collection::vec(component(), 0..5),
            prop_oneof![
                6 => prop::sample::select(b"0\x0012345667gxLKSD".to_vec()),
                1 => any::<u8>(),
            ],
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..16),
            any::<bool>(),
        )
            .prop_map(|(parts, kind, mode, data, link, long_name)| Raw {
                path: parts.join(&b'/'),
                kind,
                mode,
                data,
                link,
                long_name,
            })
    }

    /// Runs the checker on `compressed` in `<tmp>/a/b/c/d/e/dest` and checks that it wrote
    /// nothing but plain files and folders, and only under `dest`. The generated paths have at
    /// most four `..`, so an escape would land inside `<tmp>`, where it is looked for.
    fn check_contained(compressed: &[u8]) {
        // In memory where there is a tmpfs: a million cases on a disk take an hour.
        let shm = Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let dest = tmp.path().join("a/b/c/d/e/dest");
        std::fs::create_dir_all(&dest).unwrap();
        let limits = UploadLimits {
            max_unpacked: 4096,
            max_entries: 64,
            ..UploadLimits::default()
        };
        let result = unpack_checked(compressed, &limits, &dest);
        let mut stack = vec![tmp.path().to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let inside = path.starts_with(&dest) || dest.starts_with(&path);
                assert!(
                    inside,
                    "{} was written outside the staging folder",
                    path.display()
                );
                if meta.is_dir() {
                    if path.starts_with(&dest) && path != dest {
                        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
                    }
                    stack.push(path);
                } else {
                    assert!(meta.is_file(), "{} is not a plain file", path.display());
                    assert!(matches!(meta.permissions().mode() & 0o7777, 0o644 | 0o755));
                }
            }
        }
        if let Ok(unpacked) = result {
            assert!(unpacked.bytes <= limits.max_unpacked);
        }
    }

    proptest! {
        #![proptest_config(fuzz_config())]

        #[test]
        fn fuzz_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            check_contained(&bytes);
        }

        #[test]
        fn fuzz_gzipped_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
            check_contained(&gz(&bytes));
        }

        #[test]
        fn fuzz_tar_entries(
            entries in prop::collection::vec(entry(), 0..8),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut tar = tar_of(&entries);
            for (at, byte) in flips {
                let i = at.index(tar.len());
                tar[i] = byte;
            }
            check_contained(&gz(&tar));
        }
    }
}
