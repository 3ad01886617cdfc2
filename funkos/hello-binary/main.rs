//! The hello-binary funko: a small HTTP/1.1 server using only Rust's standard library, built
//! as a static executable by build.sh and run alone in a FROM scratch image.
//! faaso needs two things from it: listen on $PORT and answer GET /ping with 200. It runs
//! under Docker's init (tini), which ends it on SIGTERM, so it needs no signal handling.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Answers one request: (status line, body). Put your function here.
fn respond(method: &str, path: &str) -> (&'static str, String) {
    match (method, path) {
        (_, "/ping") => ("200 OK", "pong\n".into()),
        ("GET" | "HEAD", _) => ("200 OK", format!("Hello from hello-binary! You asked for {path}\n")),
        _ => ("405 Method Not Allowed", "only GET here\n".into()),
    }
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
