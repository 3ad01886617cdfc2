//! `plan`: the pure function from (desired, observed) to the steps that make them agree.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Desired, DesiredFunko, Instance, InstanceState, Observed};

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

impl Step {
    /// The funko the step acts on.
    pub fn funko(&self) -> &str {
        match self {
            Step::Build { funko, .. }
            | Step::Start { funko, .. }
            | Step::Replace { funko, .. }
            | Step::Remove { funko, .. } => funko,
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
            Some(funko) => plan_funko(funko, instances, observed, &mut steps),
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

    let (live, stopped): (Vec<&Instance>, Vec<&Instance>) = instances
        .iter()
        .partition(|i| i.state != InstanceState::Stopped);
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

    let needs_image = !start.is_empty() || !replace.is_empty();
    if needs_image && !observed.images.contains_key(&funko.image) {
        steps.push(Step::Build {
            funko: name.to_owned(),
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
