//! Automatic certificates over ACME (RFC 8555): the account and the certificate are kept in the
//! state directory (0600), TLS-ALPN-01 challenges are answered on the TLS listener itself, and
//! the certificate is renewed well before it expires, without a restart. While the ACME server
//! is down or refuses, whatever certificate there is keeps serving and issuing is retried with
//! backoff.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use crate::tls::{CurrentPair, error_chain};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Where and how certificates are obtained.
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// The host names the certificate is for.
    pub names: Vec<String>,
    /// The ACME server's directory URL.
    pub directory: String,
    /// A PEM file whose first certificate is the root that verifies the ACME server, instead
    /// of the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// The folder that keeps the account and the certificate (created 0700).
    pub dir: PathBuf,
    /// A certificate that expires sooner than this is renewed.
    pub renew_before: Duration,
    /// How often the certificate's remaining life is looked at.
    pub check_every: Duration,
}

impl AcmeSettings {
    /// Where the issued certificate is kept: its key and chain in one file, replaced as one,
    /// so that no crash can leave a key beside a certificate it does not belong to.
    pub fn pair_file(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    /// Where an earlier faaso kept the chain and the key, as two files: read when there is no
    /// pair file yet.
    pub(crate) fn legacy_files(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("cert.pem"), self.dir.join("key.pem"))
    }

    fn account_file(&self) -> PathBuf {
        self.dir.join("account.json")
    }
}

/// Why obtaining a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server refused or could not be reached.
    #[error("talking to the ACME server ({what})")]
    Protocol {
        /// What was being done.
        what: &'static str,
        /// What the client said.
        #[source]
        source: instant_acme::Error,
    },
    /// The order did not become ready: a challenge failed.
    #[error(
        "the order ended {0:?}; the CA could not validate the names (is this host reachable under them on the TLS port?)"
    )]
    NotValidated(OrderStatus),
    /// The server offered no TLS-ALPN-01 challenge.
    #[error("the ACME server offers no tls-alpn-01 challenge for {0}")]
    NoTlsAlpnChallenge(String),
    /// Keeping the account or certificate on disk failed.
    #[error("writing {}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The account file cannot be read back.
    #[error("{} is not an ACME account file; remove it to register a new account", path.display())]
    Account {
        /// The file.
        path: PathBuf,
    },
    /// A challenge or issued certificate could not be made into a served one.
    #[error("preparing a certificate: {0}")]
    Certificate(String),
}

fn protocol(what: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |source| AcmeError::Protocol { what, source }
}

/// Challenge certificates being validated, by the name in the validation's SNI.
#[derive(Debug, Default)]
pub(crate) struct Challenges(Mutex<HashMap<String, Arc<CertifiedKey>>>);

impl Challenges {
    /// The challenge certificate for `name`, while one is pending.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn set(&self, name: String, pair: Arc<CertifiedKey>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(name, pair);
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }
}

/// Keeps the served pair certified by the ACME server.
pub(crate) struct Certifier {
    pub(crate) settings: AcmeSettings,
    pub(crate) current: Arc<CurrentPair>,
    pub(crate) provider: Arc<CryptoProvider>,
    /// When the served certificate expires; `None` while a placeholder serves.
    pub(crate) expires: Option<SystemTime>,
}

impl Certifier {
    /// Issues when there is no certificate or it expires within `renew_before`; looks again
    /// every `check_every`. A failure is retried after 2 s, doubling up to an hour (with
    /// jitter, so that many servers do not retry in step), and never stops the serving.
    pub(crate) async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            let wait = if self.due() {
                match self.issue().await {
                    Ok(expires) => {
                        failures = 0;
                        self.expires = Some(expires);
                        self.current.renewed(expires);
                        info!(names = ?self.settings.names, "An ACME certificate was issued and is served from now on.");
                        self.settings.check_every
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures);
                        self.current.renewal_failed();
                        warn!(err = %error_chain(&err), retry_in = ?wait, expires = ?self.expires, "Obtaining a certificate over ACME failed; the current one keeps serving.");
                        wait
                    }
                }
            } else {
                self.settings.check_every
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn due(&self) -> bool {
        self.expires.is_none_or(|expires| {
            expires
                .duration_since(SystemTime::now())
                .map_or(true, |left| left < self.settings.renew_before)
        })
    }

    /// One order, start to end; returns when the new certificate expires.
    async fn issue(&self) -> Result<SystemTime, AcmeError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .settings
            .names
            .iter()
            .map(|name| Identifier::Dns(name.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(protocol("placing an order"))?;
        let result = self.validate_and_finalize(&mut order).await;
        self.current.challenges.clear();
        let (key_pem, chain_pem) = result?;
        // Checked before it is kept: what is on disk always loads.
        let pair =
            crate::tls::pair_from_pem(chain_pem.as_bytes(), key_pem.as_bytes(), &self.provider)
                .map_err(|err| AcmeError::Certificate(error_chain(&err)))?;
        let file = self.settings.pair_file();
        write_private(&file, format!("{key_pem}\n{chain_pem}").as_bytes())?;
        let expires = crate::tls::expiry(&pair)
            .ok_or_else(|| AcmeError::Certificate("the issued certificate has no expiry".into()))?;
        self.current.store(pair);
        Ok(expires)
    }

    /// Answers every pending authorization by TLS-ALPN-01, then finalizes: (key, chain) PEM.
    async fn validate_and_finalize(
        &self,
        order: &mut instant_acme::Order,
    ) -> Result<(String, String), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(protocol("reading an authorization"))?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let name = authorization.identifier().to_string();
            let mut challenge = authorization
                .challenge(ChallengeType::TlsAlpn01)
                .ok_or_else(|| AcmeError::NoTlsAlpnChallenge(name.clone()))?;
            let digest = challenge.key_authorization().digest();
            let pair = challenge_pair(&name, digest.as_ref(), &self.provider)?;
            self.current.challenges.set(name, Arc::new(pair));
            challenge
                .set_ready()
                .await
                .map_err(protocol("announcing a challenge"))?;
        }
        let status = order
            .poll_ready(&RetryPolicy::default())
            .await
            .map_err(protocol("waiting for validation"))?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::NotValidated(status));
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(protocol("finalizing the order"))?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::default())
            .await
            .map_err(protocol("downloading the certificate"))?;
        Ok((key_pem, chain_pem))
    }

    /// The stored account, or a new one registered (and stored 0600).
    async fn account(&self) -> Result<Account, AcmeError> {
        let builder = || match &self.settings.ca_bundle {
            Some(bundle) => Account::builder_with_root(bundle),
            None => Account::builder(),
        };
        let path = self.settings.account_file();
        // An account belongs to one CA: one kept for another directory (staging before
        // production) is replaced by a new registration.
        let kept = std::fs::read_to_string(&path).ok().map(|text| {
            serde_json::from_str::<KeptAccount>(&text)
                .map_err(|_| AcmeError::Account { path: path.clone() })
        });
        if let Some(kept) = kept.transpose()?
            && kept.directory == self.settings.directory
        {
            let credentials = kept.credentials;
            return builder()
                .map_err(protocol("setting up the client"))?
                .from_credentials(credentials)
                .await
                .map_err(protocol("loading the account"));
        }
        let (account, credentials) = builder()
            .map_err(protocol("setting up the client"))?
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(protocol("registering an account"))?;
        let kept = KeptAccount {
            directory: self.settings.directory.clone(),
            credentials,
        };
        let json =
            serde_json::to_vec(&kept).map_err(|err| AcmeError::Certificate(err.to_string()))?;
        write_private(&path, &json)?;
        info!(directory = %self.settings.directory, "Registered an ACME account.");
        Ok(account)
    }
}

/// The account as kept on disk: the directory it was registered with, and its credentials.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Seconds to wait after `failures` failures in a row: 2, 4, 8 … up to an hour, ±25 %.
fn backoff(failures: u32) -> Duration {
    let base = 2u64.saturating_pow(failures.min(12)).min(3600);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = f64::from(nanos % 1000) / 1000.0 * 0.5 + 0.75;
    Duration::from_secs_f64(base as f64 * jitter)
}

/// The self-signed TLS-ALPN-01 certificate for `name` carrying `digest` (RFC 8737 §3).
fn challenge_pair(
    name: &str,
    digest: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, AcmeError> {
    let bad = |err: rcgen::Error| AcmeError::Certificate(err.to_string());
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(bad)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(bad)?;
    certified(cert.der().clone(), key.serialize_der(), provider)
}

/// A self-signed pair for `names` that serves until the first certificate is issued, so the
/// listener is up (and TLS-ALPN-01 can be answered on it) from the start.
pub(crate) fn placeholder(
    names: &[String],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, AcmeError> {
    let bad = |err: rcgen::Error| AcmeError::Certificate(err.to_string());
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = rcgen::CertificateParams::new(names.to_vec())
        .map_err(bad)?
        .self_signed(&key)
        .map_err(bad)?;
    certified(cert.der().clone(), key.serialize_der(), provider)
}

fn certified(
    cert: CertificateDer<'static>,
    pkcs8: Vec<u8>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, AcmeError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| AcmeError::Certificate(err.to_string()))?;
    Ok(CertifiedKey::new(vec![cert], signing))
}

/// Creates the ACME folder (0700) if missing.
pub(crate) fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` readable by its owner only, replacing it atomically (the folder
/// synced too, so the rename survives a crash).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|source| AcmeError::Store {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let secs = |n| backoff(n).as_secs_f64();
        assert!((1.5..=2.5).contains(&secs(1)));
        assert!((3.0..=5.0).contains(&secs(2)));
        assert!((2700.0..=4500.0).contains(&secs(40)));
    }
}
