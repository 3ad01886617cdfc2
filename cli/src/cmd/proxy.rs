//! `faaso proxy`: serve `/funko/<name>/…` on a port, with routes discovered from Docker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use faaso_proxy::{
    AccessLogDestination, AccessLogFormat, AcmeSettings, HealthChecker, ProbeConfig, Proxy,
    ProxyConfig, ProxyError, Routes, TlsSettings,
};
use tracing::info;

use crate::cmd::Global;
use crate::discovery::{DiscoveryConfig, DockerDiscovery};

pub(crate) mod container;
mod swarm;

/// `faaso proxy`: the proxy in the foreground, or `up`/`down` as a container.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct ProxyCommand {
    /// Run as the proxy container instead of in the foreground.
    #[command(subcommand)]
    pub action: Option<ProxyAction>,
    /// The proxy's settings (given before `up`, they are passed on to the container).
    #[command(flatten)]
    pub args: ProxyArgs,
}

/// What `faaso proxy` does besides running in the foreground.
#[derive(Debug, clap::Subcommand)]
pub enum ProxyAction {
    /// Run the proxy as the `faaso-proxy` container, publishing its port on the host.
    Up(UpArgs),
    /// Stop and remove the proxy container.
    Down,
}

/// Flags of `faaso proxy up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Host port to publish.
    #[arg(long, env = "FAASO_PORT", default_value_t = 8888)]
    pub port: u16,
    /// Host address to publish on (127.0.0.1 keeps the proxy off the network).
    #[arg(long, env = "FAASO_BIND", default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
}

/// Runs `faaso proxy`, `faaso proxy up` or `faaso proxy down`.
pub async fn run_command(global: &Global, command: ProxyCommand) -> anyhow::Result<ExitCode> {
    match command.action {
        None => run(global, command.args).await,
        Some(ProxyAction::Up(up)) if global.backend == super::BackendKind::Swarm => {
            swarm::up(global, &command.args, up.port).await
        }
        Some(ProxyAction::Down) if global.backend == super::BackendKind::Swarm => {
            swarm::down(global).await
        }
        Some(ProxyAction::Up(up)) => container::up(global, &command.args, up.bind, up.port).await,
        Some(ProxyAction::Down) => container::down(&global.namespace()).await,
    }
}

/// Flags of `faaso proxy`; each is also an environment variable.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address and port to listen on.
    #[arg(long, env = "FAASO_LISTEN", default_value = "0.0.0.0:8888")]
    pub listen: SocketAddr,
    /// Largest request body forwarded, in bytes; larger ones are answered 413.
    #[arg(long, env = "FAASO_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Largest request head (request line and headers), in bytes; larger ones are answered 431.
    #[arg(long, env = "FAASO_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Most headers in one request.
    #[arg(long, env = "FAASO_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,
    /// How long a client may take to send a request head, or stay idle between requests.
    #[arg(long, env = "FAASO_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Request timeout of funkos whose containers do not name one (label `<labels>.timeout`).
    #[arg(long, env = "FAASO_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long connecting to an instance may take before another one is tried.
    #[arg(long, env = "FAASO_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    #[arg(long, env = "FAASO_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Time between readiness probes of a routed instance.
    #[arg(long, env = "FAASO_PROBE_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub probe_interval: Duration,
    /// Failed probes in a row that take an instance out of rotation.
    #[arg(long, env = "FAASO_PROBE_FAILURES", default_value_t = 3)]
    pub probe_failures: u32,
    /// Time between full relists of the containers, besides reacting to events.
    #[arg(long, env = "FAASO_RESYNC", default_value = "10s", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// Do not log a line per request.
    #[arg(long, env = "FAASO_NO_ACCESS_LOG")]
    pub no_access_log: bool,
    /// Where the access log goes: standard output, or `access.log` in the state directory
    /// (opened again on SIGHUP, for logrotate).
    #[arg(long, env = "FAASO_ACCESS_LOG", value_enum, default_value_t = AccessLogTo::Stdout)]
    pub access_log: AccessLogTo,
    /// How access-log lines look: `text` (like faaso's other log lines) or `json` (one object
    /// per line, for log collectors).
    #[arg(long, env = "FAASO_ACCESS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub access_log_format: LogFormat,
    /// Most client connections open at once; a client beyond is closed on arrival and counted
    /// (`faaso_proxy_connections_refused_total`). The admin listener has a cap of its own.
    #[arg(long, env = "FAASO_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most requests held at once across every funko (waking, or at their instances' limit);
    /// beyond, 503 with `Retry-After`, counted as `reason="proxy_full"`.
    #[arg(long, env = "FAASO_MAX_HELD", default_value_t = 10_000)]
    pub max_held: usize,
    /// Most requests one HTTP/2 client runs at once on one connection.
    #[arg(long, env = "FAASO_H2_MAX_STREAMS", default_value_t = 250)]
    pub h2_max_streams: u32,
    /// How often an HTTP/2 client is pinged; one that does not answer within as long again is
    /// closed (`0s`: no pings).
    #[arg(long, env = "FAASO_H2_KEEPALIVE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub h2_keepalive: Duration,
    /// Threads serving clients, each with its own event loop (default: half the CPUs, at
    /// least one; the funkos use the rest).
    #[arg(long, env = "FAASO_EVENT_LOOPS")]
    pub event_loops: Option<usize>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS flags of `faaso proxy` and `faaso server`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain, leaf first; the
    /// file is read again when it changes.
    #[arg(
        long,
        env = "FAASO_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(
        long,
        env = "FAASO_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
    /// How long a client may take to finish its TLS handshake.
    #[arg(long, env = "FAASO_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// Send `Strict-Transport-Security: max-age=<this>` (for example `1y`) with every HTTPS answer.
    #[arg(long, env = "FAASO_HSTS", value_parser = humantime::parse_duration)]
    pub hsts: Option<Duration>,
    /// Also listen for plain HTTP here, answering every request with a redirect to HTTPS.
    #[arg(
        long,
        env = "FAASO_HTTP_REDIRECT",
        requires = "tls_cert",
        value_name = "ADDR"
    )]
    pub http_redirect: Option<SocketAddr>,
    /// The port redirects send clients to (default: the port of --listen).
    #[arg(long, env = "FAASO_HTTPS_PORT")]
    pub https_port: Option<u16>,
    /// Obtain and renew a certificate for these host names over ACME (TLS-ALPN-01, answered on
    /// this port), kept in `acme/` in the state directory; instead of --tls-cert.
    #[arg(
        long = "acme-domain",
        env = "FAASO_ACME_DOMAINS",
        value_delimiter = ',',
        conflicts_with = "tls_cert",
        value_name = "NAME"
    )]
    pub acme_domains: Vec<String>,
    /// The ACME server's directory URL.
    #[arg(
        long,
        env = "FAASO_ACME_DIRECTORY",
        default_value = "https://acme-v02.api.letsencrypt.org/directory"
    )]
    pub acme_directory: String,
    /// A PEM root certificate that verifies the ACME server, instead of the system's roots
    /// (the file's first certificate).
    #[arg(long, env = "FAASO_ACME_CA_CERT", value_name = "FILE")]
    pub acme_ca_cert: Option<PathBuf>,
    /// Renew a certificate that expires sooner than this.
    #[arg(long, env = "FAASO_ACME_RENEW_BEFORE", default_value = "30days", value_parser = humantime::parse_duration)]
    pub acme_renew_before: Duration,
    /// How often the certificate's remaining life is looked at.
    #[arg(long, env = "FAASO_ACME_CHECK_EVERY", default_value = "1h", value_parser = humantime::parse_duration)]
    pub acme_check_every: Duration,
}

impl TlsArgs {
    /// Whether the proxy speaks TLS.
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some() || !self.acme_domains.is_empty()
    }

    /// The proxy library's TLS settings, when a certificate or ACME names are given; `listen`
    /// is the default port redirects name, `state_dir` keeps the ACME account and certificate.
    pub fn settings(&self, listen: SocketAddr, state_dir: &Path) -> Option<TlsSettings> {
        let acme = (!self.acme_domains.is_empty()).then(|| AcmeSettings {
            names: self.acme_domains.clone(),
            directory: self.acme_directory.clone(),
            ca_bundle: self.acme_ca_cert.clone(),
            dir: state_dir.join("acme"),
            renew_before: self.acme_renew_before,
            check_every: self.acme_check_every,
        });
        let (cert, key) = match (&acme, &self.tls_cert, &self.tls_key) {
            (Some(acme), _, _) => (acme.pair_file(), acme.pair_file()),
            (None, Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => return None,
        };
        Some(TlsSettings {
            handshake_timeout: self.tls_handshake_timeout,
            hsts: self.hsts,
            redirect_listen: self.http_redirect,
            https_port: self.https_port.unwrap_or(listen.port()),
            acme,
            ..TlsSettings::new(cert, key)
        })
    }
}

/// Where the access log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLogTo {
    /// The process's standard output (`docker logs` shows it).
    Stdout,
    /// `access.log` in the state directory.
    File,
}

/// The access log's line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `key=value` fields, like faaso's other log lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How `value` is spelled on the command line.
fn flag_value(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// The access-log file's name in the state directory.
pub(crate) const ACCESS_LOG_FILE: &str = "access.log";

impl ProxyArgs {
    /// The proxy library's settings from these flags; an access-log file goes into
    /// `state_dir` (created if missing).
    pub fn proxy_config(&self, state_dir: &Path) -> anyhow::Result<ProxyConfig> {
        let access_log_destination = match self.access_log {
            AccessLogTo::Stdout => AccessLogDestination::Stdout,
            AccessLogTo::File => {
                std::fs::create_dir_all(state_dir).with_context(|| {
                    format!("creating the state directory {}", state_dir.display())
                })?;
                AccessLogDestination::File(state_dir.join(ACCESS_LOG_FILE))
            }
        };
        if (self.tls.hsts.is_some() || self.tls.http_redirect.is_some()) && !self.tls.enabled() {
            anyhow::bail!(
                "--hsts and --http-redirect need TLS: give --tls-cert and --tls-key, or --acme-domain"
            );
        }
        Ok(ProxyConfig {
            listen: self.listen,
            max_body_bytes: self.max_body_bytes,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            header_read_timeout: self.header_timeout,
            connect_timeout: self.connect_timeout,
            shutdown_grace: self.shutdown_grace,
            access_log: !self.no_access_log,
            access_log_format: match self.access_log_format {
                LogFormat::Text => AccessLogFormat::Text,
                LogFormat::Json => AccessLogFormat::Json,
            },
            access_log_destination,
            event_loops: self
                .event_loops
                .unwrap_or(ProxyConfig::default().event_loops),
            max_connections: self.max_connections,
            max_held: self.max_held,
            h2_max_streams: self.h2_max_streams,
            h2_keep_alive: (!self.h2_keepalive.is_zero()).then_some(self.h2_keepalive),
            tls: self.tls.settings(self.listen, state_dir),
            ..ProxyConfig::default()
        })
    }

    /// The flags that configure the proxy itself, as arguments for another `faaso proxy`.
    pub(crate) fn passed_on(&self) -> Vec<String> {
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let mut args = vec![
            format!("--max-body-bytes={}", self.max_body_bytes),
            format!("--max-header-bytes={}", self.max_header_bytes),
            format!("--max-headers={}", self.max_headers),
            format!("--header-timeout={}", duration(self.header_timeout)),
            format!("--request-timeout={}", duration(self.request_timeout)),
            format!("--connect-timeout={}", duration(self.connect_timeout)),
            format!("--shutdown-grace={}", duration(self.shutdown_grace)),
            format!("--probe-interval={}", duration(self.probe_interval)),
            format!("--probe-failures={}", self.probe_failures),
            format!("--resync={}", duration(self.resync)),
            format!("--max-connections={}", self.max_connections),
            format!("--max-held={}", self.max_held),
            format!("--h2-max-streams={}", self.h2_max_streams),
            format!("--h2-keepalive={}", duration(self.h2_keepalive)),
        ];
        if self.no_access_log {
            args.push("--no-access-log".to_owned());
        }
        args.push(format!("--access-log={}", flag_value(self.access_log)));
        args.push(format!(
            "--access-log-format={}",
            flag_value(self.access_log_format)
        ));
        if let Some(loops) = self.event_loops {
            args.push(format!("--event-loops={loops}"));
        }
        args
    }

    /// The readiness-probe settings from these flags.
    pub fn probe_config(&self) -> ProbeConfig {
        ProbeConfig {
            interval: self.probe_interval,
            unhealthy_threshold: self.probe_failures.max(1),
            ..ProbeConfig::default()
        }
    }
}

/// Runs the proxy in the foreground until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn run(global: &Global, args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let routes = Routes::new();
    let health = HealthChecker::new(routes.clone(), args.probe_config());
    let discovery = DockerDiscovery::new(
        DiscoveryConfig {
            namespace: global.namespace(),
            resync: args.resync,
            default_timeout: args.request_timeout,
        },
        health,
    );
    let discovery = match global.backend {
        super::BackendKind::Docker => discovery,
        super::BackendKind::Swarm => discovery.on_swarm(),
    };
    let proxy = bind(args.proxy_config(&global.state_dir)?, routes).await?;

    info!(network = %global.network, "Discovering funko containers.");
    let discovery = tokio::spawn(discovery.run());
    let served = proxy
        .serve(async {
            super::shutdown_signal().await;
            info!("Shutting down; letting in-flight requests finish.");
        })
        .await;
    discovery.abort();
    served.context("serving the proxy")?;
    Ok(ExitCode::SUCCESS)
}

/// Binds the proxy; a port already taken gets a hint, other errors say what they are.
pub(crate) async fn bind(config: ProxyConfig, routes: Routes) -> anyhow::Result<Proxy> {
    Proxy::bind(config, routes).await.map_err(|err| match err {
        // The funkos' listener or the admin's: the error names which address.
        ProxyError::Bind { addr, .. } => anyhow::Error::new(err).context(format!(
            "cannot listen on {addr}; is another proxy or server running?"
        )),
        other => other.into(),
    })
}
