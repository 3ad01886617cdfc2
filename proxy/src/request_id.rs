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
    // Into a fixed buffer: `format!` cost a request some 700 instructions.
    let mut id = [b'-'; 33];
    let written = hex::encode_to_slice(prefix.to_be_bytes(), &mut id[..16])
        .and_then(|()| hex::encode_to_slice(n.to_be_bytes(), &mut id[17..]));
    match written {
        Ok(()) => HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-")),
        Err(_) => HeaderValue::from_static("-"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        assert_ne!(super::next(), super::next());
    }

    #[test]
    fn ids_are_the_start_prefix_and_a_counter_in_hex() {
        let (a, b) = (super::next(), super::next());
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 33);
        assert_eq!(a[..17], b[..17], "one prefix per process");
        assert_eq!(a.as_bytes()[16], b'-');
        let n = |id: &str| u64::from_str_radix(&id[17..], 16).unwrap();
        assert!(n(b) > n(a));
    }
}
