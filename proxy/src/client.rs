//! The client connection a request came on, and the count of open connections of the event
//! loop serving it, by which new clients are spread over the loops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::header::HeaderValue;

/// Counts one open connection (or upgraded tunnel) of an event loop until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    /// Counts one more in `count`.
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }

    /// Counts one more in the same loop: a tunnel outlives the connection it came from.
    pub(crate) fn another(&self) -> Self {
        Self::new(&self.0)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What handling a request knows of the client connection it came on; shared by the
/// connection's requests, and counted in its loop until the last of them is done.
#[derive(Debug)]
pub(crate) struct ClientConnection {
    /// The client's address as an `X-Forwarded-For` value, made once per connection.
    pub(crate) peer_ip: HeaderValue,
    /// The client's address, handed to the local handler as a request extension.
    pub(crate) peer: std::net::IpAddr,
    /// Whether the client came over TLS (`X-Forwarded-Proto: https`).
    pub(crate) tls: bool,
    /// The connection's place in its loop's count.
    pub(crate) open: OpenConnection,
}
