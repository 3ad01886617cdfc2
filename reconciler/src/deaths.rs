//! Containers the engine reported dead before its list caught up. Docker sends `die` before
//! the list it answers from says "exited", so a pass started by that event could still see
//! the dead instance as running, wait on its healthcheck, and replace it only a pass later.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::observe::{InstanceState, Observed};

/// The ids of containers seen to die and not yet seen stopped; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Deaths(Arc<Mutex<HashSet<String>>>);

impl Deaths {
    /// The engine said this container died.
    pub fn died(&self, id: &str) {
        self.ids().insert(id.to_owned());
    }

    /// The engine said this container started (its restart policy brought it back).
    pub fn started(&self, id: &str) {
        self.ids().remove(id);
    }

    /// Marks instances known dead as exited, and forgets ids the list has caught up with.
    pub fn apply(&self, observed: &mut Observed) {
        let mut ids = self.ids();
        if ids.is_empty() {
            return;
        }
        let mut lagging = HashSet::new();
        for instance in &mut observed.instances {
            if ids.contains(&instance.id) && instance.state.is_live() {
                instance.state = InstanceState::Exited;
                lagging.insert(instance.id.clone());
            }
        }
        *ids = lagging;
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays valid whatever a panicking holder did: take it back.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Instance;

    fn instance(id: &str, state: InstanceState) -> Instance {
        Instance {
            id: id.to_owned(),
            name: format!("faaso-f-1-{id}"),
            managed: true,
            funko: "f".to_owned(),
            number: 1,
            config_hash: "c".to_owned(),
            image: "i".to_owned(),
            state,
            ip: None,
            timeout: None,
            health_path: "/ping".to_owned(),
            cors: None,
        }
    }

    fn observed(instances: Vec<Instance>) -> Observed {
        Observed {
            instances,
            ..Observed::default()
        }
    }

    #[test]
    fn a_dead_container_still_listed_running_counts_as_stopped_until_the_list_agrees() {
        let deaths = Deaths::default();
        deaths.died("a");
        let mut lagging = observed(vec![
            instance("a", InstanceState::Running),
            instance("b", InstanceState::Running),
        ]);
        deaths.apply(&mut lagging);
        assert_eq!(lagging.instances[0].state, InstanceState::Exited);
        assert_eq!(lagging.instances[1].state, InstanceState::Running);

        // Still lagging on the next look: still dead.
        let mut again = observed(vec![instance("a", InstanceState::Running)]);
        deaths.apply(&mut again);
        assert_eq!(again.instances[0].state, InstanceState::Exited);

        // The list caught up (or the container is gone): the note is dropped.
        deaths.apply(&mut observed(vec![instance("a", InstanceState::Exited)]));
        let mut later = observed(vec![instance("a", InstanceState::Running)]);
        deaths.apply(&mut later);
        assert_eq!(later.instances[0].state, InstanceState::Running);
    }

    #[test]
    fn a_restart_after_the_death_cancels_it() {
        let deaths = Deaths::default();
        deaths.died("a");
        deaths.started("a");
        let mut seen = observed(vec![instance("a", InstanceState::Running)]);
        deaths.apply(&mut seen);
        assert_eq!(seen.instances[0].state, InstanceState::Running);
    }
}
