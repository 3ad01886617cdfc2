//! Holding requests that find no free instance: a bounded queue per funko, one wake signal
//! however many requests wait, and a release the moment an instance is ready or frees a slot.
//!
//! A held request waits on its funko's [`Waiting`], which outlives route-table snapshots. Every
//! table change wakes all held requests of the funko (they look again: an instance may be
//! ready); a finished request wakes one (a slot under `limit:` is free). The first request held
//! raises the funko's demand, which the server turns into one wake; a wake that cannot succeed
//! answers every held request at once with its reason instead of letting them time out.

use std::pin::pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

use crate::deadline;
use crate::route_table::{FunkoRoute, InFlight, Routes};

/// One funko's held requests.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    held: AtomicUsize,
    changed: Notify,
    failures: AtomicU64,
    failure: Mutex<String>,
}

impl Waiting {
    /// Requests held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The funko's route changed: every held request looks again.
    pub(crate) fn route_changed(&self) {
        if self.held() > 0 {
            self.changed.notify_waiters();
        }
    }

    /// A request to one of the funko's instances finished: one held request may take its slot.
    pub(crate) fn slot_freed(&self) {
        if self.held() > 0 {
            self.changed.notify_one();
        }
    }

    /// The funko cannot wake: every request held now is answered with `reason`.
    pub(crate) fn fail(&self, reason: &str) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = reason.to_owned();
        self.failures.fetch_add(1, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The reason of a failure since `seen` failures, if there was one.
    fn failed_since(&self, seen: u64) -> Option<String> {
        (self.failures.load(Ordering::Acquire) > seen).then(|| {
            self.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    /// Takes a place in the queue of `capacity`; `None` when it is full. The bool says whether
    /// this request is the first held (the one that raises demand).
    fn enter(self: &Arc<Self>, capacity: usize) -> Option<(Held, bool)> {
        let before = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .ok()?;
        Some((Held(self.clone()), before == 0))
    }
}

/// A place in a funko's queue, given back when the request leaves it (served, refused, or its
/// client gone: hyper drops the request's future).
struct Held(Arc<Waiting>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bound on requests held across every funko: how many are held now, and the most.
pub(crate) struct HeldCap<'a> {
    pub(crate) held: &'a AtomicUsize,
    pub(crate) max: usize,
}

impl HeldCap<'_> {
    /// Takes a place among every funko's held requests; `None` when they are all taken.
    fn enter(&self) -> Option<GlobalPlace<'_>> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(GlobalPlace(self.held))
    }
}

/// A place among every funko's held requests, given back when dropped.
struct GlobalPlace<'a>(&'a AtomicUsize);

impl Drop for GlobalPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request got no instance.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No instance is ready and the funko holds no requests (no `queue`).
    NoInstance,
    /// The funko's queue is full.
    QueueFull(usize),
    /// The proxy holds its most requests across every funko.
    ProxyFull(usize),
    /// The funko could not wake, for this reason.
    WakeFailed(String),
    /// The funko was removed while the request waited.
    Gone,
    /// No instance became free before the funko's timeout.
    TimedOut,
}

impl Refusal {
    /// Its label in metrics.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Refusal::NoInstance => "no_instance",
            Refusal::QueueFull(_) => "queue_full",
            Refusal::ProxyFull(_) => "proxy_full",
            Refusal::WakeFailed(_) => "wake_failed",
            Refusal::Gone => "funko_removed",
            Refusal::TimedOut => "timeout",
        }
    }
}

/// An instance for a request to `funko`, with a slot taken on it: at once when one is free,
/// else after waiting in the funko's queue until one is, the wake fails or `deadline` passes.
///
/// Each funko's queue is bounded, and so is their sum (`cap`): many funkos waking at once
/// would otherwise hold memory and connections without end.
pub(crate) async fn take_or_hold(
    routes: &Routes,
    funko: &str,
    route: Arc<FunkoRoute>,
    deadline: Instant,
    cap: &HeldCap<'_>,
) -> Result<(Arc<FunkoRoute>, InFlight), Refusal> {
    if let Some(slot) = route.take(None) {
        return Ok((route, slot));
    }
    let capacity = route.settings().queue;
    if capacity == 0 {
        return Err(Refusal::NoInstance);
    }
    let waiting = route.waiting().clone();
    let failures = waiting.failures.load(Ordering::Acquire);
    let _everywhere = cap.enter().ok_or(Refusal::ProxyFull(cap.max))?;
    let (_held, first) = waiting
        .enter(capacity)
        .ok_or(Refusal::QueueFull(capacity))?;
    if first {
        routes.raise_demand(funko);
    }
    loop {
        // Registered before looking, so a change between the look and the wait is not missed.
        let mut changed = pin!(waiting.changed.notified());
        changed.as_mut().enable();
        let Some(current) = routes.load().get(funko).cloned() else {
            return Err(Refusal::Gone);
        };
        if let Some(slot) = current.take(None) {
            return Ok((current, slot));
        }
        if let Some(reason) = waiting.failed_since(failures) {
            return Err(Refusal::WakeFailed(reason));
        }
        if deadline::timeout_at(deadline, changed).await.is_none() {
            return Err(Refusal::TimedOut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_and_places_come_back() {
        let waiting = Arc::new(Waiting::default());
        let (a, first) = waiting.enter(2).unwrap();
        assert!(first);
        let (_b, first) = waiting.enter(2).unwrap();
        assert!(!first);
        assert!(waiting.enter(2).is_none());
        drop(a);
        assert_eq!(waiting.held(), 1);
        assert!(waiting.enter(2).is_some());
    }

    #[test]
    fn a_failure_is_seen_only_by_requests_held_before_it() {
        let waiting = Waiting::default();
        let seen = waiting.failures.load(Ordering::Acquire);
        assert_eq!(waiting.failed_since(seen), None);
        waiting.fail("build failed");
        assert_eq!(waiting.failed_since(seen).as_deref(), Some("build failed"));
        let later = waiting.failures.load(Ordering::Acquire);
        assert_eq!(waiting.failed_since(later), None);
    }
}
