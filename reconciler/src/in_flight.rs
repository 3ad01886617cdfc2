//! `InFlight`: which funkos have work running now, since when and at which step, so status can
//! name a funko that has been converging for long, and how long, and where it is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::report::Converging;

/// The funkos being worked on; clones share it.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<BTreeMap<String, Entry>>>);

#[derive(Debug)]
struct Entry {
    since: u64,
    started: Instant,
    step: String,
    /// Whether the step is a build (pruning waits: a build stacks on untagged layers).
    building: bool,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `funko`'s work begins; it ends when the guard is dropped (done, failed or cancelled).
    pub(crate) fn begin(&self, funko: &str) -> Working {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = Entry {
            since,
            started: Instant::now(),
            step: "waiting to start".to_owned(),
            building: false,
        };
        self.lock().insert(funko.to_owned(), entry);
        Working {
            in_flight: self.clone(),
            funko: funko.to_owned(),
        }
    }

    /// Whether any funko's work is building an image now.
    pub fn building(&self) -> bool {
        self.lock().values().any(|entry| entry.building)
    }

    /// Where `funko`'s work stands, if it has any running.
    pub fn get(&self, funko: &str) -> Option<Converging> {
        self.lock().get(funko).map(|entry| Converging {
            since: entry.since,
            seconds: entry.started.elapsed().as_secs(),
            step: entry.step.clone(),
        })
    }
}

/// One funko's running work; dropping it says the work ended.
#[derive(Debug)]
pub(crate) struct Working {
    in_flight: InFlight,
    funko: String,
}

impl Working {
    /// The step it is at now, as a short phrase (`start faaso-a-1`).
    pub(crate) fn at(&self, step: String) {
        self.set(step, false);
    }

    /// The build step it is at now (`build faaso-a:1234`).
    pub(crate) fn at_build(&self, step: String) {
        self.set(step, true);
    }

    fn set(&self, step: String, building: bool) {
        if let Some(entry) = self.in_flight.lock().get_mut(&self.funko) {
            entry.step = step;
            entry.building = building;
        }
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.funko);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_funko_is_in_flight_at_its_step_until_its_work_ends() {
        let in_flight = InFlight::default();
        assert_eq!(in_flight.get("a"), None);
        let working = in_flight.begin("a");
        working.at_build("build faaso-a:1".to_owned());
        let now = in_flight.get("a").expect("in flight");
        assert_eq!(now.step, "build faaso-a:1");
        assert!(now.since > 0);
        assert!(in_flight.building());
        working.at("start faaso-a-1".to_owned());
        assert!(!in_flight.building());
        drop(working);
        assert_eq!(in_flight.get("a"), None);
    }
}
