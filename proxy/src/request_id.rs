//! `X-Request-Id` values for requests that came without one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;

/// A new id, unique within this process and, by its start-time prefix, across restarts.
pub(crate) fn next() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("{prefix:016x}-{n:08x}");
    // Hex digits and a dash are always a valid header value; the string's buffer becomes the
    // value's without a copy.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        assert_ne!(super::next(), super::next());
    }
}
