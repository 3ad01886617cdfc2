//! Stopping an event loop's client connections gracefully: each finishes the request in flight,
//! then closes.
//!
//! hyper-util's `GracefulShutdown` cannot watch hyper's own upgradeable HTTP/1 connection, and
//! checks its signal under a lock on every wake-up of every connection. Here the signal is one
//! flag: a connection registers for the wake-up once, and then pays an atomic load per wake-up.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// The signal that the loop stops.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    stopping: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Tells every connection to finish: idle ones close now, busy ones after their request.
    pub(crate) fn begin(&self) {
        self.stopping.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Completes once the loop stops.
    pub(crate) async fn stopped(&self) {
        let mut notified = pin!(self.notify.notified());
        notified.as_mut().enable();
        if !self.is_stopping() {
            notified.await;
        }
    }

    /// Drives `connection` to its end; once the loop stops, `finish` asks it to end after the
    /// request in flight.
    pub(crate) async fn serve<C, E>(
        &self,
        connection: C,
        finish: impl FnOnce(Pin<&mut C>),
    ) -> Result<(), E>
    where
        C: Future<Output = Result<(), E>>,
    {
        let mut connection = pin!(connection);
        let mut notified = pin!(self.notify.notified());
        // In the list of waiters from here on: a `begin` from now on wakes this task.
        notified.as_mut().enable();
        let mut finish = Some(finish);
        let mut registered = false;
        poll_fn(|cx| {
            if finish.is_some() {
                if !registered {
                    // Stores this task's waker with the notification, once: it does not change.
                    registered = true;
                    let _ = notified.as_mut().poll(cx);
                }
                if self.is_stopping()
                    && let Some(finish) = finish.take()
                {
                    finish(connection.as_mut());
                }
            }
            connection.as_mut().poll(cx)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    /// A stand-in connection: serves until asked to finish, then ends on its next poll.
    struct Connection {
        finishing: bool,
    }

    impl Future for Connection {
        type Output = Result<(), ()>;

        fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Self::Output> {
            if self.finishing {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
    }

    /// Connections that were already waiting, and one that starts after the signal, are all
    /// asked to finish once, and end.
    #[tokio::test]
    async fn every_connection_is_asked_to_finish_once() {
        let stop = Arc::new(Stop::default());
        let asked = Arc::new(AtomicUsize::new(0));
        let serve = |stop: Arc<Stop>, asked: Arc<AtomicUsize>| async move {
            stop.serve(Connection { finishing: false }, |mut c| {
                asked.fetch_add(1, Ordering::SeqCst);
                c.finishing = true;
            })
            .await
        };
        let waiting: Vec<_> = (0..3)
            .map(|_| tokio::spawn(serve(stop.clone(), asked.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiting.iter().all(|w| !w.is_finished()));
        stop.begin();
        for w in waiting {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("a waiting connection ends")
                .unwrap()
                .unwrap();
        }
        serve(stop.clone(), asked.clone()).await.unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 4);
        tokio::time::timeout(Duration::from_secs(5), stop.stopped())
            .await
            .expect("stopped completes after the signal");
    }
}
