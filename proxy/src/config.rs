//! The proxy's knobs, with defaults a user would expect.

use std::net::SocketAddr;

use crate::access_log::{AccessLogDestination, AccessLogFormat};
use crate::tls::TlsSettings;
use std::time::Duration;

/// Limits, timeouts and switches of one proxy server.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Largest request body forwarded; larger ones are answered 413.
    pub max_body_bytes: u64,
    /// Largest request head (request line plus headers) read from a client; larger is 431.
    pub max_header_bytes: usize,
    /// Most headers accepted in one request.
    pub max_headers: usize,
    /// How long a client may take to send a request head, and stay idle between requests.
    pub header_read_timeout: Duration,
    /// How long connecting to an instance may take before the attempt counts as failed.
    pub connect_timeout: Duration,
    /// How long an unused keep-alive connection to an instance stays in the pool.
    pub upstream_idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests before dropping them.
    pub shutdown_grace: Duration,
    /// Whether each request is logged as one access-log line.
    pub access_log: bool,
    /// How access-log lines look.
    pub access_log_format: AccessLogFormat,
    /// Where access-log lines go.
    pub access_log_destination: AccessLogDestination,
    /// Event loops serving clients, each a thread of its own with its own idle connections to
    /// instances: a request and its upstream exchange then never cross threads. Half the CPUs
    /// by default (at least one): the funkos behind the proxy run on the same cores, and a loop
    /// per core made the proxy's threads and the funkos' wait on each other (docs/PROXY.md).
    pub event_loops: usize,
    /// Most client connections (and upgraded tunnels) open at once on the funkos' listener; a
    /// client beyond is closed at once and counted (`faaso_proxy_connections_refused_total`).
    /// The admin listener has the same cap of its own, so a flood of funko clients never locks
    /// the admin out.
    pub max_connections: usize,
    /// Most requests held at once across every funko (each funko's own queue is bounded too);
    /// a request beyond is answered 503 with `Retry-After` and counted.
    pub max_held: usize,
    /// Most requests (streams) one HTTP/2 client runs at once on one connection.
    pub h2_max_streams: u32,
    /// How often an HTTP/2 client is pinged; one that does not answer within as long again is
    /// closed. `None` sends no pings.
    pub h2_keep_alive: Option<Duration>,
    /// TLS on the listeners, when set; plain HTTP (and h2c) otherwise.
    pub tls: Option<TlsSettings>,
    /// A second listener for the embedding process's own API ([`crate::Proxy::with_admin`]) and
    /// `/metrics`, when set: then neither is served on `listen`, so a funko's page never shares
    /// a browser origin with them.
    pub admin_listen: Option<SocketAddr>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8888)),
            max_body_bytes: 64 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            upstream_idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            access_log: true,
            access_log_format: AccessLogFormat::default(),
            access_log_destination: AccessLogDestination::default(),
            event_loops: default_event_loops(),
            max_connections: 10_000,
            max_held: 10_000,
            h2_max_streams: 250,
            h2_keep_alive: Some(Duration::from_secs(20)),
            tls: None,
            admin_listen: None,
        }
    }
}

/// Half the CPUs this process may use, at least one.
fn default_event_loops() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}
