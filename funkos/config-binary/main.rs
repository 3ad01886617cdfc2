//! The config-binary funko: a small HTTP/1.1 server using only Rust's standard library, built
//! as a static executable by build.sh and run alone in a FROM scratch image.
//! faaso needs two things from it: listen on $PORT and answer GET /ping with 200. It runs
//! under Docker's init (tini), which ends it on SIGTERM, so it needs no signal handling.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Where the secret is mounted, read-only, because funko.yml lists `secrets: [api-key]`.
const SECRET: &str = "/secrets/api-key";

/// Answers one request: (status line, body). Shows env (funko.yml `env:`) and a secret file.
fn respond(_method: &str, path: &str) -> (&'static str, String) {
    if path == "/ping" {
        return ("200 OK", "pong\n".into());
    }
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "(GREETING is not set)".into());
    let api_key = match std::fs::read_to_string(SECRET) {
        Ok(key) => key.trim().to_string(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => format!("(no secret file at {SECRET})"),
        Err(err) => format!("(cannot read {SECRET}: {err})"),
    };
    ("200 OK", format!("greeting: {greeting}\napi-key: {api_key}\n"))
}

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("cannot listen on $PORT");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

/// Reads one request and answers it; one request per connection (`Connection: close`).
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    io::copy(&mut reader.take(content_length), &mut io::sink())?; // unread body would reset the connection

    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or("GET");
    let path = words.next().unwrap_or("/").split('?').next().unwrap_or("/");
    let (status, body) = respond(method, path);
    let body = if method == "HEAD" { "" } else { body.as_str() };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
