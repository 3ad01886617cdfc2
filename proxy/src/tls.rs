//! TLS at the edge: the certificate pair is read and checked, served to every handshake, and
//! replaced when its files change (a bad new pair is refused and the old one keeps serving), or
//! kept certified over ACME (acme.rs).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use crate::acme::{self, ACME_TLS_ALPN, AcmeSettings, Certifier, Challenges};

/// How the proxy terminates TLS.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How long a client may take to finish its handshake.
    pub handshake_timeout: Duration,
    /// How often the files are looked at for a change.
    pub reload_every: Duration,
    /// `Strict-Transport-Security: max-age=<this>` on every answer over TLS, when set.
    pub hsts: Option<Duration>,
    /// Where a plain-HTTP listener that only redirects to HTTPS listens, when set.
    pub redirect_listen: Option<SocketAddr>,
    /// The port redirects name (the one clients reach the TLS listener on).
    pub https_port: u16,
    /// Obtain and renew the pair over ACME instead of reading `cert` and `key`.
    pub acme: Option<AcmeSettings>,
}

impl TlsSettings {
    /// Settings for `cert` and `key` with the other knobs at their defaults.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert,
            key,
            handshake_timeout: Duration::from_secs(10),
            reload_every: Duration::from_secs(2),
            hsts: None,
            redirect_listen: None,
            https_port: 443,
            acme: None,
        }
    }
}

/// Why a certificate pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the file cannot be parsed.
    #[error("{} holds a certificate that cannot be parsed: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The certificate is outside its validity period.
    #[error("the certificate in {} is not valid now: {reason}", path.display())]
    NotValidNow {
        /// The file.
        path: PathBuf,
        /// Expired or not yet valid, with the date.
        reason: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("{} holds no usable PEM private key", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The key does not belong to the certificate.
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the settings.
    #[error("setting up TLS")]
    Config(#[source] rustls::Error),
    /// The ACME folder or the placeholder certificate could not be made.
    #[error("preparing automatic certificates")]
    Acme(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The pair in `cert` and `key`, checked: it parses, is valid now, and the key matches.
pub fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    parse_pair(&read(cert)?, &read(key)?, cert, key, provider)
}

/// A freshly issued pair from its PEM text, checked as [`load_pair`] checks files.
pub(crate) fn pair_from_pem(
    chain: &[u8],
    key: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let issued = Path::new("the issued certificate");
    parse_pair(chain, key, issued, issued, provider)
}

/// The pair in `cert_pem` and `key_pem` (read from `cert` and `key`, named in errors).
fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::BadCertificate {
            path: cert.to_owned(),
            reason: err.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    };
    check_validity(cert, leaf)?;
    let no_key = |source: Box<dyn std::error::Error + Send + Sync>| TlsError::NoKey {
        path: key.to_owned(),
        source,
    };
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| no_key(e.into()))?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| no_key(e.into()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
    })?;
    Ok(pair)
}

/// Refuses a leaf certificate that has expired or is not valid yet: serving it would only make
/// every client fail, later and less clearly.
fn check_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf).map_err(|err| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let validity = parsed.validity();
    let not_valid = |reason: String| TlsError::NotValidNow {
        path: path.to_owned(),
        reason,
    };
    if validity.not_after.timestamp() < now {
        return Err(not_valid(format!(
            "it expired on {}",
            date(&validity.not_after)
        )));
    }
    if validity.not_before.timestamp() > now {
        return Err(not_valid(format!(
            "it is valid only from {}",
            date(&validity.not_before)
        )));
    }
    Ok(())
}

fn date(time: &x509_parser::time::ASN1Time) -> String {
    time.to_rfc2822().unwrap_or_else(|_| time.to_string())
}

/// When `pair`'s leaf certificate expires.
pub(crate) fn expiry(pair: &CertifiedKey) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(pair.cert.first()?).ok()?;
    let secs = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The certificate an earlier run kept, if one loads: the pair file, else the two files an
/// earlier faaso wrote. One that does not load is said, not silently replaced by the placeholder.
fn kept_pair(acme: &AcmeSettings, provider: &Arc<CryptoProvider>) -> Option<CertifiedKey> {
    let file = acme.pair_file();
    let (cert, key) = if file.exists() {
        (file.clone(), file)
    } else {
        acme.legacy_files()
    };
    if !cert.exists() {
        return None;
    }
    match load_pair(&cert, &key, provider) {
        Ok(pair) => Some(pair),
        Err(err) => {
            tracing::error!(file = %cert.display(), err = %error_chain(&err), "The kept ACME certificate cannot be served; a placeholder serves until a new one is issued.");
            None
        }
    }
}

/// Whether `pair`'s leaf names every one of `names` (DNS subject alternative names).
pub(crate) fn names_all(pair: &CertifiedKey, names: &[String]) -> bool {
    leaf_names(pair, |general_names| {
        names.iter().all(|name| {
            general_names.iter().any(|general| {
                matches!(general, x509_parser::extensions::GeneralName::DNSName(dns)
                    if dns.eq_ignore_ascii_case(name))
            })
        })
    })
}

/// `check` of the subject alternative names of `pair`'s leaf; false when it has none or does
/// not parse.
fn leaf_names(
    pair: &CertifiedKey,
    check: impl FnOnce(&[x509_parser::extensions::GeneralName<'_>]) -> bool,
) -> bool {
    let Some(Ok((_, parsed))) = pair
        .cert
        .first()
        .map(|der| x509_parser::parse_x509_certificate(der))
    else {
        return false;
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return false;
    };
    check(&san.value.general_names)
}

/// Whether `pair`'s leaf is valid for `host`: a DNS name its subject alternative names hold
/// (a wildcard covering one label), or an IP address they hold (bracketed for IPv6 or not).
pub(crate) fn names_host(pair: &CertifiedKey, host: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    leaf_names(pair, |general_names| {
        general_names.iter().any(|general| match general {
            GeneralName::DNSName(dns) => dns_matches(dns, host),
            GeneralName::IPAddress(bytes) => ip.is_some_and(|ip| match ip {
                std::net::IpAddr::V4(v4) => *bytes == v4.octets(),
                std::net::IpAddr::V6(v6) => *bytes == v6.octets(),
            }),
            _ => false,
        })
    })
}

/// Whether the certificate name `pattern` (`name` or `*.rest`) covers `host`.
fn dns_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, parent)| !label.is_empty() && parent.eq_ignore_ascii_case(rest)),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// The pair every handshake gets (replaced whole, read without a lock), and the ACME
/// challenge certificates that validation handshakes get instead.
pub(crate) struct CurrentPair {
    served: ArcSwap<CertifiedKey>,
    pub(crate) challenges: Challenges,
    /// Failed ACME orders since the last one that succeeded, for `/metrics`.
    failures: std::sync::atomic::AtomicU64,
    /// When the last ACME order failed (seconds since the Unix epoch; 0: none since start).
    failed_at: std::sync::atomic::AtomicU64,
}

impl CurrentPair {
    /// Serves `pair` to every handshake from now on.
    pub(crate) fn store(&self, pair: CertifiedKey) {
        self.served.store(Arc::new(pair));
    }

    /// An ACME order failed: counted, and when.
    pub(crate) fn renewal_failed(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.failures.fetch_add(1, Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.failed_at.store(now, Relaxed);
    }

    /// A certificate expiring at `expires` was issued: the failures are over.
    pub(crate) fn renewed(&self, expires: SystemTime) {
        let _ = expires;
        self.failures.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// The served certificate's expiry and the ACME failures, as Prometheus lines: an operator
    /// alerts on a certificate that keeps being served while its renewal fails.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(expires) = expiry(&self.served.load()) {
            let secs = expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(
                out,
                "# HELP faaso_tls_certificate_expiry_seconds When the served certificate expires (Unix time).\n# TYPE faaso_tls_certificate_expiry_seconds gauge\nfaaso_tls_certificate_expiry_seconds {secs}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP faaso_acme_failed_orders ACME orders failed in a row since the last certificate was issued.\n# TYPE faaso_acme_failed_orders gauge\nfaaso_acme_failed_orders {}\n# HELP faaso_acme_last_failure_seconds When the last ACME order failed (Unix time; 0: none since start).\n# TYPE faaso_acme_last_failure_seconds gauge\nfaaso_acme_last_failure_seconds {}",
            self.failures.load(Relaxed),
            self.failed_at.load(Relaxed)
        );
    }
}

impl fmt::Debug for CurrentPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentPair").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CurrentPair {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if validation {
            // Only the challenge certificate answers a validation (RFC 8737 §3).
            return self.challenges.get(hello.server_name()?);
        }
        Some(self.served.load_full())
    }
}

/// The TLS side of a bound proxy: the acceptor, and what it needs to keep its pair fresh.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) settings: TlsSettings,
    current: Arc<CurrentPair>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edge")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// Loads the pair (any fault stops the start) and sets up HTTP/2 and HTTP/1.1 by ALPN.
    /// With ACME, the pair kept from an earlier run serves, or else a self-signed placeholder
    /// until the first certificate is issued.
    pub(crate) fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = match &settings.acme {
            None => load_pair(&settings.cert, &settings.key, &provider)?,
            Some(acme) => {
                acme::ensure_dir(&acme.dir).map_err(|err| TlsError::Acme(err.into()))?;
                match kept_pair(acme, &provider) {
                    Some(pair) => pair,
                    None => acme::placeholder(&acme.names, &provider)
                        .map_err(|err| TlsError::Acme(err.into()))?,
                }
            }
        };
        let current = Arc::new(CurrentPair {
            served: ArcSwap::from_pointee(pair),
            challenges: Challenges::default(),
            failures: Default::default(),
            failed_at: Default::default(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if settings.acme.is_some() {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            settings,
            current,
            provider,
        })
    }

    /// Whether the edge serves `host` over TLS: one of its ACME names, or a name or address
    /// its current certificate is valid for. Redirects go to such hosts only.
    pub(crate) fn serves(&self, host: &str) -> bool {
        let acme = self.settings.acme.as_ref();
        acme.is_some_and(|a| a.names.iter().any(|n| n.eq_ignore_ascii_case(host)))
            || names_host(&self.current.served.load(), host)
    }

    /// The served certificate's expiry and, with ACME, its renewal failures, for `/metrics`.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        self.current.render_metrics(out);
    }

    /// Keeps the served pair fresh: certified over ACME, or else read again when its files
    /// change.
    pub(crate) async fn keep_fresh(self) {
        match self.settings.acme.clone() {
            Some(settings) => {
                let served = self.current.served.load();
                let expires = expiry(&served);
                // A kept certificate that names every configured host is renewed when due; a
                // placeholder, or one for other names, is replaced at once.
                let kept = kept_pair(&settings, &self.provider).is_some()
                    && expires.is_some()
                    && names_all(&served, &settings.names);
                Certifier {
                    settings,
                    current: self.current.clone(),
                    provider: self.provider.clone(),
                    expires: if kept { expires } else { None },
                }
                .run()
                .await;
            }
            None => self.reload_on_change().await,
        }
    }

    /// Looks at the files every `reload_every`; a changed pair that loads replaces the served
    /// one, one that does not is logged once and the old one keeps serving. Polling (not
    /// inotify) also sees a certificate renamed in or a symlink swapped, as certbot does.
    async fn reload_on_change(self) {
        let stamp = |s: &TlsSettings| (file_stamp(&s.cert), file_stamp(&s.key));
        let mut seen = stamp(&self.settings);
        let mut tick = tokio::time::interval(self.settings.reload_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&self.settings);
            if now == seen {
                continue;
            }
            seen = now;
            let (cert, key) = (&self.settings.cert, &self.settings.key);
            match load_pair(cert, key, &self.provider) {
                Ok(pair) => {
                    self.current.store(pair);
                    info!(cert = %cert.display(), "The TLS certificate changed on disk and is served from now on.");
                }
                Err(err) => error!(
                    err = %error_chain(&err),
                    "The new TLS certificate pair is refused; the previous one keeps serving."
                ),
            }
        }
    }
}

/// What tells a file changed: its modification time, size and inode (through symlinks).
fn file_stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// An error and its causes on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    /// A self-signed pair for 127.0.0.1, valid from the start of year `from` to that of `to`.
    fn pair(from: i32, to: i32) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(dir: &Path, cert: &str, key: &str) -> Result<CertifiedKey, TlsError> {
        load_pair(
            &write(dir, "cert.pem", cert),
            &write(dir, "key.pem", key),
            &provider(),
        )
    }

    /// A redirect may name the certificate's names and addresses (a wildcard one label deep),
    /// and nothing else.
    #[test]
    fn a_certificate_names_its_hosts_and_no_others() {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = ["faaso.example", "*.apps.example", "127.0.0.1", "::1"];
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pair = load(dir.path(), &cert.pem(), &key.serialize_pem()).unwrap();
        for host in [
            "faaso.example",
            "FAASO.example",
            "a.apps.example",
            "127.0.0.1",
            "[::1]",
        ] {
            assert!(names_host(&pair, host), "{host}");
        }
        for host in [
            "evil.example",
            "apps.example",
            "a.b.apps.example",
            "127.0.0.2",
            "faaso",
        ] {
            assert!(!names_host(&pair, host), "{host}");
        }
    }

    #[test]
    fn a_pair_names_all_of_its_hosts_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names = vec!["a.example".to_owned(), "b.example".to_owned()];
        let cert = rcgen::CertificateParams::new(names.clone())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pair = load(dir.path(), &cert.pem(), &key.serialize_pem()).unwrap();
        assert!(names_all(&pair, &names));
        assert!(names_all(&pair, &["B.example".to_owned()]));
        assert!(!names_all(
            &pair,
            &["a.example".to_owned(), "c.example".to_owned()]
        ));
        assert!(expiry(&pair).is_some());
    }

    #[test]
    fn a_good_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(2000, 4000);
        load(dir.path(), &cert, &key).unwrap();
    }

    #[test]
    fn bad_pairs_are_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(2000, 4000);
        let (_, other_key) = pair(2000, 4000);
        let message = |r: Result<CertifiedKey, TlsError>| error_chain(&r.unwrap_err());

        let missing = load_pair(
            &dir.path().join("nope.pem"),
            &write(dir.path(), "key.pem", &key),
            &provider(),
        );
        assert!(message(missing).contains("nope.pem"));
        let garbage = message(load(dir.path(), "not a certificate\n", &key));
        assert!(garbage.contains("holds no PEM certificate"), "{garbage}");
        let mismatched = message(load(dir.path(), &cert, &other_key));
        assert!(mismatched.contains("does not belong"), "{mismatched}");
        let no_key = message(load(dir.path(), &cert, "garbage"));
        assert!(no_key.contains("no usable PEM private key"), "{no_key}");
        let (old, old_key) = pair(2000, 2001);
        let expired = message(load(dir.path(), &old, &old_key));
        assert!(expired.contains("expired on"), "{expired}");
        let (future, future_key) = pair(3000, 4000);
        let early = message(load(dir.path(), &future, &future_key));
        assert!(early.contains("valid only from"), "{early}");
    }
}
