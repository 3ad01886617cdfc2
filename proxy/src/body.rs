//! Body types: everything is streamed frame by frame, nothing is collected whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::metrics::{FunkoStats, Metrics};
use crate::pool::Sender;
use crate::route_table::{InFlight, Instance};

/// Any error a body may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the proxy sends.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Ends a request body that went past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {limit} bytes")]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: u64,
}

impl BodyTooLarge {
    /// Whether `err` (or anything it wraps) is a body cut off for its size.
    pub(crate) fn caused(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(err);
        while let Some(err) = current {
            if err.is::<BodyTooLarge>() {
                return true;
            }
            current = err.source();
        }
        false
    }
}

/// What is sent to an instance: nothing, or the client's body counted against the limit.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// The client sent no body (most GETs).
    Empty,
    /// The client's body, streamed.
    Client {
        /// The body as it arrives.
        body: Incoming,
        /// Bytes allowed.
        limit: u64,
        /// Bytes passed on so far.
        seen: u64,
    },
}

impl Outgoing {
    /// The client's body, or nothing when it has none.
    pub(crate) fn new(body: Incoming, limit: u64) -> Self {
        if body.is_end_stream() {
            Self::Empty
        } else {
            Self::Client {
                body,
                limit,
                seen: 0,
            }
        }
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Self::Client { body, limit, seen } = this else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *seen += data.len() as u64;
                    if *seen > *limit {
                        let limit = *limit;
                        // Keep reading what the client still sends, so it gets to read the 413.
                        if let Self::Client { body, .. } = std::mem::replace(this, Self::Empty) {
                            tokio::spawn(discard(body, limit));
                        }
                        return Poll::Ready(Some(Err(BodyTooLarge { limit }.into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Client { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Client { body, .. } => body.size_hint(),
        }
    }
}

/// Reads and drops up to `cap` bytes of a refused body (for at most 10 s), so that the client
/// can finish sending and then read the 413, instead of failing on a connection closed under
/// its upload.
pub(crate) async fn discard(mut body: Incoming, cap: u64) {
    use http_body_util::BodyExt as _;
    let mut seen = 0u64;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen >= cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
}

/// What a response holds on to while it streams: the in-flight counts, and the connection,
/// which goes back to its instance's pool once the body has been read to the end.
pub(crate) struct Lease {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stats: Arc<FunkoStats>,
    pub(crate) instance: Arc<Instance>,
    pub(crate) sender: Option<Sender>,
    pub(crate) _in_flight: InFlight,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.metrics.add_in_flight(-1);
        self.stats.add_in_flight(-1);
    }
}

/// An instance's response body on its way to the client.
pub(crate) struct UpstreamBody {
    inner: Incoming,
    ended: bool,
    lease: Lease,
}

impl UpstreamBody {
    /// Streams `inner`, holding `lease` until done.
    pub(crate) fn new(inner: Incoming, lease: Lease) -> Self {
        Self {
            inner,
            ended: false,
            lease,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // A broken body leaves the connection in an unknown state: never reuse it.
                this.lease.sender = None;
                Poll::Ready(Some(Err(e.into())))
            }
            other => other.map(|f| f.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Only a body read to its end leaves the connection ready for the next request.
        if (self.ended || self.inner.is_end_stream())
            && let Some(sender) = self.lease.sender.take()
        {
            self.lease.instance.pool.give_back(sender);
        }
    }
}
