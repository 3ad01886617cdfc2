//! Body types: everything is streamed frame by frame, nothing is collected whole.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// Any error a body may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the proxy sends and request it forwards.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Ends a request body that went past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {limit} bytes")]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: u64,
}

/// A client's request body on its way to an instance: counted against the size limit, and
/// recoverable for a retry while not a byte of it has been read.
pub(crate) struct RequestBody {
    slot: Arc<Slot>,
    limit: u64,
    seen: u64,
}

/// The other handle on a [`RequestBody`]: takes the body back after a failed connect.
pub(crate) struct Reclaim {
    slot: Arc<Slot>,
    limit: u64,
}

struct Slot {
    // The mutex is only contended if hyper and a retry race, which they never do; it is
    // there because the body must be reachable from two owners.
    body: Mutex<Option<Incoming>>,
    read: AtomicBool,
    too_large: AtomicBool,
}

impl RequestBody {
    /// Wraps a client's body; the second half reclaims it if no byte was read.
    pub(crate) fn new(body: Incoming, limit: u64) -> (Self, Reclaim) {
        let slot = Arc::new(Slot {
            body: Mutex::new(Some(body)),
            read: AtomicBool::new(false),
            too_large: AtomicBool::new(false),
        });
        let reclaim = Reclaim {
            slot: slot.clone(),
            limit,
        };
        (
            Self {
                slot,
                limit,
                seen: 0,
            },
            reclaim,
        )
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Incoming>> {
        self.body.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Reclaim {
    /// A fresh body for a second attempt, if the first attempt never read from it.
    pub(crate) fn take(&self) -> Option<RequestBody> {
        if self.slot.read.load(Ordering::Acquire) {
            return None;
        }
        let body = self.slot.lock().take()?;
        Some(RequestBody::new(body, self.limit).0)
    }

    /// Whether the body was cut off for being larger than the limit.
    pub(crate) fn was_too_large(&self) -> bool {
        self.slot.too_large.load(Ordering::Acquire)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.slot.read.store(true, Ordering::Release);
        let mut body = this.slot.lock();
        let Some(inner) = body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.slot.too_large.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(BodyTooLarge { limit: this.limit }.into())));
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
        self.slot.lock().as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.slot
            .lock()
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

/// A body that keeps `guard` alive until the body is finished or dropped (in-flight counts).
pub(crate) struct Guarded<B, G> {
    inner: B,
    _guard: G,
}

impl<B, G> Guarded<B, G> {
    /// Ties `guard`'s lifetime to `inner`.
    pub(crate) fn new(inner: B, guard: G) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B, G> Body for Guarded<B, G>
where
    B: Body + Unpin,
    G: Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is sent to an instance: nothing, or the client's body.
pub(crate) enum Outgoing {
    /// The client sent no body (most GETs); any number of attempts can send "nothing".
    Empty,
    /// The client's body, streamed.
    Client(RequestBody),
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Client(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Client(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Client(body) => body.size_hint(),
        }
    }
}
