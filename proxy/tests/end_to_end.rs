//! The proxy against real backend containers and real HTTP.
//!
//! Needs a Docker engine; each test builds its own backend image `FROM scratch`, runs it on its
//! own network and removes everything it made afterwards.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use faaso_proxy::{
    AccessLogDestination, AccessLogFormat, Candidate, Cors, FunkoSettings, InstanceId, ProxyConfig,
};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use support::{Backend, Lab, RunningProxy, empty, full, get, json, send};
use tokio_tungstenite::tungstenite::Message;

fn candidate(backend: &Backend) -> Candidate {
    Candidate {
        id: InstanceId::new(backend.id.as_str()),
        addr: backend.addr,
        health_path: "/ping".into(),
    }
}

fn quiet_config() -> ProxyConfig {
    ProxyConfig {
        access_log: false,
        connect_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    }
}

/// A lab with one ready backend behind a proxy, as funko `hello`.
async fn one_backend(test: &str, config: ProxyConfig) -> (Lab, Backend, RunningProxy) {
    let lab = Lab::new(test);
    let backend = lab.start("a", &[]);
    let proxy = RunningProxy::start(config).await;
    proxy
        .health
        .set_funko("hello", FunkoSettings::default(), vec![candidate(&backend)]);
    proxy.wait_ready("hello", 1).await;
    (lab, backend, proxy)
}

fn header<'a>(headers: &'a hyper::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_passes_with_path_query_and_forwarding_headers() {
    let (_lab, _backend, proxy) = one_backend("methods", quiet_config()).await;
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(proxy.url("/funko/hello/some/path?a=1&b=two"))
            .header("connection", "x-hop")
            .header("x-hop", "must not pass")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-request-id", "abc-123")
            .body(if method == "GET" || method == "HEAD" {
                empty()
            } else {
                full("payload")
            })
            .unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        assert_eq!(header(&headers, "x-echo-method"), method);
        assert_eq!(
            header(&headers, "x-echo-uri"),
            "/some/path?a=1&b=two",
            "{method}"
        );
        assert_eq!(header(&headers, "x-request-id"), "abc-123");
        if method == "HEAD" {
            continue;
        }
        let seen = json(&body);
        let seen = &seen["headers"];
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "http");
        assert_eq!(seen["x-forwarded-prefix"], "/funko/hello");
        assert_eq!(seen["x-forwarded-host"], proxy.addr.to_string());
        assert_eq!(seen["x-request-id"], "abc-123");
        assert!(
            seen.get("x-hop").is_none(),
            "a header named by Connection passed"
        );
    }
    // A request without an id gets one, and the client sees the same one.
    let (_, headers, body) = get(&proxy.url("/funko/hello/")).await;
    let made = header(&headers, "x-request-id").to_owned();
    assert!(!made.is_empty());
    assert_eq!(json(&body)["headers"]["x-request-id"], made.as_str());
}

/// Over TLS the instance hears `X-Forwarded-Proto: https`, and the client gets HSTS when asked
/// for, the edge's value even where a funko sends its own (`max-age=0` would switch HSTS off
/// for every funko on the host); over HTTP/2 as well as HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_instance_hears_https_and_the_client_gets_hsts() {
    use std::sync::Arc;
    use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::ServerName};

    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config = ProxyConfig {
        tls: Some(faaso_proxy::TlsSettings {
            hsts: Some(Duration::from_secs(3600)),
            ..faaso_proxy::TlsSettings::new(cert_file, key_file)
        }),
        ..quiet_config()
    };
    let (_lab, _backend, proxy) = one_backend("tls", config).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let (h1, h2) = (&b"http/1.1"[..], &b"h2"[..]);
    let paths = ["/funko/hello/x", "/funko/hello/edge-headers"];
    for (alpn, path) in [
        (h1, paths[0]),
        (h1, paths[1]),
        (h2, paths[0]),
        (h2, paths[1]),
    ] {
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let io = hyper_util::rt::TokioIo::new(tls);
        let request = Request::get(format!("https://{}{path}", proxy.addr))
            .body(empty())
            .unwrap();
        let response = if alpn == b"h2" {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            let (mut parts, body) = request.into_parts();
            parts.uri = path.parse().unwrap();
            parts
                .headers
                .insert("host", proxy.addr.to_string().parse().unwrap());
            sender
                .send_request(Request::from_parts(parts, body))
                .await
                .unwrap()
        };
        assert_eq!(response.status(), StatusCode::OK);
        let hsts = response.headers().get_all("strict-transport-security");
        assert_eq!(hsts.iter().collect::<Vec<_>>(), ["max-age=3600"], "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if path == paths[0] {
            assert_eq!(json(&body)["headers"]["x-forwarded-proto"], "https");
        }
    }
}

/// A funko cannot widen its service worker's scope beyond its own `/funko/<name>/` prefix to
/// the other funkos on the same origin: the edge drops its `Service-Worker-Allowed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funkos_service_worker_allowed_is_dropped() {
    let (_lab, _backend, proxy) = one_backend("sw", quiet_config()).await;
    let (status, headers, body) = get(&proxy.url("/funko/hello/edge-headers")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "mine\n");
    assert!(
        headers.get("service-worker-allowed").is_none(),
        "{headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_slashed_and_percent_encoded_paths_arrive_as_sent() {
    let (_lab, _backend, proxy) = one_backend("paths", quiet_config()).await;
    for (path, expected) in [
        ("/funko/hello", "/"),
        ("/funko/hello/", "/"),
        ("/funko/hello?x=1", "/?x=1"),
        ("/funko/hello/a%2Fb/c%20d?q=%41%26", "/a%2Fb/c%20d?q=%41%26"),
    ] {
        let (status, headers, _) = get(&proxy.url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&headers, "x-echo-uri"), expected, "{path}");
    }
    // Redirects from a funko pass through untouched.
    let (status, headers, _) = get(&proxy.url("/funko/hello/redirect")).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(header(&headers, "location"), "/elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_stream_up_and_down() {
    let (_lab, _backend, proxy) = one_backend("bodies", quiet_config()).await;
    const SIZE: usize = 10 * 1024 * 1024;
    // Upload in chunks without a Content-Length, so nothing can pre-size a buffer.
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let frames = futures_util::stream::iter(
        (0..SIZE / chunk.len())
            .map(move |_| Ok::<_, support::BoxError>(Frame::data(chunk.clone()))),
    );
    let request = Request::post(proxy.url("/funko/hello/count"))
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["bytes"], SIZE as u64);

    let (status, headers, body) = get(&proxy.url(&format!("/funko/hello/bytes?n={SIZE}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), SIZE.to_string());
    assert_eq!(body.len(), SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_response_streams_before_it_is_complete() {
    let (_lab, _backend, proxy) = one_backend("chunks", quiet_config()).await;
    let started = Instant::now();
    let request = Request::get(proxy.url("/funko/hello/chunks?delay_ms=2000"))
        .body(empty())
        .unwrap();
    let response = support::client().request(request).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"first\n");
    assert!(
        first_at < Duration::from_millis(1500),
        "the first chunk took {first_at:?}, so it waited for the last"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"last\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echoes_through_the_proxy() {
    let (_lab, _backend, proxy) = one_backend("ws", quiet_config()).await;
    let url = format!("ws://{}/funko/hello/ws", proxy.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "wörld", &"x".repeat(100_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_promised_status() {
    let lab = Lab::new("errors");
    let slow = lab.start("slow", &[]);
    let starting = lab.start("starting", &[("READY_AFTER_MS", "600000")]);
    let proxy = RunningProxy::start(quiet_config()).await;
    let quick = FunkoSettings {
        request_timeout: Duration::from_millis(300),
        ..FunkoSettings::default()
    };
    proxy
        .health
        .set_funko("slow", quick, vec![candidate(&slow)]);
    proxy.health.set_funko(
        "starting",
        FunkoSettings::default(),
        vec![candidate(&starting)],
    );
    proxy.wait_ready("slow", 1).await;

    let (status, headers, body) = get(&proxy.url("/funko/nobody/x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert!(json(&body)["error"].as_str().unwrap().contains("nobody"));

    let (status, _, body) = get(&proxy.url("/elsewhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json(&body)["error"].is_string());

    // Known, but its only instance never answered /ping with 2xx: never routed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, headers, body) = get(&proxy.url("/funko/starting/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&headers, "retry-after"), "1");
    assert!(json(&body)["error"].is_string());

    let started = Instant::now();
    let (status, _, body) = get(&proxy.url("/funko/slow/slow?ms=3000")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert!(json(&body)["error"].is_string());
    // The funko itself still answers quick requests.
    assert_eq!(get(&proxy.url("/funko/slow/hello")).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413() {
    let config = ProxyConfig {
        max_body_bytes: 1024 * 1024,
        ..quiet_config()
    };
    let (_lab, _backend, proxy) = one_backend("limit", config).await;
    let big = Bytes::from(vec![1u8; 2 * 1024 * 1024]);
    let request = Request::post(proxy.url("/funko/hello/count"))
        .body(full(big.clone()))
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json(&body)["error"].is_string());
    // Without a Content-Length the limit is found while streaming.
    let frames = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, support::BoxError>(Frame::data(Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>(),
    );
    let request = Request::post(proxy.url("/funko/hello/count"))
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap();
    let (status, _, _) = send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A client that sends its whole body before reading (as curl does) still gets to read the
    // 413 rather than a reset connection.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let head =
            "POST /funko/hello/count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("10000\r\n{}\r\n", "z".repeat(0x10000));
        for _ in 0..24 {
            stream
                .write_all(chunk.as_bytes())
                .await
                .expect("the proxy kept reading the body");
        }
        stream.write_all(b"0\r\n\r\n").await.unwrap();
        let mut answer = vec![0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 413");
    }
    let request = Request::post(proxy.url("/funko/hello/count"))
        .body(full(vec![1u8; 1000]))
        .unwrap();
    assert_eq!(send(request).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_is_retried_on_another_instance_and_ejected() {
    let (_lab, backend, proxy) = one_backend("retry", quiet_config()).await;
    // Nothing listens on port 3001 of the same container: connects there are refused.
    let refusing = InstanceId::new("refusing");
    let mut closed_port = backend.addr;
    closed_port.set_port(3001);
    proxy
        .routes
        .insert_ready("hello", refusing.clone(), closed_port);
    for _ in 0..10 {
        let (status, headers, _) = get(&proxy.url("/funko/hello/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-instance"), "a");
    }
    assert!(
        !proxy.routes.contains("hello", &refusing),
        "the refusing instance was not ejected"
    );
    // A POST body survives the retry too, since not a byte of it was sent.
    proxy
        .routes
        .insert_ready("hello", refusing.clone(), closed_port);
    for _ in 0..4 {
        let request = Request::post(proxy.url("/funko/hello/count"))
            .body(full("12345"))
            .unwrap();
        let (status, _, body) = send(request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["bytes"], 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_closed_under_an_idempotent_request_sends_it_again() {
    let (_lab, _backend, proxy) = one_backend("replay", quiet_config()).await;
    // `/drop-reused` answers the first request on a connection and closes a later one
    // unanswered, as an instance shutting down closes the proxy's kept-alive connections.
    for round in 0..20 {
        let method = if round % 2 == 0 {
            Method::GET
        } else {
            Method::HEAD
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(proxy.url(&format!("/funko/hello/drop-reused?round={round}")))
            .body(empty())
            .unwrap();
        let (status, headers, _) = send(request).await;
        assert_eq!(status, StatusCode::OK, "{method} in round {round}");
        assert_eq!(header(&headers, "x-echo-method"), method.as_str());
    }
    // A request with a body is not sent twice: one that meets a closing connection fails.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let request = Request::post(proxy.url("/funko/hello/drop-reused"))
            .body(full("once"))
            .unwrap();
        let (status, _, body) = send(request).await;
        statuses.push(status);
        if status == StatusCode::BAD_GATEWAY {
            assert!(json(&body)["error"].as_str().unwrap().contains("broke off"));
            return;
        }
    }
    panic!("no POST met a reused connection, so the GETs proved nothing: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_fails_its_request_with_502_then_traffic_moves_on() {
    let lab = Lab::new("kill");
    let a = lab.start("a", &[]);
    let b = lab.start("b", &[]);
    let proxy = RunningProxy::start(quiet_config()).await;
    proxy
        .health
        .set_funko("hello", FunkoSettings::default(), vec![candidate(&a)]);
    proxy.wait_ready("hello", 1).await;
    // The proxy's first request to a: on a new connection, so it is not sent again when the
    // connection breaks (only a kept-alive one may have been closed by a healthy instance).
    let in_flight = {
        let url = proxy.url("/funko/hello/slow?ms=5000");
        tokio::spawn(async move { get(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.health.set_funko(
        "hello",
        FunkoSettings::default(),
        vec![candidate(&a), candidate(&b)],
    );
    proxy.wait_ready("hello", 2).await;
    lab.kill(&a);
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(json(&body)["error"].is_string());
    // a is still in the table until a probe or a connect fails; no request may see that.
    for _ in 0..10 {
        let (status, headers, _) = get(&proxy.url("/funko/hello/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-instance"), "b");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_is_routed_once_ready_and_a_removed_one_gets_nothing() {
    let lab = Lab::new("update");
    let a = lab.start("a", &[]);
    // Three late instances, so one scheduling hiccup of a shared machine does not decide.
    let late = [
        lab.start("b", &[("READY_AFTER_MS", "1500")]),
        lab.start("c", &[("READY_AFTER_MS", "2000")]),
        lab.start("d", &[("READY_AFTER_MS", "2500")]),
    ];
    let proxy = RunningProxy::start(quiet_config()).await;
    let all = std::iter::once(&a).chain(&late).map(candidate).collect();
    proxy
        .health
        .set_funko("hello", FunkoSettings::default(), all);
    // On a loaded machine the first late instance may be ready by the time `a` is.
    proxy.wait_ready_at_least("hello", 1).await;
    let client = support::client();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut lags = std::collections::BTreeMap::new();
    while lags.len() < late.len() {
        assert!(Instant::now() < deadline, "only {lags:?} got traffic");
        let request = Request::get(proxy.url("/funko/hello/hello"))
            .body(empty())
            .unwrap();
        let Ok(response) = client.request(request).await else {
            continue;
        };
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            panic!("{status} during the update: {body:?}");
        }
        let headers = response.headers();
        let instance = header(headers, "x-instance").to_owned();
        if instance != "a" && !lags.contains_key(&instance) {
            let ready_at: u64 = header(headers, "x-ready-at").parse().unwrap();
            lags.insert(instance, unix_micros().saturating_sub(ready_at));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("new instances routed after becoming ready (µs): {lags:?}");
    let mut sorted: Vec<u64> = lags.values().copied().collect();
    sorted.sort();
    assert!(
        sorted[1] < 100_000,
        "new instances were routed this many µs after becoming ready: {lags:?}"
    );

    for backend in &late {
        proxy
            .health
            .remove_instance("hello", &InstanceId::new(backend.id.as_str()));
    }
    for _ in 0..50 {
        let (status, headers, _) = get(&proxy.url("/funko/hello/hello")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-instance"), "a");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_metrics_and_graceful_shutdown() {
    let (_lab, _backend, mut proxy) = one_backend("ops", quiet_config()).await;
    let (status, _, body) = get(&proxy.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["status"], "ok");
    assert_eq!(get(&proxy.url("/funko/hello/")).await.0, StatusCode::OK);
    let (_, _, body) = get(&proxy.url("/metrics")).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("faaso_proxy_requests_total{funko=\"hello\",code=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("faaso_proxy_ready_instances{funko=\"hello\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("faaso_proxy_request_duration_seconds_count{funko=\"hello\"} 1"),
        "{text}"
    );

    // A request in flight when shutdown starts still gets its answer.
    let in_flight = {
        let url = proxy.url("/funko/hello/slow?ms=800");
        tokio::spawn(async move { get(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = proxy.shutdown();
    let (status, _, _) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_and_oversized_heads_refused() {
    let config = ProxyConfig {
        max_header_bytes: 16 * 1024,
        ..quiet_config()
    };
    let (_lab, _backend, proxy) = one_backend("h2c", config).await;
    let h2: hyper_util::client::legacy::Client<_, support::TestBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let request = Request::get(proxy.url("/funko/hello/h2?x=1"))
        .body(empty())
        .unwrap();
    let response = h2.request(request).await.expect("h2c request");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let seen = json(&body);
    assert_eq!(seen["uri"], "/h2?x=1");
    // The instance still learns the host the client asked for.
    assert_eq!(seen["headers"]["x-forwarded-host"], proxy.addr.to_string());

    let request = Request::get(proxy.url("/funko/hello/"))
        .header("x-big", "y".repeat(32 * 1024))
        .body(empty())
        .unwrap();
    let (status, _, _) = send(request).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

/// Every answered request leaves one access-log line with its fields (here JSON lines in a
/// file): forwarded ones name their instance and request id, unrouted ones too; the lines are
/// written by the proxy on its own within its flush interval, and the last ones at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_a_line_per_request_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let config = ProxyConfig {
        access_log: true,
        access_log_format: AccessLogFormat::Json,
        access_log_destination: AccessLogDestination::File(path.clone()),
        ..quiet_config()
    };
    let (_lab, backend, mut proxy) = one_backend("access-log", config).await;
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    let request = Request::post(proxy.url("/funko/hello/log/me?x=1"))
        .header("x-request-id", "from-the-client")
        .body(full("payload"))
        .unwrap();
    assert_eq!(send(request).await.0, StatusCode::OK);
    assert_eq!(
        get(&proxy.url("/funko/nobody/")).await.0,
        StatusCode::NOT_FOUND
    );
    // Written without a shutdown, within the flush interval (allowing for a busy machine).
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines().len() < 2 {
        assert!(Instant::now() < deadline, "lines: {:?}", lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logged = lines();
    assert_eq!(logged.len(), 2, "{logged:?}");
    // Each event loop keeps its own batch: lines of different loops need not be in order.
    let find = |logged: &[serde_json::Value], uri: &str| -> serde_json::Value {
        let found = logged.iter().find(|line| line["uri"] == uri);
        found.unwrap_or_else(|| panic!("no line for {uri}")).clone()
    };
    let forwarded = &find(&logged, "/funko/hello/log/me?x=1");
    assert_eq!(forwarded["method"], "POST");
    assert_eq!(forwarded["uri"], "/funko/hello/log/me?x=1");
    assert_eq!(forwarded["funko"], "hello");
    assert_eq!(forwarded["status"], 200);
    assert_eq!(forwarded["instance"], backend.addr.to_string());
    assert_eq!(forwarded["request_id"], "from-the-client");
    assert!(forwarded["micros"].as_u64().unwrap() > 0);
    let unrouted = &find(&logged, "/funko/nobody/");
    assert_eq!(unrouted["status"], 404);
    let (_, _, body) = get(&proxy.url("/metrics")).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("faaso_proxy_access_log_dropped_total 0\n"),
        "{text}"
    );

    // Lines recorded just before a shutdown are written by it.
    for i in 0..50 {
        let url = proxy.url(&format!("/funko/hello/last/{i}"));
        assert_eq!(get(&url).await.0, StatusCode::OK);
    }
    tokio::time::timeout(Duration::from_secs(5), proxy.shutdown())
        .await
        .unwrap()
        .unwrap();
    let logged = lines();
    assert_eq!(logged.len(), 52);
    assert_eq!(find(&logged, "/funko/hello/last/49")["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_by_the_proxy_and_allowed_origins_marked() {
    let lab = Lab::new("cors");
    let backend = lab.start("a", &[]);
    let proxy = RunningProxy::start(quiet_config()).await;
    let cors = Cors::new(
        &["https://app.example".into()],
        &["GET".into(), "PUT".into()],
        &["Content-Type".into()],
        Duration::from_secs(600),
        false,
    )
    .unwrap();
    let settings = FunkoSettings {
        cors: Some(std::sync::Arc::new(cors)),
        ..FunkoSettings::default()
    };
    proxy
        .health
        .set_funko("hello", settings.clone(), vec![candidate(&backend)]);
    // A funko with no instance at all: its preflight needs none.
    proxy.health.set_funko("asleep", settings, vec![]);
    proxy.wait_ready("hello", 1).await;

    let preflight = |funko: &str, origin: &str| {
        Request::options(proxy.url(&format!("/funko/{funko}/things")))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .body(empty())
            .unwrap()
    };
    for funko in ["hello", "asleep"] {
        let (status, headers, _) = send(preflight(funko, "https://app.example")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{funko}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            "https://app.example"
        );
        assert_eq!(header(&headers, "access-control-allow-methods"), "GET, PUT");
        assert_eq!(
            header(&headers, "access-control-allow-headers"),
            "Content-Type"
        );
        assert_eq!(header(&headers, "access-control-max-age"), "600");
    }
    let (status, headers, _) = send(preflight("hello", "https://evil.example")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(header(&headers, "access-control-allow-origin"), "");

    // The real request reaches the instance and comes back marked for an allowed origin only.
    let request = |origin: &str| {
        Request::get(proxy.url("/funko/hello/hello"))
            .header("origin", origin)
            .body(empty())
            .unwrap()
    };
    let (status, headers, _) = send(request("https://app.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(header(&headers, "vary"), "Origin");
    let (status, headers, _) = send(request("https://evil.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "access-control-allow-origin"), "");
    // An OPTIONS that is no preflight is the funko's own business.
    let plain = Request::options(proxy.url("/funko/hello/hello"))
        .body(empty())
        .unwrap();
    let (_, headers, _) = send(plain).await;
    assert_eq!(header(&headers, "access-control-allow-methods"), "");
    let (_, _, metrics) = get(&proxy.url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("funko=\"asleep\""),
        "preflights are counted like any request: {metrics}"
    );
}

/// Beyond `max_connections` open clients a new one is closed on arrival and counted; once one
/// leaves, clients are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_connection_cap_are_closed_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ProxyConfig {
        max_connections: 2,
        ..quiet_config()
    };
    let (_lab, _backend, proxy) = one_backend("conncap", config).await;
    let held: Vec<_> =
        futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(proxy.addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    // The two are accepted (each counted open) before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /funko/hello/x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the third client was served: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    // Room again: served, and the refusal is on /metrics.
    let started = Instant::now();
    let metrics = loop {
        let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let request = b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let mut answer = Vec::new();
        if client.write_all(request).await.is_ok()
            && let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut answer)).await
            && answer.starts_with(b"HTTP/1.1 200")
        {
            break String::from_utf8_lossy(&answer).into_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The third client, and any /metrics attempt made before the first two had closed.
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("faaso_proxy_connections_refused_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "{metrics}");
}

/// An HTTP/2 client runs at most `h2_max_streams` requests at once on one connection: with
/// one, two slow requests sent together are answered one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_gets_at_most_its_streams_at_once() {
    let config = ProxyConfig {
        h2_max_streams: 1,
        ..quiet_config()
    };
    let (_lab, _backend, proxy) = one_backend("h2streams", config).await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    // Let the server's SETTINGS arrive before the requests go.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let requests = (0..2).map(|_| {
        let mut sender = sender.clone();
        async move {
            let request = Request::get(format!("http://{}/funko/hello/slow?ms=400", proxy.addr))
                .body(empty())
                .unwrap();
            sender.send_request(request).await.unwrap().status()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "both ran at once: {:?}",
        started.elapsed()
    );
}
