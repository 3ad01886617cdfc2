//! The Swarm planner: pure, from the desired state and the tasks observed. Swarm owns the tasks
//! of a service (it places, rolls and reschedules them), so a funko's step is "make its service
//! look like this" or "remove its service", never a single task.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::backend::StepInfo;
use crate::desired::Desired;
use crate::observe::Observed;

/// One thing to do on a Swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum SwarmStep {
    /// Build the image if needed, push it, and create or update the funko's service.
    Deploy {
        /// The funko.
        funko: String,
        /// The image built from its context (`<prefix>-<name>:<content hash>`).
        image: String,
        /// Its config hash (the service's label).
        config_hash: String,
        /// How many tasks should run.
        replicas: u32,
        /// Whether the image must be built first (the manager lacks it).
        build: bool,
        /// Why: `create`, `update` or `scale`.
        reason: DeployReason,
    },
    /// Remove the funko's service and its secrets.
    Remove {
        /// The funko.
        funko: String,
    },
}

/// Why a service is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployReason {
    /// It has no service yet.
    Create,
    /// Its service runs another config.
    Update,
    /// Its service runs another number of tasks.
    Scale,
}

impl StepInfo for SwarmStep {
    fn funko(&self) -> &str {
        match self {
            SwarmStep::Deploy { funko, .. } | SwarmStep::Remove { funko } => funko,
        }
    }

    fn describe(&self) -> (&'static str, String) {
        match self {
            SwarmStep::Deploy {
                image,
                replicas,
                reason,
                build,
                ..
            } => {
                let action = match reason {
                    DeployReason::Create => "create",
                    DeployReason::Update => "update",
                    DeployReason::Scale => "scale",
                };
                let built = if *build { "build, push, " } else { "" };
                (action, format!("{built}service of {replicas} × {image}"))
            }
            SwarmStep::Remove { .. } => ("remove", "service and its secrets".to_owned()),
        }
    }

    fn builds(&self) -> bool {
        matches!(self, SwarmStep::Deploy { build: true, .. })
    }
}

/// What one funko's service looks like in the observed tasks.
#[derive(Default)]
struct Seen {
    slots: BTreeSet<u32>,
    hashes: BTreeSet<String>,
}

/// The steps that make the Swarm match `desired`. A service shows as its tasks meant to run
/// (numbered by slot) or, with none, as one entry numbered 0; unmanaged services are never
/// touched, nor are held funkos.
pub fn plan(desired: &Desired, observed: &Observed) -> Vec<SwarmStep> {
    let mut seen: BTreeMap<&str, Seen> = BTreeMap::new();
    for instance in observed.instances.iter().filter(|i| i.managed) {
        let entry = seen.entry(instance.funko.as_str()).or_default();
        if instance.number > 0 {
            entry.slots.insert(instance.number);
            entry.hashes.insert(instance.config_hash.clone());
        }
    }
    let mut steps = Vec::new();
    for funko in desired.funkos.values() {
        if desired.held.contains(&funko.name) {
            continue;
        }
        let reason = match seen.get(funko.name.as_str()) {
            None => Some(DeployReason::Create),
            Some(s) if s.hashes.iter().any(|h| *h != funko.config_hash) => {
                Some(DeployReason::Update)
            }
            Some(s) if s.slots.len() != funko.scale as usize => Some(DeployReason::Scale),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            steps.push(SwarmStep::Deploy {
                funko: funko.name.clone(),
                image: funko.image.clone(),
                config_hash: funko.config_hash.clone(),
                replicas: funko.scale,
                build: !observed.images.contains_key(&funko.image),
                reason,
            });
        }
    }
    for funko in seen.keys() {
        if !desired.funkos.contains_key(*funko) && !desired.held.contains(*funko) {
            steps.push(SwarmStep::Remove {
                funko: (*funko).to_owned(),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::DesiredFunko;
    use crate::observe::{Instance, InstanceState};

    fn desired(funkos: &[(&str, &str, u32)]) -> Desired {
        Desired {
            funkos: funkos
                .iter()
                .map(|(name, hash, scale)| {
                    let funko = DesiredFunko {
                        name: name.to_string(),
                        image: format!("faaso-{name}:img"),
                        config_hash: hash.to_string(),
                        scale: *scale,
                        autoscaled: None,
                    };
                    (name.to_string(), funko)
                })
                .collect(),
            held: BTreeSet::new(),
        }
    }

    fn task(funko: &str, slot: u32, hash: &str, managed: bool) -> Instance {
        Instance {
            id: format!("{funko}-{slot}-{hash}"),
            name: format!("faaso-{funko}.{slot}"),
            managed,
            funko: funko.to_owned(),
            number: slot,
            config_hash: hash.to_owned(),
            image: String::new(),
            state: InstanceState::Running,
            ip: None,
            timeout: None,
            health_path: "/ping".to_owned(),
            cors: None,
        }
    }

    fn observed(instances: Vec<Instance>) -> Observed {
        Observed {
            instances,
            images: [("faaso-a:img".to_owned(), 0)].into(),
        }
    }

    #[test]
    fn a_missing_service_is_created_and_built_only_when_the_manager_lacks_the_image() {
        let steps = plan(
            &desired(&[("a", "h1", 2), ("b", "h1", 1)]),
            &observed(vec![]),
        );
        assert_eq!(steps.len(), 2);
        assert!(matches!(
            &steps[0],
            SwarmStep::Deploy {
                reason: DeployReason::Create,
                build: false,
                replicas: 2,
                ..
            }
        ));
        assert!(steps[1].builds());
    }

    #[test]
    fn a_matching_service_needs_nothing_even_mid_rollout_of_the_same_config() {
        let tasks = vec![task("a", 1, "h1", true), task("a", 2, "h1", true)];
        assert!(plan(&desired(&[("a", "h1", 2)]), &observed(tasks)).is_empty());
    }

    #[test]
    fn another_config_updates_and_another_count_scales() {
        let tasks = vec![task("a", 1, "h0", true), task("a", 1, "h1", true)];
        let steps = plan(&desired(&[("a", "h1", 1)]), &observed(tasks));
        assert!(matches!(
            &steps[0],
            SwarmStep::Deploy {
                reason: DeployReason::Update,
                ..
            }
        ));
        let tasks = vec![task("a", 1, "h1", true)];
        let steps = plan(&desired(&[("a", "h1", 3)]), &observed(tasks));
        assert!(matches!(
            &steps[0],
            SwarmStep::Deploy {
                reason: DeployReason::Scale,
                ..
            }
        ));
    }

    #[test]
    fn a_service_with_no_task_is_seen_and_scale_zero_is_kept() {
        let steps = plan(
            &desired(&[("a", "h1", 0)]),
            &observed(vec![task("a", 0, "h1", true)]),
        );
        assert!(steps.is_empty());
    }

    #[test]
    fn a_gone_funko_is_removed_but_not_a_held_one_nor_a_stranger() {
        let tasks = vec![
            task("gone", 1, "h", true),
            task("held", 1, "h", true),
            task("stranger", 1, "h", false),
        ];
        let mut want = desired(&[]);
        want.held.insert("held".to_owned());
        let steps = plan(&want, &observed(tasks));
        assert_eq!(
            steps,
            vec![SwarmStep::Remove {
                funko: "gone".to_owned()
            }]
        );
    }
}
