//! `Twin`: an in-memory stand-in for the container engine, for unit and property tests of the
//! planner and the pass logic. It is never the only test of a behaviour: the Docker engine
//! implementation is tested against a real engine.

use std::collections::BTreeMap;

use crate::model::{Desired, Instance, InstanceState, Observed};
use crate::plan::Step;

/// The containers and images of a pretend engine.
#[derive(Debug, Clone, Default)]
pub struct Twin {
    /// Its containers.
    pub instances: Vec<Instance>,
    /// Its images, with when each was built.
    pub images: BTreeMap<String, u64>,
    next_id: u64,
}

impl Twin {
    /// A twin holding `observed`.
    pub fn new(observed: Observed) -> Self {
        Self {
            instances: observed.instances,
            images: observed.images,
            next_id: 0,
        }
    }

    /// What a listing would return.
    pub fn observe(&self) -> Observed {
        Observed {
            instances: self.instances.clone(),
            images: self.images.clone(),
        }
    }

    /// Applies `steps` as the executor would, everything succeeding.
    pub fn apply(&mut self, desired: &Desired, steps: &[Step]) {
        for step in steps {
            match step {
                Step::Build { image, .. } => {
                    self.images.insert(image.clone(), 0);
                }
                Step::Start { funko, number } => self.start(desired, funko, *number),
                Step::Replace { funko, old } => {
                    self.start(desired, funko, old.number);
                    self.instances.retain(|i| i.id != old.id);
                }
                Step::Remove { instance, .. } => self.instances.retain(|i| i.id != instance.id),
            }
        }
    }

    fn start(&mut self, desired: &Desired, funko: &str, number: u32) {
        let spec = &desired.funkos[funko];
        assert!(
            self.images.contains_key(&spec.image),
            "started {funko} before its image was built"
        );
        self.next_id += 1;
        self.instances.push(Instance {
            id: format!("twin-{}", self.next_id),
            name: format!("faaso-{funko}-{number}-{}", self.next_id),
            managed: true,
            funko: funko.to_owned(),
            number,
            config_hash: spec.config_hash.clone(),
            image: spec.image.clone(),
            state: InstanceState::Running,
            ip: None,
            timeout: None,
            health_path: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::DesiredFunko;
    use crate::plan::{RemoveReason, plan};

    const FUNKOS: [&str; 4] = ["a", "b", "c", "d"];

    fn desired_strategy() -> impl Strategy<Value = Desired> {
        (
            proptest::collection::btree_map(0..4usize, (0..4u32, 0..3u8), 0..4),
            proptest::collection::btree_set(0..4usize, 0..2),
        )
            .prop_map(|(funkos, held)| Desired {
                funkos: funkos
                    .into_iter()
                    .map(|(f, (scale, version))| {
                        let name = FUNKOS[f].to_owned();
                        let funko = DesiredFunko {
                            name: name.clone(),
                            image: format!("faaso-{name}:v{version}"),
                            config_hash: format!("cfg{version}"),
                            scale,
                        };
                        (name, funko)
                    })
                    .collect::<BTreeMap<_, _>>(),
                held: held.into_iter().map(|f| FUNKOS[f].to_owned()).collect(),
            })
    }

    fn instance_strategy() -> impl Strategy<Value = Instance> {
        (
            0..4usize,
            0..5u32,
            0..3u8,
            0..3u8,
            any::<bool>(),
            0..1000u32,
        )
            .prop_map(|(f, number, version, state, managed, id)| Instance {
                id: format!("c{id}-{f}-{number}-{version}"),
                name: format!("faaso-{}-{number}-{id}", FUNKOS[f]),
                managed,
                funko: FUNKOS[f].to_owned(),
                number,
                config_hash: format!("cfg{version}"),
                image: format!("faaso-{}:v{version}", FUNKOS[f]),
                state: [
                    InstanceState::Running,
                    InstanceState::Restarting,
                    InstanceState::Stopped,
                ][state as usize],
                ip: None,
                timeout: None,
                health_path: None,
            })
    }

    fn observed_strategy() -> impl Strategy<Value = Observed> {
        (
            proptest::collection::vec(instance_strategy(), 0..12),
            proptest::collection::btree_set((0..4usize, 0..3u8), 0..6),
        )
            .prop_map(|(mut instances, images)| {
                instances.sort_by(|a, b| a.id.cmp(&b.id));
                instances.dedup_by(|a, b| a.id == b.id);
                Observed {
                    instances,
                    images: images
                        .into_iter()
                        .map(|(f, v)| (format!("faaso-{}:v{v}", FUNKOS[f]), 0))
                        .collect(),
                }
            })
    }

    proptest! {
        #[test]
        fn applying_a_plan_then_planning_again_yields_nothing(
            desired in desired_strategy(), observed in observed_strategy()
        ) {
            let mut twin = Twin::new(observed);
            let steps = plan(&desired, &twin.observe());
            twin.apply(&desired, &steps);
            prop_assert_eq!(plan(&desired, &twin.observe()), vec![]);
        }

        #[test]
        fn unmanaged_containers_and_held_funkos_are_never_touched(
            desired in desired_strategy(), observed in observed_strategy()
        ) {
            let untouchable: Vec<Instance> = observed
                .instances
                .iter()
                .filter(|i| !i.managed || desired.held.contains(&i.funko))
                .cloned()
                .collect();
            let mut twin = Twin::new(observed);
            let steps = plan(&desired, &twin.observe());
            prop_assert!(steps.iter().all(|s| !desired.held.contains(s.funko())));
            twin.apply(&desired, &steps);
            for instance in untouchable {
                prop_assert!(twin.instances.contains(&instance));
            }
        }

        #[test]
        fn the_plan_is_deterministic_whatever_the_listing_order(
            desired in desired_strategy(), observed in observed_strategy()
        ) {
            let mut reversed = observed.clone();
            reversed.instances.reverse();
            prop_assert_eq!(plan(&desired, &observed), plan(&desired, &reversed));
        }

        #[test]
        fn a_build_comes_before_any_instance_that_needs_its_image(
            desired in desired_strategy(), observed in observed_strategy()
        ) {
            let steps = plan(&desired, &observed);
            let mut built = observed.images.clone();
            for step in &steps {
                match step {
                    Step::Build { image, .. } => { built.insert(image.clone(), 0); }
                    Step::Start { funko, .. } | Step::Replace { funko, .. } => {
                        prop_assert!(built.contains_key(&desired.funkos[funko].image));
                    }
                    Step::Remove { .. } => {}
                }
            }
        }

        #[test]
        fn a_scale_change_never_recreates_the_instances_that_stay(
            desired in desired_strategy(), observed in observed_strategy(), new_scale in 0..5u32
        ) {
            let mut twin = Twin::new(observed);
            let steps = plan(&desired, &twin.observe());
            twin.apply(&desired, &steps);
            let before = twin.instances.clone();
            let mut rescaled = desired.clone();
            for funko in rescaled.funkos.values_mut() {
                funko.scale = new_scale;
            }
            for step in plan(&rescaled, &twin.observe()) {
                match step {
                    // Scaling up from 0 may need the image that scale 0 never built.
                    Step::Build { .. } => {}
                    Step::Start { number, .. } => prop_assert!(number <= new_scale),
                    Step::Remove { reason, instance, .. } => {
                        prop_assert_eq!(reason, RemoveReason::ScaledDown);
                        prop_assert!(instance.number > new_scale);
                    }
                    other => prop_assert!(false, "unexpected step {other:?} (before: {before:?})"),
                }
            }
        }
    }

    #[test]
    fn an_interrupted_rollout_keeps_the_new_instance_and_drops_the_old() {
        let desired = Desired {
            funkos: BTreeMap::from([(
                "a".to_owned(),
                DesiredFunko {
                    name: "a".into(),
                    image: "faaso-a:v2".into(),
                    config_hash: "cfg2".into(),
                    scale: 1,
                },
            )]),
            held: Default::default(),
        };
        let instance = |id: &str, cfg: &str| Instance {
            id: id.into(),
            name: format!("faaso-a-1-{id}"),
            managed: true,
            funko: "a".into(),
            number: 1,
            config_hash: cfg.into(),
            image: format!("faaso-a:v{}", &cfg[3..]),
            state: InstanceState::Running,
            ip: None,
            timeout: None,
            health_path: None,
        };
        let observed = Observed {
            instances: vec![instance("old", "cfg1"), instance("new", "cfg2")],
            images: BTreeMap::from([("faaso-a:v1".into(), 1), ("faaso-a:v2".into(), 2)]),
        };
        let steps = plan(&desired, &observed);
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(
            matches!(&steps[0], Step::Remove { instance, reason: RemoveReason::Duplicate, .. } if instance.id == "old")
        );
    }
}
