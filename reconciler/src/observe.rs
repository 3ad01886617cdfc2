//! What runs now: the instances and images an engine reports, and the one reading of an
//! instance's labels into the model (used by the reconciler, proxy-mode discovery and server
//! mode alike; each selects from it what it needs).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::namespace::Namespace;

/// The port every funko listens on inside its instance.
pub const FUNKO_PORT: u16 = 3000;
/// The readiness path of an instance whose labels name none (a zero-magic `faaso-<x>` one).
pub const DEFAULT_HEALTH_PATH: &str = "/ping";

/// The lifecycle state of an instance, reduced to what the planner acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Running (it may not be ready yet).
    Running,
    /// The engine is restarting it under its restart policy.
    Restarting,
    /// Frozen (memory kept): an idle instance of an autoscaled funko, woken in milliseconds.
    Paused,
    /// Stopped and kept (memory freed): a longer-idle instance of an autoscaled funko, started
    /// again when needed. Any other funko's exited instance is replaced.
    Exited,
    /// Created and never started, dead, or being removed: it serves nothing and is replaced.
    Stopped,
}

impl InstanceState {
    /// Running, or about to run again under the engine's restart policy.
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Running | InstanceState::Restarting)
    }

    /// Paused or exited: kept for a later wake when it belongs to an autoscaled funko.
    pub fn is_parked(self) -> bool {
        matches!(self, InstanceState::Paused | InstanceState::Exited)
    }
}

/// One instance, as found by listing the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// The instance id (a container id on Docker).
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// Whether faaso created it (its instance label is set): only these are ever changed.
    pub managed: bool,
    /// The funko it belongs to (from its label, or `<prefix>-<x>` for unlabelled ones).
    pub funko: String,
    /// The instance number from its label (1-based; 0 when it has none).
    pub number: u32,
    /// The config hash from its label.
    pub config_hash: String,
    /// The image it runs.
    pub image: String,
    /// Its state.
    pub state: InstanceState,
    /// Its address on the faaso network, when it has one.
    pub ip: Option<IpAddr>,
    /// The request timeout from its label (what the proxy applies).
    pub timeout: Option<Duration>,
    /// Its readiness path: from its label, else [`DEFAULT_HEALTH_PATH`].
    pub health_path: String,
    /// The browser origins the proxy lets call it, from its label (absent: no CORS).
    pub cors: Option<faaso_schema::Cors>,
}

impl Instance {
    /// Where it listens, when it has an address.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.ip.map(|ip| SocketAddr::new(ip, FUNKO_PORT))
    }
}

/// The actual state: the instances and the funko images the engine has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every instance of interest, managed or not.
    pub instances: Vec<Instance>,
    /// Image references present on the engine, each with when its image was built (seconds
    /// since the Unix epoch).
    pub images: BTreeMap<String, u64>,
}

/// What an engine's listing says of one container, before faaso reads its labels.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// Its name, without a leading `/`.
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// The image it runs (a reference, or an id for a build step's container).
    pub image: String,
    /// Its state.
    pub state: InstanceState,
    /// Its address on the namespace's network, when it has one.
    pub ip: Option<IpAddr>,
}

/// Reads a listed container into an [`Instance`]: `None` when it is no funko instance at all
/// (neither labelled by this namespace nor named `<prefix>-<x>`, or faaso's own proxy).
///
/// faaso's images carry its labels, so every container made from one inherits them: only the
/// instance label, which faaso sets itself, marks a container faaso created (`managed`). The
/// one exception is a stopped container of an unnamed image: a build step left by an
/// interrupted build, to be cleared like a stopped instance.
pub fn read_instance(listed: Listed, ns: &Namespace) -> Option<Instance> {
    let Listed {
        id,
        name,
        labels,
        image,
        state,
        ip,
    } = listed;
    if name == ns.proxy_container() {
        return None;
    }
    let labelled = labels
        .get(&ns.label("managed"))
        .is_some_and(|v| v == "true");
    let managed = labelled
        && (labels.contains_key(&ns.label("instance"))
            || (state == InstanceState::Stopped && is_image_id(&image)));
    let funko = match labels.get(&ns.label("funko")) {
        Some(funko) if labelled => funko.clone(),
        _ if managed => String::new(),
        // Docker's name filter is an unanchored regex: the prefix is checked here.
        _ => name.strip_prefix(&format!("{}-", ns.prefix))?.to_owned(),
    };
    Some(Instance {
        timeout: labels
            .get(&ns.label("timeout"))
            .and_then(|t| faaso_schema::parse_duration(t)),
        health_path: labels
            .get(&ns.label("health-path"))
            .filter(|p| p.starts_with('/'))
            .cloned()
            .unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned()),
        cors: labels
            .get(&ns.label("cors"))
            .and_then(|json| serde_json::from_str(json).ok()),
        number: labels
            .get(&ns.label("instance"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        config_hash: labels
            .get(&ns.label("config-hash"))
            .cloned()
            .unwrap_or_default(),
        id,
        name,
        managed,
        funko,
        image,
        state,
        ip,
    })
}

/// Whether `image` names an image by id (`sha256:…` or bare hex), as build steps do, rather than
/// by `repo:tag`.
fn is_image_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, labels: &[(&str, &str)], state: InstanceState) -> Listed {
        Listed {
            id: format!("id-{name}"),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            image: "faaso-hello:abc".to_owned(),
            state,
            ip: Some("10.0.0.2".parse().unwrap()),
        }
    }

    #[test]
    fn labels_make_an_instance_and_names_a_zero_magic_one() {
        let ns = Namespace::default();
        let managed = read_instance(
            listed(
                "faaso-hello-1-abc",
                &[
                    ("faaso.managed", "true"),
                    ("faaso.funko", "hello"),
                    ("faaso.instance", "1"),
                    ("faaso.config-hash", "abc"),
                    ("faaso.timeout", "5s"),
                    ("faaso.health-path", "/healthz"),
                ],
                InstanceState::Running,
            ),
            &ns,
        )
        .unwrap();
        assert!(managed.managed);
        assert_eq!((managed.funko.as_str(), managed.number), ("hello", 1));
        assert_eq!(managed.timeout, Some(Duration::from_secs(5)));
        assert_eq!(managed.health_path, "/healthz");
        assert_eq!(managed.addr(), Some("10.0.0.2:3000".parse().unwrap()));

        let legacy = read_instance(listed("faaso-legacy", &[], InstanceState::Running), &ns);
        let legacy = legacy.unwrap();
        assert!(!legacy.managed);
        assert_eq!(legacy.funko, "legacy");
        assert_eq!(legacy.health_path, DEFAULT_HEALTH_PATH);
        assert_eq!(legacy.timeout, None);
    }

    #[test]
    fn a_container_from_a_faaso_image_is_routed_but_never_managed() {
        let ns = Namespace::default();
        let inherited = &[("faaso.managed", "true"), ("faaso.funko", "hello")];
        let run_by_hand = read_instance(listed("mine", inherited, InstanceState::Running), &ns);
        let run_by_hand = run_by_hand.unwrap();
        assert_eq!(run_by_hand.funko, "hello");
        assert!(
            !run_by_hand.managed,
            "faaso never stops what it did not start"
        );
    }

    #[test]
    fn the_proxy_and_strangers_are_no_instances() {
        let ns = Namespace::default();
        for name in ["faaso-proxy", "postgres", "faasobar"] {
            assert_eq!(
                read_instance(listed(name, &[], InstanceState::Running), &ns),
                None,
                "{name}"
            );
        }
    }

    #[test]
    fn a_stopped_build_step_is_cleared_like_an_instance() {
        let ns = Namespace::default();
        let mut step = listed(
            "eager_turing",
            &[("faaso.managed", "true"), ("faaso.funko", "hello")],
            InstanceState::Stopped,
        );
        step.image = "sha256:0123456789abcdef".to_owned();
        assert!(read_instance(step, &ns).unwrap().managed);
    }
}
