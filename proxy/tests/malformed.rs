//! The proxy under hostile HTTP/1 input, over raw TCP: conflicting framing, oversized and too
//! many headers, slow headers, invalid request lines, bad chunked bodies, and arbitrary bytes.
//! Every exchange must end (answered 4xx, handled, or closed) within a deadline, nothing may
//! panic, no request may reach the instance with ambiguous framing, and the proxy must still
//! answer `/healthz` afterwards.
//!
//! The instance is an in-process HTTP server on 127.0.0.1, so no Docker engine is needed.
//! `FAASO_FUZZ_CASES` sets the arbitrary-input cases (short by default).

#[allow(dead_code)]
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faaso_proxy::{Candidate, FunkoSettings, InstanceId, ProxyConfig};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use support::RunningProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send a request head before the proxy cuts it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest any exchange may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(5);
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 50;

/// Panics anywhere in this process (the proxy's connection tasks included).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The proxy's tasks run on runtime workers; the tests' own asserts do not.
            let thread = std::thread::current();
            if thread
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// What the instance received, one entry per request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    content_length: Vec<String>,
    transfer_encoding: Vec<String>,
    body: Result<usize, String>,
}

/// An instance answering `/ping` and echoing the size of every body it read.
async fn instance() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let values = |name: &str| -> Vec<String> {
                        req.headers()
                            .get_all(name)
                            .iter()
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                            .collect()
                    };
                    let path = req.uri().path().to_owned();
                    let content_length = values("content-length");
                    let transfer_encoding = values("transfer-encoding");
                    let body = match req.into_body().collect().await {
                        Ok(b) => Ok(b.to_bytes().len()),
                        Err(e) => Err(e.to_string()),
                    };
                    let answer = match &body {
                        Ok(n) => format!("got {n} bytes"),
                        Err(e) => format!("body error {e}"),
                    };
                    if path != "/ping" {
                        log.lock().unwrap().push(Seen {
                            path,
                            content_length,
                            transfer_encoding,
                            body,
                        });
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer))))
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A proxy routing funko `echo` to an in-process instance.
struct Lab {
    proxy: RunningProxy,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Lab {
    async fn start() -> Self {
        count_panics();
        let (addr, seen) = instance().await;
        let proxy = RunningProxy::start(ProxyConfig {
            access_log: false,
            header_read_timeout: HEADER_TIMEOUT,
            max_header_bytes: MAX_HEADER_BYTES,
            max_headers: MAX_HEADERS,
            max_body_bytes: 1024 * 1024,
            ..ProxyConfig::default()
        })
        .await;
        proxy.health.set_funko(
            "echo",
            FunkoSettings {
                request_timeout: Duration::from_secs(10),
                ..FunkoSettings::default()
            },
            vec![Candidate {
                id: InstanceId::new("echo-1"),
                addr,
                health_path: "/ping".into(),
            }],
        );
        proxy.wait_ready("echo", 1).await;
        Self { proxy, seen }
    }

    /// No request reached the instance with framing it could read two ways.
    fn assert_instance_saw_unambiguous_framing(&self) {
        for seen in self.seen.lock().unwrap().iter() {
            assert!(
                seen.content_length.len() <= 1
                    && (seen.content_length.is_empty() || seen.transfer_encoding.is_empty()),
                "the instance got ambiguous framing: {seen:?}"
            );
        }
    }

    async fn assert_still_healthy(&self) {
        let answer = exchange(self.proxy.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(answer.statuses, [200], "{answer:?}");
        let answer = exchange(
            self.proxy.addr,
            b"GET /funko/echo/after HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert_eq!(answer.statuses, [200], "{answer:?}");
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
    }
}

/// What came back on one connection.
#[derive(Debug)]
struct Exchange {
    /// The status of every response head, in order.
    statuses: Vec<u16>,
    /// Everything read, lossily as text.
    text: String,
    /// How long until the proxy closed the connection.
    took: Duration,
}

/// Sends `bytes` on a new connection and reads what comes back; panics on a hang.
///
/// The exchange ends when the proxy closes the connection, or when every response read is
/// complete and nothing more follows for a moment. When nothing at all arrives for `stall`
/// (an unfinished body the proxy is still waiting for), the client half-closes, and the proxy
/// must then end it.
async fn exchange_with(addr: SocketAddr, bytes: &[u8], stall: Duration) -> Exchange {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The proxy may close early (a rejected head) while we still write: that is fine.
    let _ = stream.write_all(bytes).await;
    let read = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let mut half_closed = false;
        loop {
            let wait = if complete(&raw) {
                Duration::from_millis(50)
            } else {
                stall
            };
            match tokio::time::timeout(wait, stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return raw,
                Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
                Err(_) if complete(&raw) => return raw,
                Err(_) if !half_closed => {
                    let _ = stream.shutdown().await;
                    half_closed = true;
                }
                Err(_) => {}
            }
        }
    };
    let raw = tokio::time::timeout(DEADLINE, read)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no end within {DEADLINE:?} for {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )
        });
    parse(raw, started.elapsed())
}

/// [`exchange_with`], waiting out the header timeout before half-closing.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Exchange {
    exchange_with(addr, bytes, HEADER_TIMEOUT + Duration::from_millis(500)).await
}

/// Whether `raw` is one or more whole responses that leave the connection open.
fn complete(raw: &[u8]) -> bool {
    let mut rest = raw;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        if head.contains("\r\nconnection: close") {
            return false; // the close will come
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse::<usize>().ok());
        let body = match (status, length) {
            (100..=199 | 204 | 304, _) => 0,
            (_, Some(n)) => n,
            _ => return false,
        };
        let whole = end + 4 + body;
        if rest.len() < whole {
            return false;
        }
        rest = &rest[whole..];
    }
    true
}

fn parse(raw: Vec<u8>, took: Duration) -> Exchange {
    let text = String::from_utf8_lossy(&raw).into_owned();
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter(|(at, _)| *at == 0 || text[..*at].ends_with('\n'))
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .filter(|status| *status != 100)
        .collect();
    Exchange {
        statuses,
        text,
        took,
    }
}

/// The statuses a rejected request may get: a 4xx, or the connection closed with none.
fn rejected(answer: &Exchange) -> bool {
    answer.statuses.iter().all(|s| (400..500).contains(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_framing_is_rejected_or_read_one_way() {
    let lab = Lab::start().await;
    let addr = lab.proxy.addr;
    // (what, request, the body the instance may get when the proxy reads it one way; "" means
    // it must be rejected).
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "content-length and chunked",
            b"POST /funko/echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "got 5 bytes",
        ),
        (
            "chunked then content-length, smuggled request in the body",
            b"POST /funko/echo/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /funko/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            "got 0 bytes",
        ),
        (
            "content-length 0 and chunked",
            b"POST /funko/echo/c HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "got 5 bytes",
        ),
        (
            "transfer-encoding not ending in chunked",
            b"POST /funko/echo/d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "",
        ),
        (
            "transfer-encoding gzip alone, with content-length",
            b"POST /funko/echo/e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
            "",
        ),
        (
            "obfuscated transfer-encoding (space before the colon)",
            b"POST /funko/echo/f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
            "",
        ),
        (
            "conflicting content-lengths",
            b"POST /funko/echo/g HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "",
        ),
        (
            "a content-length list",
            b"POST /funko/echo/h HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
            "",
        ),
        (
            "a negative content-length",
            b"POST /funko/echo/i HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
            "",
        ),
        (
            "an overflowing content-length",
            b"POST /funko/echo/j HTTP/1.1\r\nHost: x\r\nContent-Length: 184467440737095516160\r\n\r\nhello",
            "",
        ),
        (
            "a content-length with a plus sign",
            b"POST /funko/echo/k HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
            "",
        ),
    ];
    for (what, bytes, handled) in cases {
        let answer = exchange(addr, bytes).await;
        println!(
            "MALFORMED {what}: {:?} in {:?}",
            answer.statuses, answer.took
        );
        let read_one_way =
            !handled.is_empty() && answer.statuses == [200] && answer.text.ends_with(handled);
        assert!(
            (rejected(&answer) && !answer.statuses.is_empty()) || read_one_way,
            "{what}: neither rejected nor read as {handled:?}: {answer:?}"
        );
    }
    // Equal duplicates carry no ambiguity: rejected, or read as the one length.
    let answer = exchange(
        addr,
        b"POST /funko/echo/l HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    println!(
        "MALFORMED equal duplicate content-lengths: {:?}",
        answer.statuses
    );
    assert!(
        rejected(&answer) || answer.text.contains("got 5 bytes"),
        "{answer:?}"
    );
    let seen = lab.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| s.path != "/smuggled"),
        "a request was smuggled past the proxy: {seen:?}"
    );
    lab.assert_instance_saw_unambiguous_framing();
    lab.assert_still_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_too_many_headers_are_refused() {
    let lab = Lab::start().await;
    let addr = lab.proxy.addr;
    let big = format!(
        "GET /funko/echo/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(MAX_HEADER_BYTES * 2)
    );
    let many = format!(
        "GET /funko/echo/ HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..MAX_HEADERS * 2)
            .map(|i| format!("X-H{i}: {i}\r\n"))
            .collect::<String>()
    );
    let long_uri = format!(
        "GET /funko/echo/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(MAX_HEADER_BYTES * 2)
    );
    let endless = format!(
        "GET /funko/echo/ HTTP/1.1\r\nHost: x\r\nX-Endless: {}",
        "b".repeat(4 * 1024 * 1024)
    );
    for (what, request) in [
        ("a header twice the head limit", big),
        ("twice the header count limit", many),
        ("a path twice the head limit", long_uri),
        ("a 4 MiB header that never ends", endless),
    ] {
        let answer = exchange(addr, request.as_bytes()).await;
        println!(
            "MALFORMED {what}: {:?} in {:?}",
            answer.statuses, answer.took
        );
        assert!(
            rejected(&answer),
            "{what}: should be refused (431 or closed): {answer:?}"
        );
        assert!(
            answer.statuses.iter().all(|s| [400, 414, 431].contains(s)),
            "{what}: {answer:?}"
        );
    }
    lab.assert_still_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_cut_after_the_header_timeout() {
    let lab = Lab::start().await;
    let mut stream = TcpStream::connect(lab.proxy.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /funko/echo/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms, for up to 10 s: far longer than the header timeout.
    let mut cut = None;
    for i in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let byte = [b"X-Slow: abcdefghijklmnopqrstuvwxyz\r\n"[i % 35]];
        if stream.write_all(&byte).await.is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 512];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            // EOF, or an answer (408) before the close.
            println!(
                "MALFORMED slow head: answered {:?}",
                String::from_utf8_lossy(&probe[..n]).lines().next()
            );
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("a slow head was still accepted after 10 s");
    println!("MALFORMED slow head: cut after {cut:?} (header timeout {HEADER_TIMEOUT:?})");
    assert!(cut >= HEADER_TIMEOUT, "cut before the timeout: {cut:?}");
    assert!(
        cut < HEADER_TIMEOUT + Duration::from_secs(3),
        "cut long after the header timeout: {cut:?}"
    );
    // An idle connection that never sends a byte is cut as well.
    let mut idle = TcpStream::connect(lab.proxy.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(DEADLINE, idle.read(&mut buf)).await;
    println!(
        "MALFORMED idle connection: closed after {:?}",
        started.elapsed()
    );
    assert!(closed.is_ok(), "an idle connection was kept open");
    // So is one that starts the HTTP/2 preface and stops.
    let mut partial = TcpStream::connect(lab.proxy.addr).await.unwrap();
    partial.write_all(b"PRI * HT").await.unwrap();
    let started = Instant::now();
    let closed = tokio::time::timeout(DEADLINE, partial.read(&mut buf)).await;
    println!(
        "MALFORMED part of the HTTP/2 preface: closed after {:?}",
        started.elapsed()
    );
    assert!(closed.is_ok(), "a partial HTTP/2 preface was kept open");
    lab.assert_still_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_request_lines_and_chunks_are_rejected() {
    let lab = Lab::start().await;
    let addr = lab.proxy.addr;
    let lines: &[(&str, &[u8])] = &[
        ("garbage", b"GARBAGE\r\n\r\n"),
        ("method only", b"GET\r\n\r\n"),
        ("no version", b"GET /funko/echo/\r\n\r\n"),
        (
            "unknown version",
            b"GET /funko/echo/ HTTP/9.9\r\nHost: x\r\n\r\n",
        ),
        (
            "NUL in the path",
            b"GET /funko/echo/\0 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "space in the path",
            b"GET /funko/echo/a b HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "DEL in the method",
            b"G\x7fT /funko/echo/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("binary", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        (
            "header without a colon",
            b"GET /funko/echo/ HTTP/1.1\r\nHost x\r\n\r\n",
        ),
        (
            "space before the colon",
            b"GET /funko/echo/ HTTP/1.1\r\nHost : x\r\n\r\n",
        ),
        (
            "folded header",
            b"GET /funko/echo/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        ),
        (
            "bare LF line ends",
            b"GET /funko/echo/ HTTP/1.1\nHost: x\n\n",
        ),
        (
            "bare CR line ends",
            b"GET /funko/echo/ HTTP/1.1\rHost: x\r\r",
        ),
        (
            "absolute-form to elsewhere",
            b"GET http://169.254.169.254/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "CONNECT",
            b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
        ),
    ];
    for (what, bytes) in lines {
        let answer = exchange(addr, bytes).await;
        println!(
            "MALFORMED {what}: {:?} in {:?}",
            answer.statuses, answer.took
        );
        // Bare LF is tolerated by RFC 9112 §2.2; anything else must not reach an instance.
        assert!(
            rejected(&answer) || answer.text.contains("got 0 bytes"),
            "{what}: {answer:?}"
        );
    }
    let chunks: &[(&str, &[u8])] = &[
        ("a non-hex chunk size", b"zz\r\nhello\r\n0\r\n\r\n"),
        (
            "an overflowing chunk size",
            b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk data longer than its size",
            b"3\r\nhello\r\n0\r\n\r\n",
        ),
        ("no CRLF after chunk data", b"5\r\nhelloXX0\r\n\r\n"),
        ("a negative chunk size", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("no last chunk", b"5\r\nhello\r\n"),
        ("a chunk larger than the body limit", b"200000\r\nhello"),
    ];
    for (what, body) in chunks {
        let mut request =
            b"POST /funko/echo/chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        request.extend_from_slice(body);
        let answer = exchange(addr, &request).await;
        println!(
            "MALFORMED {what}: {:?} in {:?}",
            answer.statuses, answer.took
        );
        assert!(
            rejected(&answer),
            "{what}: a broken body is the client's fault (400), never a success: {answer:?}"
        );
    }
    let seen = lab.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .filter(|s| s.path == "/chunks")
            .all(|s| s.body.is_err()),
        "the instance read a broken chunked body as complete: {seen:?}"
    );
    lab.assert_instance_saw_unambiguous_framing();
    lab.assert_still_healthy().await;
}

/// One lab shared by every fuzz case, on a runtime of its own.
fn fuzz_lab() -> &'static (tokio::runtime::Runtime, Lab) {
    static LAB: OnceLock<(tokio::runtime::Runtime, Lab)> = OnceLock::new();
    LAB.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let lab = runtime.block_on(Lab::start());
        (runtime, lab)
    })
}

fn fuzz_config() -> ProptestConfig {
    let cases = std::env::var("FAASO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Request-shaped bytes: real methods, paths, versions, framing headers and bodies, mixed
/// with arbitrary bytes, so the cases reach past the request line.
fn request_like() -> impl Strategy<Value = Vec<u8>> {
    fn pick(items: &[&str]) -> BoxedStrategy<Vec<u8>> {
        let items: Vec<Vec<u8>> = items.iter().map(|s| s.as_bytes().to_vec()).collect();
        prop_oneof![
            6 => prop::sample::select(items),
            1 => prop::collection::vec(any::<u8>(), 0..12),
        ]
        .boxed()
    }
    let method = pick(&[
        "GET", "POST", "PUT", "HEAD", "OPTIONS", "PRI", "CONNECT", "get",
    ]);
    let path = pick(&[
        "/funko/echo/",
        "/funko/echo",
        "/funko/echo/x?a=1",
        "/funko/none/",
        "/healthz",
        "/metrics",
        "*",
        "http://x/funko/echo/",
        "/funko/echo/%00",
        "/funko/../echo/",
    ]);
    let version = pick(&[
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/1.1 ",
        "",
        "HTTP/1.10",
    ]);
    let eol = pick(&["\r\n", "\n", "\r", "\r\n "]);
    let name = pick(&[
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Expect",
        "Upgrade",
        "Te",
        "Trailer",
        "X-Request-Id",
        "X-Forwarded-For",
        "Content-Length ",
        " Transfer-Encoding",
    ]);
    let value = pick(&[
        "x",
        "0",
        "5",
        "-1",
        "5, 6",
        "99999999999999999999",
        "chunked",
        "gzip, chunked",
        "chunked, gzip",
        "100-continue",
        "close",
        "keep-alive, Upgrade",
        "websocket",
        "trailers",
    ]);
    let header =
        (name, value, eol.clone()).prop_map(|(n, v, e)| [n, b": ".to_vec(), v, e].concat());
    let body = pick(&[
        "",
        "hello",
        "5\r\nhello\r\n0\r\n\r\n",
        "0\r\n\r\n",
        "5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
        "0\r\n\r\nGET /funko/echo/again HTTP/1.1\r\nHost: x\r\n\r\n",
        "zz\r\n",
    ]);
    (
        method,
        path,
        version,
        eol.clone(),
        prop::collection::vec(header, 0..6),
        eol,
        body,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..2),
    )
        .prop_map(|(m, p, v, e1, headers, e2, body, flips)| {
            let mut bytes = [
                m,
                b" ".to_vec(),
                p,
                b" ".to_vec(),
                v,
                e1,
                headers.concat(),
                e2,
                body,
            ]
            .concat();
            for (at, byte) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            }
            bytes
        })
}

fn check_arbitrary_request(bytes: &[u8]) {
    check_requests_at_once(&[bytes.to_vec()]);
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn fuzz_arbitrary_bytes_as_a_request(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_arbitrary_request(&bytes);
    }

}

/// Request-shaped cases go in batches on concurrent connections: many leave a body unfinished
/// and must wait out the client's stall, so one at a time would take hours for a million.
const BATCH: usize = 128;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: fuzz_config().cases.div_ceil(BATCH as u32).max(10),
        ..fuzz_config()
    })]

    #[test]
    fn fuzz_request_shaped_bytes(batch in prop::collection::vec(request_like(), BATCH)) {
        check_requests_at_once(&batch);
    }
}

fn check_requests_at_once(batch: &[Vec<u8>]) {
    let (runtime, lab) = fuzz_lab();
    let exchanges = batch
        .iter()
        .map(|bytes| exchange_with(lab.proxy.addr, bytes, Duration::from_millis(150)));
    let answers = runtime.block_on(futures_util::future::join_all(exchanges));
    for (answer, bytes) in answers.iter().zip(batch) {
        // A 500 would be the proxy failing itself; 502 and 504 come from the instance's side.
        assert!(
            answer.statuses.iter().all(|s| *s != 500),
            "{answer:?} for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

#[test]
fn after_the_fuzz_cases_the_proxy_still_answers() {
    // Runs beside the fuzz properties on the shared lab; it must answer whatever they sent.
    let (runtime, lab) = fuzz_lab();
    for bytes in [
        &b"\0\0\0\r\n\r\n"[..],
        b"POST /funko/echo/ HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
    ] {
        check_arbitrary_request(bytes);
    }
    runtime.block_on(lab.assert_still_healthy());
    lab.assert_instance_saw_unambiguous_framing();
}
