//! Keep-alive connections to one instance, reused request after request.
//!
//! A small pool per instance instead of hyper-util's shared client: a request takes an idle
//! connection (or dials a new one), and its response body gives the connection back when it
//! has been read to the end. Nothing is spawned per request, and a request that was never
//! written (a refused connect, a connection the instance had closed) comes back to the caller
//! whole, body included, so it can go to another instance.
//!
//! A kept-alive connection can also be closed by the instance while a request is on its way
//! (an instance shutting down closes its idle connections; a node cut off stops answering).
//! A bodiless request whose method is idempotent is then sent again on a new connection, as
//! browsers and Go's HTTP client do; if that connect fails, it too comes back for another
//! instance.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::Outgoing;
use crate::route_table::Instance;
use crate::shard::Sharded;

/// Idle connections kept per instance; more are closed when they come back.
const MAX_IDLE: usize = 512;

/// How connections to instances are made and kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dialing {
    /// Time allowed for the TCP connect.
    pub(crate) connect_timeout: Duration,
    /// Idle connections older than this are not reused.
    pub(crate) idle_timeout: Duration,
}

/// A connection to an instance that may carry a request.
pub(crate) type Sender = SendRequest<Outgoing>;

/// The idle connections of one instance, per event loop: a connection's driver runs on the
/// loop that dialed it, and a request on another loop would cross threads on every exchange.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Sharded<Mutex<Vec<(Sender, Instant)>>>,
}

/// Why a request did not get a response from an instance.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made; the request was not sent and is handed back.
    Connect {
        /// What the connect returned.
        error: std::io::Error,
        /// The untouched request.
        request: Box<Request<Outgoing>>,
    },
    /// The request was (at least partly) sent, and then the exchange failed.
    Exchange(hyper::Error),
}

impl Pool {
    /// Returns a connection whose response was read to the end.
    pub(crate) fn give_back(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.local().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    fn take(&self, idle_timeout: Duration) -> Option<Sender> {
        let mut idle = self.idle.local().lock().unwrap_or_else(|p| p.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < idle_timeout {
                return Some(sender);
            }
        }
        None
    }
}

/// Sends `request` to `instance` on an idle connection or a new one.
pub(crate) async fn send(
    instance: &Instance,
    mut request: Request<Outgoing>,
    dialing: Dialing,
) -> Result<(Response<Incoming>, Sender), SendError> {
    while let Some(mut sender) = instance.pool.take(dialing.idle_timeout) {
        if sender.ready().await.is_err() {
            continue;
        }
        let copy = replayable(&request);
        match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, sender)),
            Err(mut err) => match (err.take_message(), copy) {
                // The instance had closed this connection: nothing was sent, try the next.
                (Some(unsent), _) => request = unsent,
                // Sent, and the connection broke before an answer: once more on a new
                // connection, not on the other idle ones, which a gone instance would hold
                // for a connect timeout each.
                (None, Some(copy)) => {
                    debug!(addr = %instance.addr(), err = ?err.error(), "A kept-alive connection broke off; sending the request again on a new one.");
                    request = copy;
                    break;
                }
                (None, None) => return Err(SendError::Exchange(err.into_error())),
            },
        }
    }
    let mut sender = match dial(instance, dialing.connect_timeout).await {
        Ok(sender) => sender,
        Err(error) => {
            return Err(SendError::Connect {
                error,
                request: Box::new(request),
            });
        }
    };
    match sender.try_send_request(request).await {
        Ok(response) => Ok((response, sender)),
        Err(err) => Err(SendError::Exchange(err.into_error())),
    }
}

/// A copy of a request that may be sent twice: no body, and a method whose effect is the same
/// however often it is applied (RFC 9110, 9.2.2).
fn replayable(request: &Request<Outgoing>) -> Option<Request<Outgoing>> {
    if !request.method().is_idempotent() || !request.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(Outgoing::Empty);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// Opens a new connection and starts driving it.
async fn dial(instance: &Instance, connect_timeout: Duration) -> std::io::Result<Sender> {
    let addr = instance.addr();
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    // A request the instance does not acknowledge within the connect timeout means it is gone:
    // a node cut off answers nothing, not even a reset, and a request written into a kept-alive
    // connection to it would wait for the funko's timeout. Failing it then lets the forwarder
    // eject the instance, so its other idle connections take no more requests.
    let unacknowledged = u32::try_from(connect_timeout.as_millis()).unwrap_or(u32::MAX);
    rustix::net::sockopt::set_tcp_user_timeout(&stream, unacknowledged.max(1))?;
    // One flat write buffer instead of a queue of slices: a request head is small, and
    // copying it costs less than queueing it (2 % of a request's instructions, both sides).
    let (sender, connection) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            debug!(%addr, ?err, "A connection to an instance ended with an error.");
        }
    });
    Ok(sender)
}
