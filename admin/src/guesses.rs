//! Failed token guesses, per client address: after a few, a client must wait before its next
//! request is even looked at (429 with `Retry-After`), and longer each time, so guessing the
//! token from one address costs hours, while a mistyped token costs nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Wrong tokens a client may send before it is slowed down.
const FREE_GUESSES: u32 = 5;
/// The first wait, doubled with each further wrong token.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// A client whose last wrong token is this old starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The most clients remembered; beyond it the oldest are forgotten (an attacker with many
/// addresses gets no more guesses than that many clients would).
const MOST_CLIENTS: usize = 10_000;

/// Wrong tokens by client address.
#[derive(Debug, Default)]
pub(crate) struct Guesses(Mutex<HashMap<IpAddr, Record>>);

#[derive(Debug, Clone, Copy)]
struct Record {
    wrong: u32,
    last: Instant,
    /// No request of this client is looked at before then.
    wait_until: Option<Instant>,
}

impl Guesses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `client` must still wait before a request of its is looked at, if it must.
    pub(crate) fn must_wait(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.lock().get(&client)?.wait_until?;
        (until > now).then(|| until - now)
    }

    /// `client` sent a wrong token.
    pub(crate) fn wrong(&self, client: IpAddr, now: Instant) {
        let mut clients = self.lock();
        if clients.len() >= MOST_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, r| now.saturating_duration_since(r.last) < FORGET_AFTER);
            if clients.len() >= MOST_CLIENTS
                && let Some(oldest) = clients.iter().min_by_key(|(_, r)| r.last).map(|(a, _)| *a)
            {
                clients.remove(&oldest);
            }
        }
        let record = clients.entry(client).or_insert(Record {
            wrong: 0,
            last: now,
            wait_until: None,
        });
        if now.saturating_duration_since(record.last) >= FORGET_AFTER {
            record.wrong = 0;
        }
        record.wrong = record.wrong.saturating_add(1);
        record.last = now;
        record.wait_until = record
            .wrong
            .checked_sub(FREE_GUESSES)
            .filter(|over| *over > 0)
            .map(|over| now + wait_after(over));
    }

    /// `client` sent the right token: it starts afresh.
    pub(crate) fn right(&self, client: IpAddr) {
        self.lock().remove(&client);
    }
}

/// The wait after the `over`th wrong token past the free ones: 1 s, doubling, at most 60 s.
fn wait_after(over: u32) -> Duration {
    let doublings = over.saturating_sub(1).min(16);
    FIRST_WAIT.saturating_mul(1 << doublings).min(LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn a_client_is_slowed_after_its_free_guesses_and_longer_each_time() {
        let guesses = Guesses::default();
        let start = Instant::now();
        for _ in 0..FREE_GUESSES {
            guesses.wrong(CLIENT, start);
            assert_eq!(guesses.must_wait(CLIENT, start), None);
        }
        guesses.wrong(CLIENT, start);
        assert_eq!(
            guesses.must_wait(CLIENT, start),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            guesses.must_wait(OTHER, start),
            None,
            "others are not slowed"
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(guesses.must_wait(CLIENT, later), None);
        guesses.wrong(CLIENT, later);
        assert_eq!(
            guesses.must_wait(CLIENT, later),
            Some(Duration::from_secs(2))
        );
        for _ in 0..20 {
            guesses.wrong(CLIENT, later);
        }
        assert_eq!(guesses.must_wait(CLIENT, later), Some(LONGEST_WAIT));
    }

    #[test]
    fn the_right_token_or_a_quiet_quarter_hour_starts_afresh() {
        let guesses = Guesses::default();
        let start = Instant::now();
        for _ in 0..=FREE_GUESSES {
            guesses.wrong(CLIENT, start);
        }
        guesses.right(CLIENT);
        assert_eq!(guesses.must_wait(CLIENT, start), None);
        for _ in 0..FREE_GUESSES {
            guesses.wrong(CLIENT, start);
        }
        let later = start + FORGET_AFTER;
        guesses.wrong(CLIENT, later);
        assert_eq!(guesses.must_wait(CLIENT, later), None);
    }

    #[test]
    fn many_clients_stay_bounded() {
        let guesses = Guesses::default();
        let now = Instant::now();
        for n in 0..(MOST_CLIENTS as u32 + 10) {
            guesses.wrong(IpAddr::V4(std::net::Ipv4Addr::from(n)), now);
        }
        assert!(guesses.lock().len() <= MOST_CLIENTS);
    }
}
