//! The CLI as a client of a faaso server's admin API: which server (the saved login,
//! `--server`/`FAASO_SERVER`, or none for the local engine), and one method per API call.
//! Errors carry the server's own JSON message; a 401 says to log in.

pub mod config;
pub mod progress;
pub mod trust;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow};
use faaso_reconciler::FunkoStatus;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::cmd::Global;
pub use config::{Login, server_url};
pub use trust::Trust;

/// How long to wait for a server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A faaso server and the token to reach its admin API.
#[derive(Clone)]
pub struct Remote {
    server: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// The server where commands go: `None` runs them on the local engine. `--local` wins; then
/// `--server`/`FAASO_SERVER`; then the saved login. The token is `FAASO_TOKEN`, else the saved
/// login's when it is for that server; so are the CA file (`FAASO_CA_CERT` wins) and whether
/// plain HTTP was accepted as insecure.
pub fn select(global: &Global) -> anyhow::Result<Option<Remote>> {
    if global.local {
        return Ok(None);
    }
    let saved = Login::load()?;
    let server = match (&global.server, &saved) {
        (Some(url), _) => server_url(url)?,
        (None, Some(login)) => login.server.clone(),
        (None, None) => return Ok(None),
    };
    let same_server = saved.as_ref().filter(|login| login.server == server);
    let mut trust = same_server.map(Login::trust).unwrap_or_default();
    if let Some(ca) = std::env::var_os("FAASO_CA_CERT").filter(|v| !v.is_empty()) {
        trust.ca_cert = Some(ca.into());
    }
    let token = match std::env::var("FAASO_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(token) => token,
        None => saved
            .filter(|login| login.server == server)
            .map(|login| login.token)
            .ok_or_else(|| {
                anyhow!("no token for {server}: run `faaso login {server}` (or set FAASO_TOKEN)")
            })?,
    };
    Remote::new(&server, token.trim(), &trust).map(Some)
}

/// The server answered 401: the token is wrong or missing.
#[derive(Debug, thiserror::Error)]
#[error("the server at {server} refused the token (401); run `faaso login {server}`")]
pub struct Refused {
    /// The server.
    pub server: String,
}

/// A funko's status as the server reports it.
#[derive(Debug, Clone, Deserialize)]
struct StatusView {
    name: String,
    desired: Option<u32>,
    ready: u32,
    outdated: u32,
    #[serde(default)]
    paused: u32,
    #[serde(default)]
    stopped: u32,
    #[serde(default)]
    autoscaled: Option<faaso_reconciler::Bounds>,
    #[serde(default)]
    last_decision: Option<faaso_reconciler::ScaleDecision>,
    image: Option<String>,
    #[serde(default)]
    image_created: Option<u64>,
    error: Option<String>,
    #[serde(default)]
    converging: Option<faaso_reconciler::Converging>,
}

impl From<StatusView> for FunkoStatus {
    fn from(v: StatusView) -> Self {
        FunkoStatus {
            name: v.name,
            desired: v.desired,
            ready: v.ready,
            outdated: v.outdated,
            paused: v.paused,
            stopped: v.stopped,
            autoscaled: v.autoscaled,
            last_decision: v.last_decision,
            image: v.image,
            image_created: v.image_created,
            error: v.error,
            converging: v.converging,
            config_hash: None,
        }
    }
}

/// `GET /admin/funkos`: where every funko stands after the server's last pass.
#[derive(Debug, Clone)]
pub struct Board {
    /// How many passes the server has finished.
    pub pass: u64,
    /// Every funko's status.
    pub funkos: Vec<FunkoStatus>,
}

#[derive(Deserialize)]
struct BoardView {
    pass: u64,
    funkos: Vec<StatusView>,
}

/// `POST /admin/funkos/<name>/scale`'s answer.
#[derive(Debug, Deserialize)]
pub struct Scaled {
    /// The scale before.
    pub from: u32,
    /// The scale now.
    pub to: u32,
}

/// `POST /admin/funkos/<name>/build`'s answer.
#[derive(Debug, Deserialize)]
pub struct Built {
    /// The image.
    pub image: String,
    /// Whether it was built now (false: the tag existed).
    pub built: bool,
    /// How long it took on the server.
    pub seconds: f64,
}

impl Remote {
    /// A client of `server` (a base URL as [`server_url`] makes it); refused when the token
    /// would go over plain HTTP that `trust` does not allow.
    pub fn new(server: &str, token: &str, trust: &Trust) -> anyhow::Result<Self> {
        trust.check_scheme(server)?;
        // One process-wide TLS provider; a second install (a second client) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = trust
            .client_builder(server)?
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("faaso/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            server: server.to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(&self.token)
    }

    /// Sends `request`; any answer but 2xx becomes an error in the server's words.
    async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request.send().await.map_err(|e| {
            if trust::is_certificate_error(&e) {
                return anyhow!(
                    "the TLS certificate of {0} cannot be verified ({1}). If the server uses a                      private CA, give faaso that CA's certificate: `faaso login --ca-cert                      ca.pem {0}` (or set FAASO_CA_CERT)",
                    self.server,
                    source_chain(&e)
                );
            }
            anyhow!(
                "cannot reach the faaso server at {}: {}",
                self.server,
                source_chain(&e)
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(Refused {
                server: self.server.clone(),
            }
            .into());
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| body.trim().chars().take(500).collect());
        if status == StatusCode::NOT_FOUND && message.starts_with("no funko at this path") {
            // The proxy's own 404: this address is the funkos' port, not the admin's.
            return Err(anyhow!(
                "{} is a faaso proxy's funko port, which serves no admin API; log in to the \
                 server's admin address instead (its --admin-listen, 127.0.0.1:8889 by default)",
                self.server
            ));
        }
        Err(anyhow!("the server answered {status}: {message}"))
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        response.json().await.with_context(|| {
            format!(
                "the server at {} answered something faaso cannot read",
                self.server
            )
        })
    }

    /// Every funko's status.
    pub async fn board(&self) -> anyhow::Result<Board> {
        let view: BoardView = self
            .json(self.request(Method::GET, "/admin/funkos"))
            .await?;
        Ok(Board {
            pass: view.pass,
            funkos: view.funkos.into_iter().map(Into::into).collect(),
        })
    }

    /// Uploads a funko folder (a gzipped tar); returns the server's answer.
    pub async fn deploy(&self, name: &str, archive: Vec<u8>) -> anyhow::Result<serde_json::Value> {
        let request = self
            .request(Method::PUT, &format!("/admin/funkos/{name}"))
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(archive);
        let response = self.send(request).await?;
        Ok(response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Sets a funko's scale.
    pub async fn scale(&self, name: &str, scale: u32) -> anyhow::Result<Scaled> {
        let request = self
            .request(Method::POST, &format!("/admin/funkos/{name}/scale"))
            .json(&serde_json::json!({ "scale": scale }));
        self.json(request).await
    }

    /// The scale a funko asks for now (`None` for an invalid one).
    pub async fn desired(&self, name: &str) -> anyhow::Result<Option<u32>> {
        let view: StatusView = self
            .json(self.request(Method::GET, &format!("/admin/funkos/{name}")))
            .await?;
        Ok(view.desired)
    }

    /// Streams a funko's logs to `out` as they come.
    pub async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: &str,
        out: &mut impl std::io::Write,
    ) -> anyhow::Result<()> {
        let request = self
            .request(Method::GET, &format!("/admin/funkos/{name}/logs"))
            .query(&[("follow", if follow { "1" } else { "0" }), ("tail", tail)]);
        let mut response = self.send(request).await?;
        while let Some(chunk) = response.chunk().await.context("the log stream broke off")? {
            out.write_all(&chunk)?;
            out.flush()?;
        }
        Ok(())
    }

    /// Sets a secret's value.
    pub async fn set_secret(&self, funko: &str, key: &str, value: Vec<u8>) -> anyhow::Result<()> {
        let request = self
            .request(Method::PUT, &format!("/admin/secrets/{funko}/{key}"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(value);
        self.send(request).await.map(drop)
    }

    /// Removes a secret.
    pub async fn remove_secret(&self, funko: &str, key: &str) -> anyhow::Result<()> {
        let request = self.request(Method::DELETE, &format!("/admin/secrets/{funko}/{key}"));
        self.send(request).await.map(drop)
    }

    /// Builds a funko's image on the server from its folder (a gzipped tar), rolling nothing out.
    pub async fn build(&self, name: &str, archive: Vec<u8>) -> anyhow::Result<Built> {
        let request = self
            .request(Method::POST, &format!("/admin/funkos/{name}/build"))
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(archive);
        self.json(request).await
    }

    /// Removes the images of a funko that has no instances (`faaso purge`); returns their tags.
    pub async fn remove_images(&self, name: &str) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Removed {
            removed: Vec<String>,
        }
        let request = self.request(Method::DELETE, &format!("/admin/funkos/{name}/images"));
        let view: Removed = self.json(request).await?;
        Ok(view.removed)
    }

    /// The version of faaso the server runs.
    pub async fn version(&self) -> anyhow::Result<String> {
        Ok(self.about().await?.version)
    }

    /// The server's version and backend.
    pub async fn about(&self) -> anyhow::Result<About> {
        self.json(self.request(Method::GET, "/admin/version")).await
    }

    /// Every funko's secret keys (never values).
    pub async fn secrets(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        self.json(self.request(Method::GET, "/admin/secrets")).await
    }
}

/// An error and its causes on one line (reqwest's top level says only "error sending request").
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What `/admin/version` tells of a server.
#[derive(Debug, Deserialize)]
pub struct About {
    /// The faaso version it runs.
    pub version: String,
    /// `docker`, or `swarm` when the proxy service on every node serves the funkos; a server
    /// older than the field says nothing (`docker`, the only backend then).
    #[serde(default = "docker")]
    pub backend: String,
}

fn docker() -> String {
    "docker".to_owned()
}
