//! What should run: the funkos folder read into the desired state, with everything the
//! executor needs to build images and start instances.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use faaso_schema::{BaseChoice, BuildContext, Funko, Problem, Runtime, Spec};
use serde::Serialize;

use crate::namespace::Namespace;

/// Which base image a runtime builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BasePolicy {
    /// The offline-built image when the engine has it, else the official one.
    #[default]
    Auto,
    /// Always the offline-built image.
    Local,
    /// Always the official registry image.
    Official,
}

impl BasePolicy {
    /// The choice for `runtime`, given the images the engine has.
    pub fn choose(self, runtime: &Runtime, images: &BTreeMap<String, u64>) -> BaseChoice {
        match self {
            BasePolicy::Local => BaseChoice::Local,
            BasePolicy::Official => BaseChoice::Official,
            BasePolicy::Auto => match runtime.base_image(BaseChoice::Local) {
                Some(local)
                    if !images.contains_key(local)
                        && !images.contains_key(&format!("{local}:latest")) =>
                {
                    BaseChoice::Official
                }
                _ => BaseChoice::Local,
            },
        }
    }
}

/// One valid funko as the planner needs it: which image, which container config, how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredFunko {
    /// The funko's name.
    pub name: String,
    /// The image reference its instances run (`<prefix>-<name>:<content hash>`).
    pub image: String,
    /// The hash of everything that needs a new container (image, env, secrets, resources), not
    /// the scale: a scale change must never recreate the instances that stay.
    pub config_hash: String,
    /// How many instances should exist: run, for a fixed scale; for an autoscaled funko, at
    /// least this many exist (running, paused or stopped), and more already there are kept.
    pub scale: u32,
    /// The autoscaler's bounds and idle times, for an autoscaled funko (`scale: {min, max}`).
    pub autoscaled: Option<Autoscaled>,
}

/// An autoscaled funko's bounds and idle times, from its funko.yml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Autoscaled {
    /// The fewest ready instances (0: scale to zero when idle).
    pub min: u32,
    /// The most instances.
    pub max: u32,
    /// Concurrent requests per instance the autoscaler aims for.
    pub target: u32,
    /// The most requests one instance serves at once (more wait in the proxy).
    pub limit: Option<u32>,
    /// How many requests the proxy holds for the funko while no instance is free.
    pub queue: u32,
    /// Scale-down decisions use the highest recommendation over this window.
    pub stable_window: std::time::Duration,
    /// The short window in which a burst scales up at once.
    pub panic_window: std::time::Duration,
    /// With min 0: no request for this long and the funko is paused.
    pub pause_after: std::time::Duration,
    /// A paused instance is stopped (container kept) after this.
    pub stop_after: std::time::Duration,
    /// The funko's request timeout: the longest a held request waits.
    pub timeout: std::time::Duration,
    /// Whether a pass starts paused or stopped instances again to reach `scale` running
    /// (without `faaso server`, nothing else wakes them).
    pub resume: bool,
}

impl Autoscaled {
    /// The bounds and idle times of `spec`, if it is autoscaled.
    pub fn of(spec: &Spec) -> Option<Self> {
        let auto = spec.scale.auto()?;
        Some(Self {
            min: auto.min,
            max: auto.max,
            target: auto.target,
            limit: auto.limit,
            queue: auto.queue,
            stable_window: auto.stable_window.0,
            panic_window: auto.panic_window.0,
            pause_after: spec.idle.pause_after.0,
            stop_after: spec.idle.stop_after.0,
            timeout: spec.timeout.0,
            resume: true,
        })
    }
}

/// How many instances of each autoscaled funko the autoscaler wants now: runtime state, set
/// by `faaso server` and read by every pass; never written to funko.yml. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Demand(std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>);

impl Demand {
    /// The autoscaler wants `count` instances of `funko`.
    pub fn set(&self, funko: &str, count: u32) {
        self.lock().insert(funko.to_owned(), count);
    }

    /// What the autoscaler wants of `funko`, if it said.
    pub fn get(&self, funko: &str) -> Option<u32> {
        self.lock().get(funko).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u32>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many instances of a funko should exist this pass: a fixed scale as written; an
/// autoscaled funko what `demand` says within its bounds, or without a demand (no server to
/// wake it) at least one, so the funko serves.
pub fn wanted(
    spec_scale: u32,
    autoscaled: Option<&Autoscaled>,
    demand: Option<&Demand>,
    name: &str,
) -> u32 {
    let Some(auto) = autoscaled else {
        return spec_scale;
    };
    let floor = match demand {
        Some(demand) => demand.get(name).unwrap_or(auto.min),
        None => auto.min.max(1),
    };
    floor.clamp(auto.min, auto.max)
}

/// The desired state: every valid funko, and the names of funkos to leave alone (an invalid
/// funko.yml, or content that already failed and has not changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Valid funkos by name.
    pub funkos: BTreeMap<String, DesiredFunko>,
    /// Funkos whose running instances must not be touched this pass.
    pub held: BTreeSet<String>,
}

/// A secret file mounted into a funko's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    /// The key: the file appears at `/secrets/<key>`.
    pub key: String,
    /// The file on the host.
    pub host_path: PathBuf,
    /// A hash of its content, so a changed value rolls the instances.
    pub version: String,
}

/// A valid funko, ready to be built and run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The funko folder and its spec.
    pub funko: Funko,
    /// Its build context.
    pub context: BuildContext,
    /// The image reference its context builds.
    pub image: String,
    /// The secrets it lists that have a value.
    pub secrets: Vec<SecretMount>,
    /// The hash of its container config.
    pub config_hash: String,
}

/// The desired state of a funkos folder.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    /// What the planner reads.
    pub desired: Desired,
    /// Each valid funko, by name.
    pub prepared: BTreeMap<String, Prepared>,
    /// Each invalid funko's problem, by folder name (its instances are left alone).
    pub problems: BTreeMap<String, Problem>,
    /// Things worth telling that do not stop a funko (a listed secret with no value).
    pub warnings: Vec<String>,
}

/// Where secret values live: `<secrets dir>/<funko>/<key>`.
pub fn secret_path(secrets_dir: &Path, funko: &str, key: &str) -> PathBuf {
    secrets_dir.join(funko).join(key)
}

/// Reads every funko under `dir`. `images` is what the engine has (it decides `auto` bases).
pub fn load_desired(
    dir: &Path,
    namespace: &Namespace,
    policy: BasePolicy,
    images: &BTreeMap<String, u64>,
    secrets_dir: &Path,
) -> Result<DesiredState, Problem> {
    let (funkos, problems) = faaso_schema::load_funkos_dir(dir)?;
    let mut state = DesiredState::default();
    for problem in problems {
        state
            .problems
            .insert(folder_of(&problem.file, dir), problem);
    }
    for funko in funkos {
        let name = funko.spec.name.to_string();
        match prepare(
            funko,
            namespace,
            policy,
            images,
            secrets_dir,
            &mut state.warnings,
        ) {
            Ok(prepared) => {
                state.desired.funkos.insert(
                    name.clone(),
                    DesiredFunko {
                        name: name.clone(),
                        image: prepared.image.clone(),
                        config_hash: prepared.config_hash.clone(),
                        scale: prepared.funko.spec.scale.min(),
                        autoscaled: Autoscaled::of(&prepared.funko.spec),
                    },
                );
                state.prepared.insert(name, prepared);
            }
            Err(problem) => {
                state.problems.insert(name, problem);
            }
        }
    }
    state.desired.held = state.problems.keys().cloned().collect();
    Ok(state)
}

fn prepare(
    funko: Funko,
    namespace: &Namespace,
    policy: BasePolicy,
    images: &BTreeMap<String, u64>,
    secrets_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Prepared, Problem> {
    let context = BuildContext::assemble_with(&funko, |runtime| policy.choose(runtime, images))?;
    let image = namespace.image_ref(&funko.spec.name, &context.content_hash());
    let mut secrets = Vec::new();
    for key in &funko.spec.secrets {
        let host_path = secret_path(secrets_dir, funko.spec.name.as_str(), &key.0);
        match std::fs::read(&host_path) {
            Ok(bytes) => secrets.push(SecretMount {
                key: key.0.clone(),
                host_path: std::path::absolute(&host_path).unwrap_or(host_path),
                version: short_hash(&bytes),
            }),
            Err(_) => warnings.push(format!(
                "funko `{}` lists secret `{}` but {} does not exist; its instances run without it",
                funko.spec.name,
                key.0,
                host_path.display()
            )),
        }
    }
    let config_hash = config_hash(&funko.spec, &image, &secrets, namespace);
    Ok(Prepared {
        funko,
        context,
        image,
        secrets,
        config_hash,
    })
}

/// The hash of everything that needs a new container; the scale is deliberately left out.
pub fn config_hash(
    spec: &Spec,
    image: &str,
    secrets: &[SecretMount],
    namespace: &Namespace,
) -> String {
    let h = &spec.hardening;
    let env: Vec<(&str, &str)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.0.as_str(), v.0.as_str()))
        .collect();
    let secrets: Vec<(&str, &str)> = secrets
        .iter()
        .map(|s| (s.key.as_str(), s.version.as_str()))
        .collect();
    let mut identity = serde_json::json!({
        "image": image,
        "env": env,
        "secrets": secrets,
        "memory": spec.resources.memory.map(|m| m.0),
        "cpus": spec.resources.cpus.map(|c| c.nano_cpus()),
        "network": namespace.network,
        "timeout": spec.timeout.0.as_millis() as u64,
        "health_path": spec.healthcheck.path,
        "hardening": [h.read_only, h.drop_capabilities, h.no_new_privileges],
        "pids_limit": h.pids_limit,
    });
    // Only when set: a funko without `cors:` keeps the hash it had before the field existed,
    // so upgrading faaso rolls no instance.
    if let Some(cors) = &spec.cors {
        identity["cors"] = serde_json::to_value(cors).unwrap_or_default();
    }
    short_hash(identity.to_string().as_bytes())
}

/// The first 12 hex digits of the SHA-256 of `bytes`.
pub(crate) fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))[..12].to_owned()
}

/// The funko folder a problem belongs to: the first component of its path under `dir`.
fn folder_of(file: &Path, dir: &Path) -> String {
    file.strip_prefix(dir)
        .ok()
        .and_then(|rest| rest.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Spec {
        faaso_schema::parse_spec(yaml).unwrap()
    }

    #[test]
    fn scale_does_not_change_the_config_hash_but_env_does() {
        let ns = Namespace::default();
        let one = config_hash(&spec("name: a\nscale: 1\n"), "img:1", &[], &ns);
        let five = config_hash(&spec("name: a\nscale: 5\n"), "img:1", &[], &ns);
        let bounds = "name: a\nscale: {min: 0, max: 5}\nidle: {pause_after: 1m}\n";
        assert_eq!(one, config_hash(&spec(bounds), "img:1", &[], &ns));
        let env = config_hash(&spec("name: a\nenv: {A: b}\n"), "img:1", &[], &ns);
        let image = config_hash(&spec("name: a\n"), "img:2", &[], &ns);
        assert_eq!(one, five);
        assert_ne!(one, env);
        assert_ne!(one, image);
    }

    #[test]
    fn a_changed_secret_value_changes_the_config_hash() {
        let ns = Namespace::default();
        let secret = |version: &str| SecretMount {
            key: "k".into(),
            host_path: "/s/k".into(),
            version: version.into(),
        };
        let a = config_hash(&spec("name: a\n"), "i", &[secret("1")], &ns);
        let b = config_hash(&spec("name: a\n"), "i", &[secret("2")], &ns);
        assert_ne!(a, b);
    }

    #[test]
    fn the_config_hash_of_a_funko_is_what_earlier_versions_computed() {
        // Pinned: a change here rolls every instance of every funko when faaso is upgraded.
        let ns = Namespace::default();
        let spec = spec("name: a\nenv: {A: b}\nresources: {memory: 64M}\n");
        assert_eq!(config_hash(&spec, "faaso-a:0123", &[], &ns), "d5c81d353294");
        let cors = spec_with_cors();
        assert_ne!(
            config_hash(&cors, "faaso-a:0123", &[], &ns),
            "d5c81d353294",
            "a cors block is part of it"
        );
    }

    fn spec_with_cors() -> Spec {
        spec("name: a\nenv: {A: b}\nresources: {memory: 64M}\ncors: {origins: [\"*\"]}\n")
    }
}
