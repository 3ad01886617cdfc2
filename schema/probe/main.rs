//! faaso-probe: `faaso-probe <url> [timeout_ms]` exits 0 when `GET <url>` answers a 2xx status,
//! 1 otherwise (refused, timed out, not HTTP). Every funko's image carries it as the readiness
//! check Swarm runs inside the container (schema/src/probe.rs). std only and statically linked,
//! so it runs in any image, FROM scratch included; the URL names an IP address, not a host
//! name, because a static glibc cannot resolve names.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// When no timeout is given: Docker's own healthcheck timeout is longer, so the probe answers first.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// More than any status line: a server that sends this much without one is not answering HTTP.
const STATUS_LINE_MAX: usize = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, timeout) = match args.as_slice() {
        [url] => (url, DEFAULT_TIMEOUT),
        [url, ms] => match ms.parse() {
            Ok(ms) => (url, Duration::from_millis(ms)),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    match probe(url, timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("faaso-probe: {url}: {why}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: faaso-probe http://<ip>:<port>/<path> [timeout_ms]");
    ExitCode::FAILURE
}

/// `Ok` when `url` answers 2xx within `timeout`, the reason otherwise.
fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs can be probed")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let address: SocketAddr = authority
        .parse()
        .map_err(|_| format!("`{authority}` is not <ip>:<port>"))?;
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: faaso-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let line = status_line(&mut stream, deadline)?;
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// Reads up to the end of the first line, each read bounded by what is left of the deadline
/// (a server sending a byte at a time cannot hold the probe past it).
fn status_line(stream: &mut TcpStream, deadline: Instant) -> Result<String, String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') && line.len() < STATUS_LINE_MAX {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => return Err("closed before answering".to_owned()),
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("timed out".to_owned());
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    Ok(String::from_utf8_lossy(&line[..end]).trim_end().to_owned())
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "timed out".to_owned())
}
