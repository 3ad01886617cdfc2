//! Errors the proxy library reports to its caller.

use std::net::SocketAddr;

/// What went wrong while starting or running the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be bound.
    #[error("binding the proxy to {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket's own address could not be read.
    #[error("reading the proxy's local address")]
    LocalAddr(#[source] std::io::Error),
    /// The access log's destination could not be opened, or its writer started.
    #[error("opening the access log ({destination})")]
    AccessLog {
        /// Where the log was to go.
        destination: String,
        /// Why it could not.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate pair cannot be served.
    #[error("loading the TLS certificate")]
    Tls(#[from] crate::tls::TlsError),
    /// An admin handler was given to a proxy configured without an admin listener.
    #[error("an admin handler needs an admin listener (`admin_listen`)")]
    NoAdminListener,
    /// An event loop's thread could not be started.
    #[error("starting the proxy's event loop threads")]
    Thread(#[source] std::io::Error),
}
