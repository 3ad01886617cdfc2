//! Deadlines kept by each event loop itself: the funko's request timeout and hyper's wait for a
//! client's next request head.
//!
//! Every request arms both, and nearly every request ends long before either fires. tokio's
//! timer wheel takes a lock to register a timer and again to cancel it: some 1.2k instructions
//! per request for timers that never fire. Here a loop's deadlines are slots in a plain list:
//! arming and cancelling one touches a slot and nothing else (about 0.4k instructions; 2.4 % of
//! a proxied request saved, by callgrind, docs/PROXY.md), and one ticker task per loop sleeps
//! until the earliest deadline and wakes what is due. A deadline fires up to [`TICK`] late,
//! which timeouts of seconds do not notice.
//!
//! A [`Deadline`] belongs to the thread that armed it and works only on an event loop, whose
//! runtime runs the ticker ([`start_ticker`], from `server.rs`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Far enough to be never for a request, near enough that no clock overflows adding it.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `start + duration`, held at [`NEVER`] from `start`: a timeout read from a funko's settings
/// (or a label on a container faaso did not make) must not panic the proxy by overflowing.
pub(crate) fn later(start: Instant, duration: Duration) -> Instant {
    start.checked_add(duration.min(NEVER)).unwrap_or(start)
}

/// The ticker wakes at most this often, whatever the deadlines: due ones are batched.
const TICK: Duration = Duration::from_millis(10);

thread_local! {
    static DEADLINES: RefCell<Deadlines> = const { RefCell::new(Deadlines::new()) };
    /// Which thread's list a deadline belongs to (0: none made on this thread yet).
    static LIST_ID: Cell<u64> = const { Cell::new(0) };
}

/// One event loop's deadlines.
struct Deadlines {
    slots: Vec<Slot>,
    /// Slots free for reuse.
    free: Vec<usize>,
    /// When the ticker next looks, if it sleeps on a time at all.
    planned: Option<Instant>,
    ticker: Option<Waker>,
    /// Whether a ticker was started on this thread (checked in debug builds).
    ticking: bool,
}

/// A deadline's place in the list: free when `at` is `None`.
#[derive(Default)]
struct Slot {
    at: Option<Instant>,
    fired: bool,
    /// The task to wake when it fires.
    waker: Option<Waker>,
}

impl Deadlines {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            planned: None,
            ticker: None,
            ticking: false,
        }
    }

    /// Takes a slot for `at`; also returns the ticker, to be woken once the list is let go
    /// of, when it sleeps until later or not at all.
    fn arm(&mut self, at: Instant, waker: &Waker) -> (usize, Option<Waker>) {
        debug_assert!(self.ticking, "a deadline armed where no ticker runs");
        let slot = Slot {
            at: Some(at),
            fired: false,
            waker: Some(waker.clone()),
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        let mut ticker = None;
        if self.planned.is_none_or(|planned| at < planned) {
            self.planned = Some(at);
            ticker = self.ticker.clone();
        }
        (index, ticker)
    }

    fn release(&mut self, index: usize) {
        self.slots[index] = Slot::default();
        self.free.push(index);
    }

    /// Marks the deadlines due at `now` fired, moving their wakers to `due`, and returns the
    /// earliest one still pending.
    fn fire_due(&mut self, now: Instant, due: &mut Vec<Waker>) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for slot in &mut self.slots {
            match slot.at {
                Some(at) if !slot.fired && at <= now => {
                    slot.fired = true;
                    due.extend(slot.waker.take());
                }
                Some(at) if !slot.fired => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                _ => {}
            }
        }
        earliest
    }
}

/// This thread's list id, made on first use.
fn list_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    LIST_ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

/// A future that completes at a given instant (give or take a [`TICK`]).
#[derive(Debug)]
struct Deadline {
    at: Instant,
    /// The slot once armed, and the list it is in.
    armed: Option<(u64, usize)>,
    done: bool,
}

impl Deadline {
    fn at(at: Instant) -> Self {
        Self {
            at,
            armed: None,
            done: false,
        }
    }

    fn after(duration: Duration) -> Self {
        Self::at(later(Instant::now(), duration))
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let list = list_id();
        let at = self.at;
        let (poll, ticker) = DEADLINES.with_borrow_mut(|deadlines| match self.armed {
            Some((armed_in, index)) if armed_in == list => {
                let slot = &mut deadlines.slots[index];
                if slot.fired {
                    deadlines.release(index);
                    self.armed = None;
                    self.done = true;
                    return (Poll::Ready(()), None);
                }
                match &slot.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                (Poll::Pending, None)
            }
            // Not armed yet, or (it never happens) polled on another thread than the one it was
            // armed on: that loop's ticker wakes the old slot in vain and it stays taken.
            _ => {
                let (index, ticker) = deadlines.arm(at, cx.waker());
                self.armed = Some((list, index));
                (Poll::Pending, ticker)
            }
        });
        // Woken outside the list: a waker may run code that arms a deadline.
        if let Some(ticker) = ticker {
            ticker.wake();
        }
        poll
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some((armed_in, index)) = self.armed
            && armed_in == list_id()
        {
            // Nothing if the thread is already tearing down its list.
            let _ = DEADLINES.try_with(|deadlines| deadlines.borrow_mut().release(index));
        }
    }
}

impl hyper::rt::Sleep for Deadline {}

/// hyper's timer for HTTP/1 connections served on an event loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoopTimer;

impl hyper::rt::Timer for LoopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline::after(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline::at(deadline))
    }
}

/// `future`, or `None` if it is not done by `at`.
pub(crate) fn timeout_at<F: Future + Unpin>(at: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        deadline: Deadline::at(at),
    }
}

/// See [`timeout_at`].
#[derive(Debug)]
pub(crate) struct Timeout<F> {
    future: F,
    deadline: Deadline,
}

impl<F: Future + Unpin> Future for Timeout<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = Pin::new(&mut self.future).poll(cx) {
            return Poll::Ready(Some(output));
        }
        Pin::new(&mut self.deadline).poll(cx).map(|()| None)
    }
}

/// Starts firing this thread's deadlines as they fall due, for as long as its runtime runs.
/// The runtime must be single-threaded: the ticker has to run on this thread.
pub(crate) fn start_ticker() {
    DEADLINES.with_borrow_mut(|deadlines| deadlines.ticking = true);
    tokio::spawn(ticker());
}

async fn ticker() {
    let mut sleep = Box::pin(tokio::time::sleep(Duration::ZERO));
    let mut due = Vec::new();
    std::future::poll_fn(|cx| {
        loop {
            let now = Instant::now();
            let earliest = DEADLINES.with_borrow_mut(|deadlines| {
                if !deadlines
                    .ticker
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    deadlines.ticker = Some(cx.waker().clone());
                }
                let earliest = deadlines
                    .fire_due(now, &mut due)
                    .map(|at| at.max(now + TICK));
                deadlines.planned = earliest;
                earliest
            });
            due.drain(..).for_each(Waker::wake);
            let Some(next) = earliest else {
                // Nothing to wait for: the next deadline armed wakes this task.
                return Poll::<()>::Pending;
            };
            if sleep.deadline() != next.into() {
                sleep.as_mut().reset(next.into());
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_a_loop<F: Future>(test: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            start_ticker();
            test.await
        })
    }

    fn slots_taken() -> usize {
        DEADLINES.with_borrow(|d| d.slots.len() - d.free.len())
    }

    /// A deadline fires at its time, not before, and at most a tick or so after.
    #[test]
    fn fires_on_time() {
        on_a_loop(async {
            for millis in [0, 5, 30, 120] {
                let started = Instant::now();
                Deadline::after(Duration::from_millis(millis)).await;
                let took = started.elapsed();
                assert!(
                    took >= Duration::from_millis(millis),
                    "{millis} ms: {took:?}"
                );
                assert!(
                    took < Duration::from_millis(millis) + TICK + Duration::from_millis(40),
                    "{millis} ms: {took:?}"
                );
            }
            assert_eq!(slots_taken(), 0);
        });
    }

    /// A deadline armed while the ticker sleeps toward a later one still fires on time.
    #[test]
    fn an_earlier_deadline_wakes_the_sleeping_ticker() {
        on_a_loop(async {
            let late = tokio::spawn(Deadline::after(Duration::from_secs(30)));
            tokio::task::yield_now().await;
            let started = Instant::now();
            Deadline::after(Duration::from_millis(20)).await;
            assert!(started.elapsed() < Duration::from_millis(500));
            assert_eq!(slots_taken(), 1);
            late.abort();
            let _ = late.await;
            assert_eq!(slots_taken(), 0, "a cancelled deadline frees its slot");
        });
    }

    /// `timeout_at` gives the future's output when it is done in time, and `None` otherwise.
    #[test]
    fn timeout_gives_up_at_the_deadline() {
        on_a_loop(async {
            let quick = timeout_at(
                Instant::now() + Duration::from_secs(5),
                Box::pin(async { 7 }),
            );
            assert_eq!(quick.await, Some(7));
            let started = Instant::now();
            let slow = timeout_at(
                started + Duration::from_millis(50),
                Box::pin(tokio::time::sleep(Duration::from_secs(5))),
            );
            assert_eq!(slow.await, None);
            assert!(started.elapsed() >= Duration::from_millis(50));
            assert!(started.elapsed() < Duration::from_secs(1));
            assert_eq!(slots_taken(), 0);
        });
    }

    /// Many deadlines at once each fire, and their slots are reused afterwards.
    #[test]
    fn many_deadlines_fire_and_slots_are_reused() {
        on_a_loop(async {
            let waits: Vec<_> = (0..200u64)
                .map(|i| tokio::spawn(Deadline::after(Duration::from_millis(i % 40))))
                .collect();
            for wait in waits {
                wait.await.unwrap();
            }
            let slots = DEADLINES.with_borrow(|d| d.slots.len());
            Deadline::after(Duration::from_millis(1)).await;
            assert_eq!(DEADLINES.with_borrow(|d| d.slots.len()), slots);
            assert_eq!(slots_taken(), 0);
        });
    }
}
