//! The access log: one line per answered request, written off the request path.
//!
//! A write system call per request on the event loop cost the proxy about 45 % of its
//! throughput in a container (each write also wakes the reader of the container's output).
//! So each event loop formats its lines into a batch of its own (a lock only the writer's swap
//! ever contends), and one writer thread swaps the batches out and writes them: at least every
//! [`FLUSH_EVERY`], sooner when a batch passes [`WAKE_AT`], and once more when the proxy stops.
//! A crash loses at most the last interval's lines.
//!
//! When the destination does not keep up (a slow log driver, a full disk), a batch stops
//! growing at [`MAX_BATCH`] and further lines are dropped and counted (`/metrics`, and a
//! warning at most once a second): memory stays bounded and no request ever waits for the log.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, Uri};
use tracing::warn;

use crate::shard::Sharded;

/// Longest time a line waits in its batch before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A batch this large wakes the writer before its interval is up.
const WAKE_AT: usize = 64 * 1024;
/// A batch this large takes no more lines until the writer has taken it (about 4,000 lines).
const MAX_BATCH: usize = 1024 * 1024;
/// Least time between two warnings about dropped lines.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How access-log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// The same layout as faaso's other log lines: time, level, target, message, `key=value`.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where access-log lines go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessLogDestination {
    /// The process's standard output (`docker logs` shows it).
    #[default]
    Stdout,
    /// A file, appended to, and opened again on SIGHUP (after logrotate moved it).
    File(PathBuf),
}

/// One answered request, as its access-log line records it.
pub(crate) struct Entry<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) funko: &'a str,
    pub(crate) status: u16,
    pub(crate) micros: u64,
    pub(crate) instance: Option<SocketAddr>,
    pub(crate) request_id: &'a str,
}

/// The event loops' side of the log: appends lines to the loop's own batch.
#[derive(Clone, Debug)]
pub(crate) struct AccessLog {
    shared: Arc<Shared>,
}

/// The writer's side: the thread that writes the batches, until [`AccessLogWriter::finish`].
#[derive(Debug)]
pub(crate) struct AccessLogWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    format: AccessLogFormat,
    batches: Sharded<Mutex<Vec<u8>>>,
    dropped: AtomicU64,
    finishing: AtomicBool,
    reopen: AtomicBool,
    writer: OnceLock<Thread>,
}

/// An opened destination.
#[derive(Debug)]
pub(crate) enum Output {
    Stdout(io::Stdout),
    File { path: PathBuf, file: File },
}

impl Output {
    /// Opens `destination` (a file is created if missing and appended to).
    pub(crate) fn open(destination: &AccessLogDestination) -> io::Result<Self> {
        Ok(match destination {
            AccessLogDestination::Stdout => Self::Stdout(io::stdout()),
            AccessLogDestination::File(path) => Self::File {
                file: open_append(path)?,
                path: path.clone(),
            },
        })
    }

    /// A file is opened again by its path, so lines go to the new file once logrotate moved
    /// the old one away; if that fails, the old one is kept.
    fn reopen(&mut self) {
        if let Self::File { path, file } = self {
            match open_append(path) {
                Ok(new) => *file = new,
                Err(err) => {
                    warn!(path = %path.display(), ?err, "The access log could not be opened again; writing to the old file.")
                }
            }
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stdout(stdout) => stdout,
            Self::File { file, .. } => file,
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl AccessLog {
    /// Starts the writer thread on `output`; lines look as `format` says.
    pub(crate) fn start(
        format: AccessLogFormat,
        output: Output,
    ) -> io::Result<(Self, AccessLogWriter)> {
        let shared = Arc::new(Shared {
            format,
            batches: Sharded::default(),
            dropped: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            writer: OnceLock::new(),
        });
        let thread = thread::Builder::new()
            .name("faaso-access-log".to_owned())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, output)
            })?;
        let _ = shared.writer.set(thread.thread().clone());
        let log = Self {
            shared: shared.clone(),
        };
        let writer = AccessLogWriter {
            shared,
            thread: Some(thread),
        };
        Ok((log, writer))
    }

    /// Adds the line of one answered request to this event loop's batch, or counts it as
    /// dropped if the batch is full.
    pub(crate) fn record(&self, entry: &Entry<'_>) {
        let mut batch = lock(self.shared.batches.local());
        let before = batch.len();
        if before >= MAX_BATCH {
            drop(batch);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.shared.format {
            AccessLogFormat::Text => text_line(&mut batch, entry),
            AccessLogFormat::Json => json_line(&mut batch, entry),
        }
        let full = before < WAKE_AT && batch.len() >= WAKE_AT;
        drop(batch);
        if full {
            self.shared.wake_writer();
        }
    }

    /// Lines dropped so far because the destination did not keep up or refused them.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to open its file again before its next write (SIGHUP).
    pub(crate) fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        self.shared.wake_writer();
    }
}

impl AccessLogWriter {
    /// Writes what the batches still hold and stops the writer thread.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.finishing.store(true, Ordering::Release);
        self.shared.wake_writer();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLogWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }
}

/// A poisoned batch is still a byte buffer (at worst holding half a line): the log goes on.
fn lock(batch: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    batch
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer thread: swaps each loop's batch for an empty one and writes it, until told to
/// finish (then once more, so nothing recorded before is lost).
fn write_batches(shared: &Shared, mut output: Output) {
    // One spare per batch, swapped back and forth: no allocation once both have grown.
    let mut spares: Vec<Vec<u8>> = shared.batches.iter().map(|_| Vec::new()).collect();
    let mut reported = 0;
    let mut last_report: Option<Instant> = None;
    loop {
        thread::park_timeout(FLUSH_EVERY);
        let finishing = shared.finishing.load(Ordering::Acquire);
        if shared.reopen.swap(false, Ordering::AcqRel) {
            output.reopen();
        }
        for (batch, spare) in shared.batches.iter().zip(spares.iter_mut()) {
            {
                let mut batch = lock(batch);
                if batch.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *batch, spare);
            }
            if let Err(err) = output.writer().write_all(spare) {
                let lines = spare.iter().filter(|b| **b == b'\n').count() as u64;
                shared.dropped.fetch_add(lines, Ordering::Relaxed);
                if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                    warn!(
                        ?err,
                        "Writing the access log failed; its lines were dropped."
                    );
                }
            }
            spare.clear();
        }
        let _ = output.writer().flush();
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported && last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            warn!(
                dropped = dropped - reported,
                total = dropped,
                "Dropped access-log lines: the log's destination is not keeping up."
            );
            reported = dropped;
            last_report = Some(Instant::now());
        }
        if finishing {
            return;
        }
    }
}

/// `<time>  INFO faaso_proxy::access: Request answered. method=… uri=… …`: the layout the
/// access log had as a `tracing` event, so that what reads it keeps working. Written piece by
/// piece rather than through `format_args!`, which cost some 2,500 instructions a line.
fn text_line(out: &mut Vec<u8>, entry: &Entry<'_>) {
    push_timestamp(out);
    out.extend_from_slice(b"  INFO faaso_proxy::access: Request answered. method=");
    out.extend_from_slice(entry.method.as_str().as_bytes());
    out.extend_from_slice(b" uri=");
    push_uri(out, entry.uri);
    out.extend_from_slice(b" funko=");
    out.extend_from_slice(entry.funko.as_bytes());
    out.extend_from_slice(b" status=");
    push_number(out, entry.status);
    out.extend_from_slice(b" micros=");
    push_number(out, entry.micros);
    out.extend_from_slice(b" instance=\"");
    push_instance(out, entry.instance);
    out.extend_from_slice(b"\" request_id=");
    quoted(out, entry.request_id);
    out.push(b'\n');
}

/// One JSON object with the same fields.
fn json_line(out: &mut Vec<u8>, entry: &Entry<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp(out);
    out.extend_from_slice(b"\",\"method\":");
    quoted(out, entry.method.as_str());
    out.extend_from_slice(b",\"uri\":");
    // A URI's text is written first and escaped only in the rare case it needs it.
    let start = out.len();
    out.push(b'"');
    push_uri(out, entry.uri);
    out.push(b'"');
    if out[start + 1..out.len() - 1]
        .iter()
        .any(|b| needs_escape(*b))
    {
        let uri = String::from_utf8_lossy(&out[start + 1..out.len() - 1]).into_owned();
        out.truncate(start);
        quoted(out, &uri);
    }
    out.extend_from_slice(b",\"funko\":");
    quoted(out, entry.funko);
    out.extend_from_slice(b",\"status\":");
    push_number(out, entry.status);
    out.extend_from_slice(b",\"micros\":");
    push_number(out, entry.micros);
    out.extend_from_slice(b",\"instance\":\"");
    push_instance(out, entry.instance);
    out.extend_from_slice(b"\",\"request_id\":");
    quoted(out, entry.request_id);
    out.extend_from_slice(b"}\n");
}

/// The time now as RFC 3339 in UTC with microseconds (`2026-12-02T05:27:55.123456Z`). The
/// date and time of day are formatted once a second per thread; only the microseconds each time.
fn push_timestamp(out: &mut Vec<u8>) {
    thread_local! {
        /// The second last formatted, and its text up to and including the `.`.
        static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            text.clear();
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(second);
            let _ = write!(text, "{}", humantime::format_rfc3339_seconds(whole));
            // `…:SSZ` becomes `…:SS.`, ready for the microseconds.
            text.pop();
            text.push(b'.');
            *cached = second;
        }
        out.extend_from_slice(text);
    });
    let micros = since_epoch.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    out.extend(std::iter::repeat_n(b'0', 6 - digits.len()));
    out.extend_from_slice(digits.as_bytes());
    out.push(b'Z');
}

/// The request target as the client sent it: origin form (`/path?query`) without any
/// formatting machinery, other forms (HTTP/2's absolute URIs) through `Display`.
fn push_uri(out: &mut Vec<u8>, uri: &Uri) {
    match uri.path_and_query() {
        Some(path) if uri.scheme().is_none() => out.extend_from_slice(path.as_str().as_bytes()),
        _ => {
            let _ = write!(out, "{uri}");
        }
    }
}

fn push_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `a.b.c.d:port` without formatting machinery; IPv6 through `Display`.
fn push_instance(out: &mut Vec<u8>, instance: Option<SocketAddr>) {
    match instance {
        Some(SocketAddr::V4(addr)) => {
            for (i, octet) in addr.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_number(out, octet);
            }
            out.push(b':');
            push_number(out, addr.port());
        }
        Some(addr) => {
            let _ = write!(out, "{addr}");
        }
        None => {}
    }
}

fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// `value` as a JSON string (RFC 8259 §7); the text format quotes the same way.
fn quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    // Request ids and names nearly never need escaping: copied whole, not byte by byte.
    if !value.bytes().any(needs_escape) {
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        return;
    }
    for &byte in value.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            byte if byte < 0x20 => {
                let _ = write!(out, "\\u{byte:04x}");
            }
            byte => out.push(byte),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a Method, uri: &'a Uri, request_id: &'a str) -> Entry<'a> {
        Entry {
            method,
            uri,
            funko: "hello",
            status: 200,
            micros: 812,
            instance: Some(SocketAddr::from(([172, 18, 0, 2], 3000))),
            request_id,
        }
    }

    #[test]
    fn a_text_line_has_every_field_in_the_tracing_layout() {
        let uri: Uri = "/funko/hello/x?a=1".parse().unwrap();
        let mut out = Vec::new();
        text_line(&mut out, &entry(&Method::GET, &uri, "abc\"d"));
        let line = String::from_utf8(out).unwrap();
        let (time, rest) = line.split_once("  ").unwrap();
        assert!(time.parse::<humantime::Timestamp>().is_ok(), "{time}");
        assert_eq!(
            rest,
            "INFO faaso_proxy::access: Request answered. method=GET uri=/funko/hello/x?a=1 \
             funko=hello status=200 micros=812 instance=\"172.18.0.2:3000\" request_id=\"abc\\\"d\"\n"
        );
    }

    #[test]
    fn a_json_line_is_one_object_with_every_field_escaped() {
        let uri: Uri = "/funko/hello/x?q=%22".parse().unwrap();
        let mut out = Vec::new();
        json_line(&mut out, &entry(&Method::POST, &uri, "id\\\u{1}\"x"));
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["method"], "POST");
        assert_eq!(value["uri"], "/funko/hello/x?q=%22");
        assert_eq!(value["funko"], "hello");
        assert_eq!(value["status"], 200);
        assert_eq!(value["micros"], 812);
        assert_eq!(value["instance"], "172.18.0.2:3000");
        assert_eq!(value["request_id"], "id\\\u{1}\"x");
        let time = value["timestamp"].as_str().unwrap();
        assert!(time.parse::<humantime::Timestamp>().is_ok(), "{time}");
    }

    #[test]
    fn quoted_strings_escape_quotes_backslashes_and_control_bytes() {
        let mut out = Vec::new();
        quoted(&mut out, "a\"b\\c\nd\u{7}é");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{7}é");
    }

    #[test]
    fn timestamps_are_rfc3339_with_six_digits_of_microseconds_and_the_time_now() {
        for _ in 0..3 {
            let mut out = Vec::new();
            push_timestamp(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.len(), "2026-12-02T05:27:55.123456Z".len(), "{text}");
            let at: SystemTime = humantime::parse_rfc3339(&text).unwrap();
            let off = SystemTime::now().duration_since(at).unwrap();
            assert!(off < Duration::from_secs(1), "{text} is {off:?} off");
            thread::sleep(Duration::from_millis(600));
        }
    }

    #[test]
    fn ipv6_instances_and_absolute_uris_are_written_whole() {
        let uri: Uri = "http://example.test:8888/funko/hello/?a=1".parse().unwrap();
        let mut e = entry(&Method::GET, &uri, "x");
        e.instance = Some("[fd00::2]:3000".parse().unwrap());
        let mut out = Vec::new();
        text_line(&mut out, &e);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.contains(" uri=http://example.test:8888/funko/hello/?a=1 "),
            "{line}"
        );
        assert!(line.contains(" instance=\"[fd00::2]:3000\" "), "{line}");
    }

    fn read_lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_reach_the_file_within_the_interval_without_finishing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let output = Output::open(&AccessLogDestination::File(path.clone())).unwrap();
        let (log, writer) = AccessLog::start(AccessLogFormat::Text, output).unwrap();
        let uri: Uri = "/funko/hello/".parse().unwrap();
        log.record(&entry(&Method::GET, &uri, "one"));
        log.record(&entry(&Method::GET, &uri, "two"));
        // Nothing is written on the recording thread; the writer gets to it on its own.
        wait_for("both lines in the file", || read_lines(&path).len() == 2);
        assert!(read_lines(&path)[1].ends_with("request_id=\"two\""));
        writer.finish();
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn finishing_writes_what_the_batches_still_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let output = Output::open(&AccessLogDestination::File(path.clone())).unwrap();
        let (log, writer) = AccessLog::start(AccessLogFormat::Json, output).unwrap();
        let uri: Uri = "/funko/hello/".parse().unwrap();
        for _ in 0..1000 {
            log.record(&entry(&Method::GET, &uri, "x"));
        }
        writer.finish();
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 1000);
        for line in lines {
            serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
    }

    #[test]
    fn a_reopen_moves_later_lines_to_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        let output = Output::open(&AccessLogDestination::File(path.clone())).unwrap();
        let (log, writer) = AccessLog::start(AccessLogFormat::Text, output).unwrap();
        let uri: Uri = "/funko/hello/".parse().unwrap();
        log.record(&entry(&Method::GET, &uri, "before"));
        wait_for("the first line", || read_lines(&path).len() == 1);
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        wait_for("the new file", || path.exists());
        log.record(&entry(&Method::GET, &uri, "after"));
        writer.finish();
        assert_eq!(read_lines(&rotated).len(), 1);
        let now = read_lines(&path);
        assert_eq!(now.len(), 1);
        assert!(now[0].ends_with("request_id=\"after\""));
    }

    /// A destination that takes nothing until let go of: the batch fills up, and lines past
    /// its bound are dropped and counted instead of waiting or growing memory.
    #[test]
    fn a_stuck_destination_drops_and_counts_lines_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stuck");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // Opening a FIFO for writing waits for a reader: hold its other end open, unread.
        let reader = {
            let fifo = fifo.clone();
            thread::spawn(move || File::open(fifo).unwrap())
        };
        let output = Output::open(&AccessLogDestination::File(fifo)).unwrap();
        let reader = reader.join().unwrap();
        let (log, writer) = AccessLog::start(AccessLogFormat::Text, output).unwrap();
        let uri: Uri = "/funko/hello/".parse().unwrap();
        let started = Instant::now();
        let lines = 50_000;
        for _ in 0..lines {
            log.record(&entry(&Method::GET, &uri, "x"));
        }
        // Recording never waited for the writer (a stuck write would have taken forever).
        assert!(started.elapsed() < Duration::from_secs(5));
        wait_for("dropped lines to be counted", || log.dropped() > 0);
        let dropped = log.dropped();
        assert!(dropped < lines, "{dropped} of {lines} dropped");
        // A batch holds at most MAX_BATCH plus one line.
        for batch in log.shared.batches.iter() {
            assert!(lock(batch).len() <= MAX_BATCH + 4096);
        }
        // Reading the FIFO lets the writer go on, and finishing ends it.
        let drain = thread::spawn(move || io::copy(&mut &reader, &mut io::sink()).unwrap());
        writer.finish();
        let written = drain.join().unwrap();
        assert!(written > 0);
    }
}
