//! What to do about it: the container planner, the pure function from (desired, observed) to
//! the steps that make numbered containers on one engine agree with the funkos folder.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backend::StepInfo;
use crate::desired::{Autoscaled, Desired, DesiredFunko};
use crate::observe::{Instance, InstanceState, Observed};

/// A container the plan refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct InstanceRef {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// Its instance number.
    pub number: u32,
}

/// Why an instance is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveReason {
    /// It stopped or died; a new one takes its number.
    Stopped,
    /// Another instance holds the same number (an interrupted rollout leaves these).
    Duplicate,
    /// Its number is above the funko's scale.
    ScaledDown,
    /// Its funko folder is gone.
    FunkoGone,
    /// It was paused or stopped, idle, when its funko's config changed: not worth waking.
    Outdated,
}

/// One thing to do. Steps of one funko run in order; different funkos may run concurrently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    /// Build the funko's image (its tag is missing).
    Build {
        /// The funko.
        funko: String,
        /// The image reference to build.
        image: String,
    },
    /// Start a new instance.
    Start {
        /// The funko.
        funko: String,
        /// The instance number it takes.
        number: u32,
    },
    /// Start a new instance with the current config, wait until it is ready, then drain and
    /// remove the outdated one holding the same number.
    Replace {
        /// The funko.
        funko: String,
        /// The outdated instance.
        old: InstanceRef,
    },
    /// Start a paused or stopped instance of the current config again and wait until it is
    /// ready (an autoscaled funko without `faaso server`, which otherwise wakes them).
    Resume {
        /// The funko.
        funko: String,
        /// The instance.
        instance: InstanceRef,
        /// Whether it is paused (else stopped).
        paused: bool,
    },
    /// Drain, stop and remove an instance.
    Remove {
        /// The funko.
        funko: String,
        /// The instance.
        instance: InstanceRef,
        /// Why.
        reason: RemoveReason,
    },
}

impl StepInfo for Step {
    fn funko(&self) -> &str {
        match self {
            Step::Build { funko, .. }
            | Step::Start { funko, .. }
            | Step::Replace { funko, .. }
            | Step::Resume { funko, .. }
            | Step::Remove { funko, .. } => funko,
        }
    }

    fn describe(&self) -> (&'static str, String) {
        match self {
            Step::Build { image, .. } => ("build", image.clone()),
            Step::Start { number, .. } => ("start", format!("instance {number}")),
            Step::Replace { old, .. } => {
                ("replace", format!("instance {} ({})", old.number, old.name))
            }
            Step::Resume { instance, .. } => ("resume", instance.name.clone()),
            Step::Remove {
                instance, reason, ..
            } => ("remove", format!("{} ({})", instance.name, reason.as_str())),
        }
    }

    fn builds(&self) -> bool {
        matches!(self, Step::Build { .. })
    }
}

impl RemoveReason {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoveReason::Stopped => "stopped",
            RemoveReason::Duplicate => "duplicate",
            RemoveReason::ScaledDown => "scaled_down",
            RemoveReason::FunkoGone => "funko_gone",
            RemoveReason::Outdated => "outdated",
        }
    }
}

/// What it takes to make `observed` match `desired`, in a deterministic order: by funko name,
/// and within a funko: build, clear stopped or duplicate instances, start, replace, scale down.
/// Containers without the managed label are never part of a step; held funkos are left alone.
pub fn plan(desired: &Desired, observed: &Observed) -> Vec<Step> {
    let mut by_funko: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for instance in observed.instances.iter().filter(|i| i.managed) {
        by_funko.entry(&instance.funko).or_default().push(instance);
    }
    for instances in by_funko.values_mut() {
        instances.sort_by(|a, b| (a.number, &a.name, &a.id).cmp(&(b.number, &b.name, &b.id)));
    }
    let mut names: Vec<&str> = desired.funkos.keys().map(String::as_str).collect();
    names.extend(by_funko.keys().copied());
    names.sort_unstable();
    names.dedup();

    let mut steps = Vec::new();
    for name in names {
        if desired.held.contains(name) {
            continue;
        }
        let instances = by_funko.get(name).map(Vec::as_slice).unwrap_or_default();
        match desired.funkos.get(name) {
            Some(funko) => match &funko.autoscaled {
                None => plan_funko(funko, instances, observed, &mut steps),
                Some(auto) => plan_autoscaled(funko, auto, instances, observed, &mut steps),
            },
            None => steps.extend(
                instances
                    .iter()
                    .map(|i| remove(name, i, RemoveReason::FunkoGone)),
            ),
        }
    }
    steps
}

fn plan_funko(
    funko: &DesiredFunko,
    instances: &[&Instance],
    observed: &Observed,
    steps: &mut Vec<Step>,
) {
    let name = funko.name.as_str();
    let mut clear = Vec::new();
    let mut start = Vec::new();
    let mut replace = Vec::new();
    let mut scale_down = Vec::new();

    let (live, stopped): (Vec<&Instance>, Vec<&Instance>) =
        instances.iter().partition(|i| i.state.is_live());
    clear.extend(
        stopped
            .iter()
            .map(|i| remove(name, i, RemoveReason::Stopped)),
    );

    for number in 1..=funko.scale {
        let holders: Vec<&Instance> = live
            .iter()
            .copied()
            .filter(|i| i.number == number)
            .collect();
        // Keep a current instance if there is one, else the first outdated one (to roll it).
        let keeper = holders
            .iter()
            .find(|i| i.config_hash == funko.config_hash)
            .or_else(|| holders.first());
        match keeper {
            None => start.push(Step::Start {
                funko: name.to_owned(),
                number,
            }),
            Some(keeper) => {
                if keeper.config_hash != funko.config_hash {
                    replace.push(Step::Replace {
                        funko: name.to_owned(),
                        old: instance_ref(keeper),
                    });
                }
                clear.extend(
                    holders
                        .iter()
                        .filter(|i| i.id != keeper.id)
                        .map(|i| remove(name, i, RemoveReason::Duplicate)),
                );
            }
        }
    }
    scale_down.extend(
        live.iter()
            .filter(|i| i.number == 0 || i.number > funko.scale)
            .map(|i| remove(name, i, RemoveReason::ScaledDown)),
    );

    push_in_order(funko, observed, steps, [clear, start, replace, scale_down]);
}

/// An autoscaled funko: its instances are kept whether running, paused or stopped (the count
/// inside the bounds is runtime state), and removed only when outdated while idle, above `max`,
/// or in the way (duplicates, broken ones). At least `funko.scale` exist afterwards; with
/// `resume`, that many run.
fn plan_autoscaled(
    funko: &DesiredFunko,
    auto: &Autoscaled,
    instances: &[&Instance],
    observed: &Observed,
    steps: &mut Vec<Step>,
) {
    let name = funko.name.as_str();
    let current = |i: &Instance| i.config_hash == funko.config_hash;
    let mut clear = Vec::new();
    let mut usable = Vec::new();
    for instance in instances.iter().copied() {
        if instance.state.is_live() || (instance.state.is_parked() && current(instance)) {
            usable.push(instance);
        } else if instance.state.is_parked() {
            clear.push(remove(name, instance, RemoveReason::Outdated));
        } else {
            clear.push(remove(name, instance, RemoveReason::Stopped));
        }
    }
    let mut scale_down = Vec::new();
    let mut keepers: Vec<&Instance> = Vec::new();
    for instance in usable {
        if instance.number == 0 || instance.number > auto.max {
            scale_down.push(remove(name, instance, RemoveReason::ScaledDown));
        } else {
            keepers.push(instance);
        }
    }
    // One keeper per number: a current running one, else a current idle one, else an outdated
    // running one (to roll).
    let rank = |i: &Instance| (!current(i), !i.state.is_live());
    keepers.sort_by_key(|i| (i.number, rank(i)));
    let mut numbers = BTreeMap::new();
    for instance in keepers {
        if let std::collections::btree_map::Entry::Vacant(slot) = numbers.entry(instance.number) {
            slot.insert(instance);
        } else {
            clear.push(remove(name, instance, RemoveReason::Duplicate));
        }
    }
    let replace: Vec<Step> = numbers
        .values()
        .filter(|i| !current(i))
        .map(|i| Step::Replace {
            funko: name.to_owned(),
            old: instance_ref(i),
        })
        .collect();
    let mut resume = Vec::new();
    if auto.resume {
        let running = numbers.values().filter(|i| i.state.is_live()).count();
        // Paused ones first: they wake in milliseconds.
        let mut idle: Vec<&&Instance> = numbers.values().filter(|i| i.state.is_parked()).collect();
        idle.sort_by_key(|i| (i.state != InstanceState::Paused, i.number));
        resume.extend(
            idle.into_iter()
                .take((funko.scale as usize).saturating_sub(running))
                .map(|instance| Step::Resume {
                    funko: name.to_owned(),
                    instance: instance_ref(instance),
                    paused: instance.state == InstanceState::Paused,
                }),
        );
    }
    let missing = (funko.scale as usize).saturating_sub(numbers.len());
    let start = (1..=auto.max)
        .filter(|n| !numbers.contains_key(n))
        .take(missing)
        .map(|number| Step::Start {
            funko: name.to_owned(),
            number,
        })
        .collect();
    clear.extend(resume);
    // The image is built even while nothing runs, so a first wake only creates a container.
    if !observed.images.contains_key(&funko.image) {
        steps.push(Step::Build {
            funko: name.to_owned(),
            image: funko.image.clone(),
        });
    }
    push_in_order(funko, observed, steps, [clear, start, replace, scale_down]);
}

/// A funko's steps in order (a build first when a start or replacement needs the image).
fn push_in_order(
    funko: &DesiredFunko,
    observed: &Observed,
    steps: &mut Vec<Step>,
    [clear, start, replace, scale_down]: [Vec<Step>; 4],
) {
    let needs_image = !start.is_empty() || !replace.is_empty();
    let built = steps
        .iter()
        .any(|s| matches!(s, Step::Build { funko: f, .. } if *f == funko.name));
    if needs_image && !built && !observed.images.contains_key(&funko.image) {
        steps.push(Step::Build {
            funko: funko.name.clone(),
            image: funko.image.clone(),
        });
    }
    steps.extend(clear);
    steps.extend(start);
    steps.extend(replace);
    steps.extend(scale_down);
}

fn instance_ref(instance: &Instance) -> InstanceRef {
    InstanceRef {
        id: instance.id.clone(),
        name: instance.name.clone(),
        number: instance.number,
    }
}

fn remove(funko: &str, instance: &Instance, reason: RemoveReason) -> Step {
    Step::Remove {
        funko: funko.to_owned(),
        instance: instance_ref(instance),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Applies steps as an executor would, everything succeeding: enough to check the
    /// planner's own properties (the pass and its executor are tested on the twin).
    #[derive(Debug, Clone)]
    struct Engine {
        instances: Vec<Instance>,
        images: BTreeMap<String, u64>,
        next_id: u64,
    }

    impl Engine {
        fn new(observed: Observed) -> Self {
            Self {
                instances: observed.instances,
                images: observed.images,
                next_id: 0,
            }
        }

        fn observe(&self) -> Observed {
            Observed {
                instances: self.instances.clone(),
                images: self.images.clone(),
            }
        }

        fn apply(&mut self, desired: &Desired, steps: &[Step]) {
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
                    Step::Resume { instance, .. } => {
                        for i in self.instances.iter_mut().filter(|i| i.id == instance.id) {
                            i.state = InstanceState::Running;
                        }
                    }
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
                id: format!("new-{}", self.next_id),
                name: format!("faaso-{funko}-{number}-{}", self.next_id),
                managed: true,
                funko: funko.to_owned(),
                number,
                config_hash: spec.config_hash.clone(),
                image: spec.image.clone(),
                state: InstanceState::Running,
                ip: None,
                timeout: None,
                health_path: "/ping".to_owned(),
                cors: None,
            });
        }
    }

    #[test]
    fn a_remove_reason_reads_as_its_json_name() {
        for reason in [
            RemoveReason::Stopped,
            RemoveReason::Duplicate,
            RemoveReason::ScaledDown,
            RemoveReason::FunkoGone,
            RemoveReason::Outdated,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    const FUNKOS: [&str; 4] = ["a", "b", "c", "d"];

    fn desired_strategy() -> impl Strategy<Value = Desired> {
        (
            proptest::collection::btree_map(
                0..4usize,
                (
                    0..4u32,
                    0..3u8,
                    proptest::option::of((0..3u32, 1..5u32, any::<bool>())),
                ),
                0..4,
            ),
            proptest::collection::btree_set(0..4usize, 0..2),
        )
            .prop_map(|(funkos, held)| Desired {
                funkos: funkos
                    .into_iter()
                    .map(|(f, (scale, version, auto))| {
                        let name = FUNKOS[f].to_owned();
                        let autoscaled =
                            auto.map(|(min, extra, resume)| autoscaled(min, min + extra, resume));
                        let funko = DesiredFunko {
                            name: name.clone(),
                            image: format!("faaso-{name}:v{version}"),
                            config_hash: format!("cfg{version}"),
                            // An autoscaled funko's count is within its bounds.
                            scale: autoscaled
                                .as_ref()
                                .map_or(scale, |a| scale.clamp(a.min, a.max)),
                            autoscaled,
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
            0..5u8,
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
                    InstanceState::Paused,
                    InstanceState::Exited,
                ][state as usize],
                ip: None,
                timeout: None,
                health_path: "/ping".to_owned(),
                cors: None,
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
            let mut engine = Engine::new(observed);
            let steps = plan(&desired, &engine.observe());
            engine.apply(&desired, &steps);
            prop_assert_eq!(plan(&desired, &engine.observe()), vec![]);
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
            let mut engine = Engine::new(observed);
            let steps = plan(&desired, &engine.observe());
            prop_assert!(steps.iter().all(|s| !desired.held.contains(s.funko())));
            engine.apply(&desired, &steps);
            for instance in untouchable {
                prop_assert!(engine.instances.contains(&instance));
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
                    Step::Remove { .. } | Step::Resume { .. } => {}
                }
            }
        }

        #[test]
        fn an_autoscaled_funko_keeps_its_current_instances_running_or_idle(
            desired in desired_strategy(), observed in observed_strategy()
        ) {
            for step in plan(&desired, &observed) {
                let Some(auto) = desired.funkos.get(step.funko()).and_then(|f| f.autoscaled.as_ref()) else {
                    continue;
                };
                let current = &desired.funkos[step.funko()].config_hash;
                match &step {
                    Step::Remove { instance, reason, .. } => {
                        let removed = observed.instances.iter().find(|i| i.id == instance.id).unwrap();
                        let in_bounds = (1..=auto.max).contains(&removed.number);
                        let kept_kind = removed.state.is_live() || removed.state.is_parked();
                        prop_assert!(
                            !(in_bounds && kept_kind && &removed.config_hash == current)
                                || *reason == RemoveReason::Duplicate,
                            "removed a current instance: {step:?}"
                        );
                    }
                    Step::Resume { .. } => prop_assert!(auto.resume, "woke without resume: {step:?}"),
                    Step::Start { number, .. } => prop_assert!(*number <= auto.max),
                    _ => {}
                }
            }
        }

        #[test]
        fn a_scale_change_never_recreates_the_instances_that_stay(
            desired in desired_strategy(), observed in observed_strategy(), new_scale in 0..5u32
        ) {
            let mut engine = Engine::new(observed);
            let steps = plan(&desired, &engine.observe());
            engine.apply(&desired, &steps);
            let before = engine.instances.clone();
            let mut rescaled = desired.clone();
            rescaled.funkos.retain(|_, f| f.autoscaled.is_none());
            for funko in rescaled.funkos.values_mut() {
                funko.scale = new_scale;
            }
            for step in plan(&rescaled, &engine.observe()) {
                if !rescaled.funkos.contains_key(step.funko()) {
                    // An autoscaled funko left out above: its folder reads as gone.
                    continue;
                }
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
                    autoscaled: None,
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
            health_path: "/ping".to_owned(),
            cors: None,
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

    fn autoscaled(min: u32, max: u32, resume: bool) -> Autoscaled {
        let secs = std::time::Duration::from_secs;
        Autoscaled {
            min,
            max,
            target: 10,
            limit: None,
            queue: 100,
            stable_window: secs(60),
            panic_window: secs(6),
            pause_after: secs(30),
            stop_after: secs(900),
            timeout: secs(30),
            resume,
        }
    }

    /// Funko `a` autoscaled between 0 and 3 wanting `scale`, and instances of it as
    /// `(id, number, config version, state)`.
    fn autoscaled_case(
        scale: u32,
        resume: bool,
        instances: &[(&str, u32, u8, InstanceState)],
    ) -> Vec<Step> {
        let desired = Desired {
            funkos: BTreeMap::from([(
                "a".to_owned(),
                DesiredFunko {
                    name: "a".into(),
                    image: "faaso-a:v2".into(),
                    config_hash: "cfg2".into(),
                    scale,
                    autoscaled: Some(autoscaled(0, 3, resume)),
                },
            )]),
            held: Default::default(),
        };
        let observed = Observed {
            instances: instances
                .iter()
                .map(|(id, number, version, state)| Instance {
                    id: (*id).into(),
                    name: format!("faaso-a-{number}-{id}"),
                    managed: true,
                    funko: "a".into(),
                    number: *number,
                    config_hash: format!("cfg{version}"),
                    image: format!("faaso-a:v{version}"),
                    state: *state,
                    ip: None,
                    timeout: None,
                    health_path: "/ping".to_owned(),
                    cors: None,
                })
                .collect(),
            images: BTreeMap::from([("faaso-a:v2".into(), 2)]),
        };
        plan(&desired, &observed)
    }

    #[test]
    fn idle_instances_of_the_current_config_are_kept_and_outdated_idle_ones_go() {
        use InstanceState::*;
        let steps = autoscaled_case(
            0,
            false,
            &[
                ("p", 1, 2, Paused),
                ("s", 2, 2, Exited),
                ("old", 3, 1, Paused),
                ("x", 4, 2, Paused),
            ],
        );
        let removed: Vec<_> = steps
            .iter()
            .map(|s| match s {
                Step::Remove {
                    instance, reason, ..
                } => (instance.id.as_str(), *reason),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            removed,
            [
                ("old", RemoveReason::Outdated),
                ("x", RemoveReason::ScaledDown)
            ]
        );
    }

    #[test]
    fn without_a_server_idle_instances_are_resumed_paused_first_before_any_is_created() {
        use InstanceState::*;
        let steps = autoscaled_case(3, true, &[("s", 1, 2, Exited), ("p", 3, 2, Paused)]);
        let order: Vec<String> = steps
            .iter()
            .map(|s| format!("{:?}", s.describe()))
            .collect();
        assert_eq!(steps.len(), 3, "{order:?}");
        assert!(
            matches!(&steps[0], Step::Resume { instance, paused: true, .. } if instance.id == "p")
        );
        assert!(
            matches!(&steps[1], Step::Resume { instance, paused: false, .. } if instance.id == "s")
        );
        assert!(matches!(&steps[2], Step::Start { number: 2, .. }));
    }

    #[test]
    fn a_demand_above_what_exists_creates_only_the_difference() {
        use InstanceState::*;
        let steps = autoscaled_case(3, false, &[("r", 1, 2, Running), ("p", 2, 2, Paused)]);
        assert_eq!(
            steps,
            [Step::Start {
                funko: "a".into(),
                number: 3
            }]
        );
        assert!(autoscaled_case(1, false, &[("r", 1, 2, Running), ("p", 2, 2, Paused)]).is_empty());
    }
}
