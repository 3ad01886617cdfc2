//! A tiny HTTP server that plays a funko in the proxy's tests and benchmark.
//!
//! It listens on `$PORT` (default 3000) and answers:
//! - `GET /ping`: 200, or 503 until `$READY_AFTER_MS` milliseconds after start;
//! - `/hello`: a short fixed answer (the benchmark's request);
//! - `/bytes?n=N`: N bytes, streamed in 64 KiB chunks;
//! - `/count`: reads the request body as a stream, answers its length and checksum;
//! - `/chunks?delay_ms=D`: a first chunk, then after D ms the last one;
//! - `/slow?ms=N`: answers after N ms;
//! - `/redirect`: 302 to `/elsewhere`;
//! - `/drop-reused`: the first request on a connection is echoed, a later one has its
//!   connection closed unanswered (an instance closing a kept-alive connection under a request);
//! - `/ws`: a websocket that echoes every message;
//! - `/edge-headers`: 200 with headers the edge owns (`Strict-Transport-Security: max-age=0`,
//!   `Service-Worker-Allowed: /`), as a funko might try;
//! - anything else: the method, path-and-query and headers it received, as JSON.
//!
//! Every answer carries `x-instance` (`$INSTANCE`) and `x-ready-at` (Unix micros when `/ping`
//! started answering 200), so a test can tell which instance answered and since when it is ready.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

type Body = BoxBody<Bytes, Infallible>;

struct State {
    instance: HeaderValue,
    started: Instant,
    ready_after: Duration,
    ready_at: HeaderValue,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = env_or("PORT", 3000);
    let ready_after = Duration::from_millis(env_or("READY_AFTER_MS", 0));
    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    let ready_at = now_micros + ready_after.as_micros();
    let state = Arc::new(State {
        instance: HeaderValue::from_str(&std::env::var("INSTANCE").unwrap_or_default())
            .unwrap_or(HeaderValue::from_static("?")),
        started: Instant::now(),
        ready_after,
        ready_at: HeaderValue::from(ready_at as u64),
    });
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let connection = Arc::new(Connection::default());
        tokio::spawn(async move {
            let this_connection = connection.clone();
            let service = service_fn(move |req| {
                let (state, connection) = (state.clone(), connection.clone());
                async move {
                    let earlier = connection.requests.fetch_add(1, Ordering::Relaxed);
                    if req.uri().path() == "/drop-reused" && earlier > 0 {
                        connection.close.notify_one();
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, Infallible>(answer(&state, req).await)
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let serving = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // Dropping the connection closes its socket, whatever it was doing.
            tokio::select! {
                _ = serving => {}
                () = this_connection.close.notified() => {}
            }
        });
    }
}

/// What one client connection has seen.
#[derive(Default)]
struct Connection {
    requests: AtomicU64,
    /// Told to close the connection without answering.
    close: Notify,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

async fn answer(state: &State, mut req: Request<Incoming>) -> Response<Body> {
    let mut response = match req.uri().path() {
        "/ping" if state.started.elapsed() >= state.ready_after => Response::new(full("pong\n")),
        "/ping" => status(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        "/hello" => Response::new(full("hello\n")),
        "/bytes" => bytes(query(&req, "n").unwrap_or(0)),
        "/count" => count(req.into_body()).await,
        "/chunks" => chunks(Duration::from_millis(
            query(&req, "delay_ms").unwrap_or(1000),
        )),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query(&req, "ms").unwrap_or(1000))).await;
            Response::new(full("slow\n"))
        }
        "/redirect" => {
            let mut r = status(StatusCode::FOUND, "");
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/elsewhere"));
            r
        }
        "/ws" => websocket(&mut req),
        "/edge-headers" => {
            let mut r = Response::new(full("mine\n"));
            let headers = r.headers_mut();
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=0"),
            );
            headers.insert("service-worker-allowed", HeaderValue::from_static("/"));
            r
        }
        _ => echo(&req),
    };
    let headers = response.headers_mut();
    headers.insert("x-instance", state.instance.clone());
    headers.insert("x-ready-at", state.ready_at.clone());
    response
}

fn status(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r
}

fn echo(req: &Request<Incoming>) -> Response<Body> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let uri = req.uri().to_string();
    let body = serde_json::json!({"method": req.method().as_str(), "uri": uri, "headers": headers});
    let mut r = Response::new(full(body.to_string()));
    // Also in headers, so a HEAD request can be checked.
    r.headers_mut().insert(
        "x-echo-method",
        HeaderValue::from_str(req.method().as_str()).unwrap_or(HeaderValue::from_static("?")),
    );
    r.headers_mut().insert(
        "x-echo-uri",
        HeaderValue::from_str(&uri).unwrap_or(HeaderValue::from_static("?")),
    );
    r
}

fn bytes(n: u64) -> Response<Body> {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let frames = futures_util::stream::iter((0..n.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(n - i * CHUNK) as usize;
        Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
    }));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    r
}

async fn count(mut body: Incoming) -> Response<Body> {
    let (mut len, mut sum) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return status(StatusCode::BAD_REQUEST, "body broke off\n");
        };
        if let Some(data) = frame.data_ref() {
            len += data.len() as u64;
            sum = data
                .iter()
                .fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
        }
    }
    Response::new(full(format!("{{\"bytes\":{len},\"sum\":{sum}}}")))
}

fn chunks(delay: Duration) -> Response<Body> {
    let frames = futures_util::stream::unfold(0, move |step| async move {
        match step {
            0 => Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"first\n"))),
                1,
            )),
            1 => {
                tokio::time::sleep(delay).await;
                Some((Ok(Frame::data(Bytes::from_static(b"last\n"))), 2))
            }
            _ => None,
        }
    });
    Response::new(BodyExt::boxed(StreamBody::new(frames)))
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return status(StatusCode::BAD_REQUEST, "not a websocket request\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() || ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut r = status(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = r.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).unwrap_or(HeaderValue::from_static("")),
    );
    r
}
