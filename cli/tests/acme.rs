//! Automatic certificates against a real ACME server on loopback: Debian's `pebble` (with
//! `pebble-challtestsrv` answering its DNS with 127.0.0.1), never a public CA. `faaso proxy`
//! starts while the ACME server is down and serves anyway, retries (also while it refuses every
//! request), obtains a certificate by
//! TLS-ALPN-01 on its own port once the server is up, keeps it 0600, renews it without a restart,
//! and after a restart with the ACME server down serves the kept one. Needs `pebble`
//! (`scripts/host-tools --test`) and a Docker engine (discovery); no images.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::TestCa;
use common::process::{Running, free_port};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// The name the certificate is for; challtestsrv resolves every name to 127.0.0.1.
const NAME: &str = "faaso-acme.test";

/// A helper process of this test, stopped by pid when dropped.
struct Helper(Child);

impl Helper {
    fn start(program: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} should start (scripts/host-tools --test): {e}"));
        Self(child)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pebble and its DNS, with pebble's HTTPS certificate issued by `tls_ca`.
struct Pebble {
    _dns: Helper,
    _pebble: Helper,
    management: u16,
}

/// Ports and files that stay the same across pebble restarts.
struct PebbleSetup {
    config: std::path::PathBuf,
    dns: u16,
    dns_management: u16,
    listen: u16,
    management: u16,
}

impl PebbleSetup {
    fn new(dir: &Path, tls_ca: &TestCa, validate_on: u16) -> Self {
        let (cert, key) = tls_ca.valid();
        std::fs::write(dir.join("pebble-cert.pem"), cert).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key).unwrap();
        let setup = Self {
            config: dir.join("pebble.json"),
            dns: free_port(),
            dns_management: free_port(),
            listen: free_port(),
            management: free_port(),
        };
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", setup.listen),
            "managementListenAddress": format!("127.0.0.1:{}", setup.management),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": free_port(),
            "tlsPort": validate_on,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(&setup.config, config.to_string()).unwrap();
        setup
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    /// Starts pebble; `nonce_reject` is the percentage of good nonces it refuses (100: it
    /// refuses every request).
    fn start(&self, dir: &Path, nonce_reject: u8) -> Pebble {
        let dns = Helper::start(
            "pebble-challtestsrv",
            &[
                "-defaultIPv6",
                "",
                "-dns01",
                &format!("127.0.0.1:{}", self.dns),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{}", self.dns_management),
            ],
            &[],
            &dir.join("challtestsrv.log"),
        );
        let pebble = Helper::start(
            "pebble",
            &[
                "-config",
                self.config.to_str().unwrap(),
                "-dnsserver",
                &format!("127.0.0.1:{}", self.dns),
            ],
            &[
                ("PEBBLE_VA_NOSLEEP", "1"),
                ("PEBBLE_WFE_NONCEREJECT", &nonce_reject.to_string()),
            ],
            &dir.join("pebble.log"),
        );
        Pebble {
            _dns: dns,
            _pebble: pebble,
            management: self.management,
        }
    }
}

impl Pebble {
    /// Pebble's root certificate, which it makes anew at each start.
    async fn root(&self, tls_ca: &TestCa) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(tls_ca.pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let started = Instant::now();
        loop {
            if let Ok(answer) = client.get(&url).send().await
                && answer.status().is_success()
            {
                return answer.text().await.unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pebble did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The leaf that `port` serves to a client asking for [`NAME`] that trusts only `root`, or
/// `None` when it does not verify.
async fn verified_leaf(port: u16, root_pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root_pem.as_bytes()).ok()?)
        .ok()?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = ServerName::try_from(NAME).ok()?;
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    Some(stream.get_ref().1.peer_certificates()?[0].to_vec())
}

/// Whether `https://127.0.0.1:port/healthz` answers 200, whatever certificate is served.
async fn answers_https(port: u16) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn start_faaso(dir: &Path, port: u16, setup: &PebbleSetup, tls_ca: &Path) -> Running {
    let listen = format!("127.0.0.1:{port}");
    let directory = setup.directory();
    Running::start(
        dir,
        &[
            "proxy",
            "--listen",
            &listen,
            "--acme-domain",
            NAME,
            "--acme-directory",
            &directory,
            "--acme-ca-cert",
            tls_ca.to_str().unwrap(),
            // Every check renews (pebble's certificates last five years), so renewal is seen.
            "--acme-renew-before",
            "100000days",
            "--acme-check-every",
            "3s",
        ],
        &[],
    )
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, log: impl Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {what}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_is_obtained_over_acme_kept_private_renewed_and_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tls_ca = TestCa::new("pebble's own HTTPS CA");
    let tls_ca_file = dir.path().join("acme-ca.pem");
    std::fs::write(&tls_ca_file, &tls_ca.pem).unwrap();
    let port = free_port();
    let setup = PebbleSetup::new(dir.path(), &tls_ca, port);

    // The ACME server is down: faaso starts anyway, serves HTTPS, and says it will retry.
    let proxy = start_faaso(dir.path(), port, &setup, &tls_ca_file);
    wait_until(
        Duration::from_secs(60),
        "HTTPS before any certificate",
        || proxy.log(),
        || answers_https(port),
    )
    .await;
    proxy
        .wait_for_line("Obtaining a certificate over ACME failed")
        .await;
    assert!(proxy.log().contains("retry_in="), "{}", proxy.log());

    // An ACME server that refuses every request: still serving, still retrying.
    let refusing = setup.start(dir.path(), 100);
    proxy.wait_for_line("badNonce").await;
    assert!(answers_https(port).await);
    drop(refusing);

    // Once it works, the retry obtains a certificate that verifies against pebble's root.
    let pebble = setup.start(dir.path(), 0);
    let root = pebble.root(&tls_ca).await;
    let started = Instant::now();
    let first = loop {
        if let Some(leaf) = verified_leaf(port, &root).await {
            break leaf;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no certificate from pebble\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let acme = dir.path().join("state/acme");
    // The key and the chain are one file, replaced as one: no crash leaves a mixed pair.
    for file in ["account.json", "certificate.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(acme.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // Renewal replaces it without a restart.
    wait_until(
        Duration::from_secs(60),
        "a renewed certificate",
        || proxy.log(),
        || async {
            verified_leaf(port, &root)
                .await
                .is_some_and(|leaf| leaf != first)
        },
    )
    .await;

    // Restarted with the ACME server gone, faaso serves the certificate it kept.
    drop(proxy);
    drop(pebble);
    let kept = std::fs::read_to_string(acme.join("certificate.pem")).unwrap();
    let restarted = start_faaso(dir.path(), port, &setup, &tls_ca_file);
    wait_until(
        Duration::from_secs(60),
        "the kept certificate",
        || restarted.log(),
        || async { verified_leaf(port, &root).await.is_some() },
    )
    .await;
    let served = verified_leaf(port, &root).await.unwrap();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let kept_leaf = CertificateDer::from_pem_slice(kept.as_bytes()).unwrap();
    assert_eq!(served, kept_leaf.to_vec());
    // Its renewal fails (the ACME server is gone): said in /metrics beside the expiry, while
    // the kept certificate goes on serving.
    wait_until(
        Duration::from_secs(60),
        "the failed renewal in /metrics",
        || restarted.log(),
        || async {
            let metrics = https_text(port, "/metrics").await.unwrap_or_default();
            let value = |name: &str| {
                metrics
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} ")))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            value("faaso_acme_failed_orders").is_some_and(|n| n >= 1)
                && value("faaso_acme_last_failure_seconds").is_some_and(|t| t > 0)
                && value("faaso_tls_certificate_expiry_seconds").is_some_and(|t| t > 0)
        },
    )
    .await;
    assert_eq!(
        verified_leaf(port, &root).await.unwrap(),
        kept_leaf.to_vec()
    );
}

/// The body of `https://127.0.0.1:port<path>`, whatever certificate is served.
async fn https_text(port: u16, path: &str) -> Option<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = client
        .get(format!("https://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    response.text().await.ok()
}
