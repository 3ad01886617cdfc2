//! The saved login: `{server, token, ca_cert?, insecure_plain_http?}` in `$XDG_CONFIG_HOME/faaso/config.json` (or
//! `~/.config/faaso/config.json`), readable by its owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The server `faaso login` was last given, and its token.
#[derive(Clone, Serialize, Deserialize)]
pub struct Login {
    /// The server's base URL, without a trailing `/`.
    pub server: String,
    /// The admin bearer token.
    pub token: String,
    /// The private CA's certificate file that verifies the server (an absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// The user accepted sending the token over plain HTTP to this (non-loopback) server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_plain_http: bool,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Where the login is kept.
pub fn config_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!(
                "neither XDG_CONFIG_HOME nor HOME is set; faaso has nowhere to keep the login"
            ),
        },
    };
    Ok(base.join("faaso").join("config.json"))
}

impl Login {
    /// What a client of this login's server trusts.
    pub fn trust(&self) -> super::Trust {
        super::Trust {
            ca_cert: self.ca_cert.clone(),
            insecure_plain_http: self.insecure_plain_http,
        }
    }

    /// The saved login, if there is one.
    pub fn load() -> anyhow::Result<Option<Self>> {
        let path = config_path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "{} is not a faaso login; run `faaso logout` and log in again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Saves the login (folder 0700, file 0600, replaced atomically); returns where.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = config_path()?;
        let dir = path.parent().expect("the config file is inside a folder");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Removes the saved login; `None` when there was none.
    pub fn remove() -> anyhow::Result<Option<PathBuf>> {
        let path = config_path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Some(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

/// `url` as a server base URL: `http(s)://host[:port][/path]` without a trailing `/`; a bare
/// `host:port` means `http://`.
pub fn server_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let parsed = reqwest::Url::parse(&url).with_context(|| format!("`{url}` is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("`{url}` is not an http:// or https:// server address");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        bail!("`{url}` has a query or fragment; give the server's base address");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_normalised() {
        assert_eq!(server_url("http://h:8888/").unwrap(), "http://h:8888");
        assert_eq!(server_url("h:8888").unwrap(), "http://h:8888");
        assert_eq!(
            server_url("https://faaso.example").unwrap(),
            "https://faaso.example"
        );
        assert!(server_url("ftp://h").is_err());
        assert!(server_url("http://h/?x=1").is_err());
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let login = Login {
            server: "http://h".into(),
            token: "s3cr3t-token-value".into(),
            ca_cert: None,
            insecure_plain_http: false,
        };
        assert!(!format!("{login:?}").contains("s3cr3t"));
    }
}
