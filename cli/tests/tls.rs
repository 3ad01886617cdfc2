//! HTTPS at the edge with the real `faaso` binary and certificates made here (rcgen): `faaso
//! proxy` serving HTTP/2 and HTTP/1.1 over TLS, reloading its pair, redirecting plain HTTP,
//! refusing bad files at start and closing wrong-protocol or stalled clients quietly; and
//! `faaso login` to a `faaso server` over HTTPS, which verifies the certificate. Needs a Docker
//! engine (discovery, the server's reconciler), no images.

mod common;

use common::certs::TestCa;
use common::process::{Running, free_port, replace, unique_id};

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// Waits until a TLS client that trusts `ca` gets 200 from `/healthz` on `port`.
async fn wait_https(running: &mut Running, port: u16, ca: &TestCa) {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("faaso exited with {status}\n{}", running.log());
        }
        if let Ok(stream) = connect(port, ca, &[b"http/1.1"]).await
            && h1_get(stream, "/healthz").await.0 == 200
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no HTTPS answer on {port} within 60 s\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TLS connection to 127.0.0.1:`port` that trusts only `ca`, offering `alpn`.
async fn connect(port: u16, ca: &TestCa, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(ca.roots())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// The leaf certificate `port` serves, DER.
async fn served_leaf(port: u16, ca: &TestCa) -> Vec<u8> {
    let stream = connect(port, ca, &[b"http/1.1"]).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// `GET path` over an HTTP/1.1 TLS connection: status and headers.
async fn h1_get(stream: TlsStream<TcpStream>, path: &str) -> (u16, hyper::HeaderMap) {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::<hyper::body::Bytes>::new())
        .unwrap();
    match sender.send_request(request).await {
        Ok(response) => (response.status().as_u16(), response.headers().clone()),
        Err(_) => (0, hyper::HeaderMap::new()),
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_serves_https_reloads_its_certificate_and_redirects_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("faaso test CA");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first, first_key) = ca.valid();
    replace(&cert, &first);
    replace(&key, &first_key);
    let (port, redirect) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let redirect_listen = format!("127.0.0.1:{redirect}");
    let mut proxy = Running::start(
        dir.path(),
        &[
            "proxy",
            "--listen",
            &listen,
            "--tls-cert",
            common::arg(&cert),
            "--tls-key",
            common::arg(&key),
            "--hsts",
            "1day",
            "--http-redirect",
            &redirect_listen,
        ],
        &[],
    );
    wait_https(&mut proxy, port, &ca).await;

    // HTTP/1.1 over TLS, with HSTS.
    let (status, headers) = h1_get(
        connect(port, &ca, &[b"http/1.1"]).await.unwrap(),
        "/healthz",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["strict-transport-security"], "max-age=86400");

    // HTTP/2 when the client offers it.
    let stream = connect(port, &ca, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(format!("https://127.0.0.1:{port}/healthz"))
        .body(Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("ok"));

    // Plain HTTP on the redirect port: 308 to the same path over HTTPS.
    let mut plain = TcpStream::connect(("127.0.0.1", redirect)).await.unwrap();
    plain
        .write_all(b"GET /funko/web/a?b=c HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .expect("the redirect listener closes after its answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer.to_lowercase().contains(&format!(
            "location: https://127.0.0.1:{port}/funko/web/a?b=c\r\n"
        )),
        "{answer}"
    );

    // Only to hosts the edge serves (the certificate names localhost too); any other Host is
    // 400 with no Location: never an open redirect.
    for (host, expected) in [
        ("localhost", Some(format!("https://localhost:{port}/x"))),
        ("evil.example", None),
        ("127.0.0.1.evil.example:80", None),
    ] {
        let mut plain = TcpStream::connect(("127.0.0.1", redirect)).await.unwrap();
        let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n");
        plain.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
            .await
            .expect("the redirect listener closes after its answer")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        match expected {
            Some(location) => {
                assert!(answer.starts_with("http/1.1 308"), "{host}: {answer}");
                assert!(
                    answer.contains(&format!("location: {location}\r\n")),
                    "{answer}"
                );
            }
            None => {
                assert!(answer.starts_with("http/1.1 400"), "{host}: {answer}");
                assert!(!answer.contains("location:"), "{host}: {answer}");
            }
        }
    }

    // A new pair renamed in is served from then on, without a restart.
    assert_eq!(served_leaf(port, &ca).await, pem_der(&first));
    let (second, second_key) = ca.valid();
    replace(&key, &second_key);
    replace(&cert, &second);
    let started = Instant::now();
    while served_leaf(port, &ca).await != pem_der(&second) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the new certificate was not served\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A garbage certificate, then an expired one: each refused, the second pair keeps serving.
    replace(
        &cert,
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    );
    proxy
        .wait_for_line("holds a certificate that cannot be parsed")
        .await;
    assert_eq!(served_leaf(port, &ca).await, pem_der(&second));
    let (expired, expired_key) = ca.issue(2000, 2001);
    replace(&key, &expired_key);
    replace(&cert, &expired);
    proxy.wait_for_line("it expired on").await;
    assert_eq!(served_leaf(port, &ca).await, pem_der(&second));
    assert!(
        proxy.log().contains("the previous one keeps serving"),
        "{}",
        proxy.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_in_the_wrong_protocol_or_stalled_are_closed_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("faaso test CA");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (leaf, leaf_key) = ca.valid();
    replace(&cert, &leaf);
    replace(&key, &leaf_key);
    let (tls_port, plain_port) = (free_port(), free_port());
    let (tls_listen, plain_listen) = (
        format!("127.0.0.1:{tls_port}"),
        format!("127.0.0.1:{plain_port}"),
    );
    let mut tls = Running::start(
        dir.path(),
        &[
            "proxy",
            "--listen",
            &tls_listen,
            "--tls-cert",
            common::arg(&cert),
            "--tls-key",
            common::arg(&key),
            "--tls-handshake-timeout",
            "1s",
        ],
        &[],
    );
    let plain = Running::start(
        dir.path(),
        &["proxy", "--listen", &plain_listen, "--header-timeout", "1s"],
        &[],
    );
    wait_https(&mut tls, tls_port, &ca).await;

    // Plain HTTP on the TLS port: no HTTP answer, the connection closes.
    let mut client = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer))
        .await
        .expect("a plain-HTTP client on the TLS port is closed");
    assert!(!answer.starts_with(b"HTTP/1.1 200"));

    // TLS on the plain port: the handshake fails, promptly.
    let mut plain_up = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", plain_port)).await.is_ok() {
            plain_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(plain_up, "{}", plain.log());
    let started = Instant::now();
    assert!(connect(plain_port, &ca, &[b"http/1.1"]).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));

    // A client that opens TLS and never finishes (nothing, or half a ClientHello) is closed
    // after the handshake timeout, not held.
    for opening in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let mut stalled = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
        stalled.write_all(opening).await.unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a stalled handshake was still open after 5 s"
        );
        assert!(started.elapsed() >= Duration::from_millis(800));
    }

    // The server still serves, and none of this was worth a warning.
    wait_https(&mut tls, tls_port, &ca).await;
    let complaints: Vec<String> = tls
        .complaints()
        .into_iter()
        .chain(plain.complaints())
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_certificate_files_stop_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("faaso test CA");
    let (good, good_key) = ca.valid();
    let (_, other_key) = ca.valid();
    let (expired, expired_key) = ca.issue(2000, 2001);
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cases = [
        (
            dir.path().join("missing.pem"),
            write("k1.pem", &good_key),
            "missing.pem",
        ),
        (
            write("garbage.pem", "hello"),
            write("k2.pem", &good_key),
            "holds no PEM certificate",
        ),
        (
            write("good.pem", &good),
            write("other.pem", &other_key),
            "does not belong to the certificate",
        ),
        (
            write("expired.pem", &expired),
            write("k3.pem", &expired_key),
            "it expired on Mon, 01 Jan 2001",
        ),
        (
            write("good2.pem", &good),
            write("nokey.pem", "no key here"),
            "holds no usable PEM private key",
        ),
    ];
    for (cert, key, reason) in cases {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut run = Running::start(
            dir.path(),
            &[
                "proxy",
                "--listen",
                &listen,
                "--tls-cert",
                common::arg(&cert),
                "--tls-key",
                common::arg(&key),
            ],
            &[],
        );
        let started = Instant::now();
        let status = loop {
            if let Some(status) = run.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "faaso proxy kept running with {reason}\n{}",
                run.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!status.success());
        assert!(run.log().contains(reason), "{reason}\n{}", run.log());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_over_https_verifies_the_certificate_and_keeps_the_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("faaso private CA");
    let (cert, key, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    let (leaf, leaf_key) = ca.valid();
    replace(&cert, &leaf);
    replace(&key, &leaf_key);
    replace(&ca_file, &ca.pem);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let admin_port = free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let token = format!("token-{}-0123456789abcdef", unique_id());
    let funkos = dir.path().join("funkos");
    let mut server = Running::start(
        dir.path(),
        &[
            "server",
            common::arg(&funkos),
            "--listen",
            &listen,
            "--admin-listen",
            &admin_listen,
            "--tls-cert",
            common::arg(&cert),
            "--tls-key",
            common::arg(&key),
        ],
        &[("FAASO_TOKEN", &token)],
    );
    wait_https(&mut server, port, &ca).await;
    // One certificate serves both listeners: the login below goes to the admin's over it.
    let base = format!("https://127.0.0.1:{admin_port}");
    let config_home = dir.path().join("config");
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let mut env = env.to_vec();
        env.push(("XDG_CONFIG_HOME", common::arg(&config_home)));
        common::faaso_in(dir.path(), args, &env)
    };
    let config = config_home.join("faaso/config.json");

    // The system's roots do not know the private CA: refused, with how to trust it.
    let refused = cli(&["login", &base, "--token", &token], &[]).failure();
    assert!(refused.stderr.contains("cannot be verified"), "{refused}");
    assert!(refused.stderr.contains("--ca-cert"), "{refused}");
    assert!(!config.exists());

    // With the CA: logged in; the scheme and the CA file are kept, and later commands use them.
    let logged_in = cli(
        &[
            "login",
            &base,
            "--token",
            &token,
            "--ca-cert",
            common::arg(&ca_file),
        ],
        &[],
    )
    .success();
    assert!(
        logged_in.stdout.contains("logged in to https://"),
        "{logged_in}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["server"], base);
    assert_eq!(
        saved["ca_cert"],
        std::fs::canonicalize(&ca_file)
            .unwrap()
            .display()
            .to_string()
    );
    cli(&["version"], &[]).success();

    // A certificate from another CA for the same address is refused by the saved login too.
    let other = TestCa::new("someone else");
    let (foreign, foreign_key) = other.valid();
    replace(&key, &foreign_key);
    replace(&cert, &foreign);
    let started = Instant::now();
    loop {
        let run = cli(&["version"], &[]);
        if run.code != Some(0) {
            assert!(run.stderr.contains("cannot be verified"), "{run}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the foreign certificate was never served\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Plain http:// to a host that is not loopback: refused before anything is sent.
    let plain = cli(&["login", "http://192.0.2.10:8888", "--token", &token], &[]).failure();
    assert!(plain.stderr.contains("--insecure-plain-http"), "{plain}");
    let plain = cli(
        &["--server", "http://192.0.2.10:8888", "status"],
        &[("FAASO_TOKEN", &token)],
    )
    .failure();
    assert!(
        plain.stderr.contains("refusing to send the admin token"),
        "{plain}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_up_serves_https_from_the_mounted_certificate_and_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("faaso test CA");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (leaf, leaf_key) = ca.valid();
    replace(&cert, &leaf);
    replace(&key, &leaf_key);
    let id = unique_id();
    let _cleanup = Namespace(id.clone());
    let (port, redirect) = (free_port(), free_port());
    let (port_arg, redirect_arg) = (port.to_string(), format!("127.0.0.1:{redirect}"));
    let network = format!("{id}-net");
    let env = [
        ("FAASO_PREFIX", id.as_str()),
        ("FAASO_LABELS", id.as_str()),
        ("FAASO_NETWORK", network.as_str()),
    ];
    let up = common::faaso_in(
        dir.path(),
        &[
            "proxy",
            "--tls-cert",
            common::arg(&cert),
            "--tls-key",
            common::arg(&key),
            "--http-redirect",
            &redirect_arg,
            "up",
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
        ],
        &env,
    )
    .success();
    assert!(up.stdout.contains("https://127.0.0.1"), "{up}");

    // The certificate from the host's files, verified, over HTTP/2.
    let stream = connect(port, &ca, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    assert_eq!(
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        pem_der(&leaf)
    );
    // The published redirect port names the published HTTPS port.
    let mut plain = TcpStream::connect(("127.0.0.1", redirect)).await.unwrap();
    plain
        .write_all(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(
        answer.contains(&format!("location: https://127.0.0.1:{port}/x\r\n")),
        "{answer}"
    );
    common::faaso_in(dir.path(), &["proxy", "down"], &env).success();
}

/// Removes the containers, network and image of a namespace when dropped.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        common::cleanup::remove_namespace(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_up_serves_https_and_the_cli_logs_in_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("faaso private CA");
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (cert, key, ca_file) = (
        certs.join("cert.pem"),
        certs.join("key.pem"),
        dir.path().join("ca.pem"),
    );
    let (leaf, leaf_key) = ca.valid();
    replace(&cert, &leaf);
    replace(&key, &leaf_key);
    replace(&ca_file, &ca.pem);
    let id = unique_id();
    let _cleanup = Namespace(id.clone());
    let port = free_port();
    let port_arg = port.to_string();
    let admin_port = free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let network = format!("{id}-net");
    let state = dir.path().join("state");
    let config = dir.path().join("config");
    let env = [
        ("FAASO_PREFIX", id.as_str()),
        ("FAASO_LABELS", id.as_str()),
        ("FAASO_NETWORK", network.as_str()),
        ("FAASO_STATE_DIR", common::arg(&state)),
        ("XDG_CONFIG_HOME", common::arg(&config)),
    ];
    let token = format!("token-{id}-0123456789abcdef");
    let funkos = dir.path().join("funkos");
    let up = common::faaso_in(
        dir.path(),
        &[
            "server",
            common::arg(&funkos),
            "--token",
            &token,
            "--tls-cert",
            common::arg(&cert),
            "--tls-key",
            common::arg(&key),
            "--admin-listen",
            &admin_listen,
            "up",
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
        ],
        &env,
    )
    .success();
    assert!(up.stdout.contains("faaso server is up: https://"), "{up}");

    // The container serves the host's certificate; the CLI logs in over it with the CA.
    assert_eq!(served_leaf(port, &ca).await, pem_der(&leaf));
    assert_eq!(served_leaf(admin_port, &ca).await, pem_der(&leaf));
    assert!(
        up.stdout
            .contains(&format!("https://{admin_listen}/admin/")),
        "{up}"
    );
    let base = format!("https://{admin_listen}");
    common::faaso_in(
        dir.path(),
        &[
            "login",
            &base,
            "--token",
            &token,
            "--ca-cert",
            common::arg(&ca_file),
        ],
        &env,
    )
    .success();
    let status = common::faaso_in(dir.path(), &["status"], &env).success();
    assert!(status.stdout.starts_with("FUNKO"), "{status}");
    common::faaso_in(dir.path(), &["server", "down"], &env).success();
}
