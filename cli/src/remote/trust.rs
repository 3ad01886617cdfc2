//! How the CLI trusts a server before it sends the admin token: which CA verifies an https://
//! server (the system's roots, plus a private CA's certificate when given), and that plain
//! http:// is only for loopback unless the user said it is insecure and meant it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// What a client of one server trusts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// A PEM file of CA certificates that also verify the server (a private CA).
    pub ca_cert: Option<PathBuf>,
    /// Send the token over plain http:// to a host that is not loopback.
    pub insecure_plain_http: bool,
}

impl Trust {
    /// Refuses a plain-http:// `server` beyond loopback unless insecure plain HTTP was asked for.
    pub fn check_scheme(&self, server: &str) -> anyhow::Result<()> {
        if server.starts_with("http://") && !is_loopback(server) && !self.insecure_plain_http {
            bail!(
                "refusing to send the admin token to {server} over plain http://: anyone on the \
                 network path could read it and take over the server. Serve faaso over https:// \
                 (`faaso server --tls-cert FILE --tls-key FILE`, see docs/TLS.md) and log in to \
                 https://…, or, only on a network you trust, pass --insecure-plain-http"
            );
        }
        Ok(())
    }

    /// The HTTP client builder with this trust: system roots plus the private CA, if any; an
    /// https:// server is never left for plain http:// by a redirect.
    pub fn client_builder(&self, server: &str) -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = reqwest::Client::builder().https_only(server.starts_with("https://"));
        if let Some(path) = &self.ca_cert {
            builder = builder.tls_certs_merge(read_ca(path)?);
        }
        Ok(builder)
    }
}

/// The certificates in the PEM file at `path`; at least one.
fn read_ca(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the CA certificate file {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty());
    match certs {
        Some(certs) => Ok(certs),
        None => bail!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ),
    }
}

/// Whether `server`'s host is `localhost` or a loopback address.
pub fn is_loopback(server: &str) -> bool {
    reqwest::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Whether `error` (or a cause) is a server certificate that did not verify.
pub fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(err) = current {
        let rustls_error = err.downcast_ref::<rustls::Error>().or_else(|| {
            // io::Error hides its inner error from `source()`: look inside.
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        // Some layers wrap the rustls error in their own types; its text is stable.
        if matches!(rustls_error, Some(rustls::Error::InvalidCertificate(_)))
            || err.to_string().contains("invalid peer certificate")
        {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_unless_insecure_is_asked_for() {
        let strict = Trust::default();
        assert!(strict.check_scheme("http://127.0.0.1:8888").is_ok());
        assert!(strict.check_scheme("http://[::1]:8888").is_ok());
        assert!(strict.check_scheme("http://localhost").is_ok());
        assert!(strict.check_scheme("https://faaso.example").is_ok());
        let refused = strict
            .check_scheme("http://faaso.example:8888")
            .unwrap_err();
        assert!(refused.to_string().contains("--insecure-plain-http"));
        assert!(strict.check_scheme("http://10.0.0.5").is_err());
        let insecure = Trust {
            insecure_plain_http: true,
            ..Trust::default()
        };
        assert!(insecure.check_scheme("http://faaso.example:8888").is_ok());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let trust = Trust {
            ca_cert: Some(path),
            ..Trust::default()
        };
        let err = trust.client_builder("https://h").unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        let missing = Trust {
            ca_cert: Some(dir.path().join("nope.pem")),
            ..Trust::default()
        };
        assert!(missing.client_builder("https://h").is_err());
    }
}
