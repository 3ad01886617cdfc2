//! Reading an uploaded archive safely: a gzipped tar checked entry by entry while it streams
//! out of the decompressor (limits, entry kinds, paths, modes) and unpacked under one folder.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::rc::Rc;

use tar::EntryType;

use super::error::{UploadError, UploadLimits, shorten};

/// Bytes an entry's header data may take (long names, pax extensions, skipped global headers,
/// padding); real archives need a few hundred.
pub(super) const HEADER_BUDGET: u64 = 64 * 1024;
/// Bytes the decompressed stream may go on after the tar's end marker (tar pads to 10 KiB
/// records; anything much longer is not a tar we made).
pub(super) const TRAILING_BUDGET: u64 = 1 << 20;
/// The longest single path component Linux accepts.
const NAME_MAX: usize = 255;

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

pub(super) fn make_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
#[path = "../../tests/support/mod.rs"]
mod support;

#[cfg(test)]
mod tests {

    use axum::http::StatusCode;
    use proptest::prelude::*;

    use super::support::{Raw, gz, gzip_bomb, header, raw, tar_of};
    use super::*;

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
