//! `Reconciler`: one pass of "read the funkos folder, list Docker, plan, act", with each funko's
//! steps run in order and different funkos run concurrently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use crate::deaths::Deaths;
use crate::desired::{BasePolicy, DesiredState, Prepared, load_desired};
use crate::docker::DockerError;
use crate::engine::{Engine, Started};
use crate::failures::Failures;
use crate::model::{InstanceState, Observed};
use crate::namespace::Namespace;
use crate::plan::{Step, plan};
use crate::probe::probe;

/// Where the reconciler reads from and writes to.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The funkos folder: the desired state.
    pub funkos_dir: PathBuf,
    /// Names, labels and network.
    pub namespace: Namespace,
    /// Which base images runtimes build on.
    pub base_policy: BasePolicy,
    /// Where secret values are kept (`<dir>/<funko>/<key>`).
    pub secrets_dir: PathBuf,
    /// Where the last errors are kept; `None` keeps them in memory.
    pub state_dir: Option<PathBuf>,
    /// How many funkos are worked on at once.
    pub concurrency: usize,
}

/// Told about what a pass does as it happens: build output for a terminal, instance changes for
/// a route table. Every method has a do-nothing default.
pub trait Listener: Send + Sync {
    /// One line of a funko's build output.
    fn build_output(&self, _funko: &str, _line: &str) {}
    /// A step is about to run.
    fn step_started(&self, _step: &Step) {}
    /// A step ended; `error` says why when it failed.
    fn step_finished(&self, _step: &Step, _error: Option<&str>) {}
    /// A new instance answers its healthcheck: it may get traffic now.
    fn instance_ready(&self, _funko: &str, _instance: &Started) {}
    /// An instance is about to be stopped: it must get no new traffic.
    fn instance_leaving(&self, _funko: &str, _id: &str) {}
    /// A pass ended; the report holds what the engine looked like at its end.
    fn pass_finished(&self, _report: &PassReport) {}
}

/// A listener that ignores everything.
pub struct Quiet;
impl Listener for Quiet {}

/// How one funko stands after a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunkoStatus {
    /// The funko.
    pub name: String,
    /// Instances its spec asks for (absent for an invalid or removed funko).
    pub desired: Option<u32>,
    /// Running instances with the current config that answer their healthcheck.
    pub ready: u32,
    /// Running instances with an older config.
    pub outdated: u32,
    /// The image it should run.
    pub image: Option<String>,
    /// When that image was built, in seconds since the Unix epoch (absent until it is).
    pub image_created: Option<u64>,
    /// Why it is not where it should be, if it is not.
    pub error: Option<String>,
    /// The config hash its current instances carry (absent for an invalid or removed funko);
    /// kept off the API's status, for telling current instances from outdated ones.
    #[serde(skip)]
    pub config_hash: Option<String>,
}

impl FunkoStatus {
    /// Whether the funko is at its desired scale, every instance current and ready.
    pub fn converged(&self) -> bool {
        self.error.is_none() && self.desired.is_some_and(|d| d == self.ready) && self.outdated == 0
    }
}

/// What a pass did and where it left things.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// The steps planned.
    pub plan: Vec<Step>,
    /// Each funko's status after the pass, by name.
    pub funkos: Vec<FunkoStatus>,
    /// Non-fatal notes (a secret without a value).
    pub warnings: Vec<String>,
    /// The containers and images at the end of the pass.
    #[serde(skip)]
    pub observed: Observed,
}

impl PassReport {
    /// Whether every funko is converged.
    pub fn converged(&self) -> bool {
        self.funkos.iter().all(FunkoStatus::converged)
    }
}

/// The reconciler: an engine, settings, and the memory of what failed.
pub struct Reconciler<E> {
    engine: E,
    settings: Settings,
    failures: Failures,
    deaths: Deaths,
    /// When set, passes act on and report only these funkos.
    only: Option<BTreeSet<String>>,
}

/// A funko's steps failed: which content (image or config hash) and why.
struct FunkoFailure {
    key: String,
    error: String,
}

impl<E: Engine> Reconciler<E> {
    /// A reconciler acting through `engine`.
    pub fn new(engine: E, settings: Settings) -> Self {
        let failures = Failures::load(settings.state_dir.as_deref());
        Self {
            engine,
            settings,
            failures,
            deaths: Deaths::default(),
            only: None,
        }
    }

    /// Limits every later pass to `funkos`: the others are neither built nor touched nor
    /// reported (`faaso scale <funko>` converges the funko asked about, not the whole folder).
    pub fn limit_to(&mut self, funkos: impl IntoIterator<Item = String>) {
        self.only = Some(funkos.into_iter().collect());
    }

    fn in_scope(&self, funko: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(funko))
    }

    /// Where the engine's `die` and `start` events go, so a pass trusts them over a list that
    /// lags behind.
    pub fn deaths(&self) -> &Deaths {
        &self.deaths
    }

    /// The engine's containers, with those known dead marked stopped.
    async fn observe(&self) -> Result<Observed, DockerError> {
        let mut observed = self.engine.observe().await?;
        self.deaths.apply(&mut observed);
        Ok(observed)
    }

    /// The engine it acts through.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Forgets every failure, so failed content is tried again (`--retry`).
    pub fn retry_failed(&mut self) {
        self.failures.clear_all();
    }

    /// Reads both states and plans, touching nothing.
    pub async fn plan(&self) -> Result<(DesiredState, Observed, Vec<Step>), DockerError> {
        let observed = self.observe().await?;
        let state = self.desired(&observed)?;
        let steps = plan(&state.desired, &observed);
        Ok((state, observed, steps))
    }

    fn desired(&self, observed: &Observed) -> Result<DesiredState, DockerError> {
        let s = &self.settings;
        let mut state = load_desired(
            &s.funkos_dir,
            &s.namespace,
            s.base_policy,
            &observed.images,
            &s.secrets_dir,
        )
        .map_err(|problem| DockerError::Desired {
            message: problem.to_string(),
        })?;
        // Content that failed before waits for a change; changed content gets a fresh try.
        for (name, prepared) in &state.prepared {
            let failed = self.failures.get(name).is_some_and(|failure| {
                failure.key == prepared.image || failure.key == prepared.config_hash
            });
            if failed {
                state.desired.held.insert(name.clone());
            }
        }
        Ok(state)
    }

    /// One full pass: plan, act, and report where every funko stands.
    pub async fn pass(&mut self, listener: &dyn Listener) -> Result<PassReport, DockerError> {
        let (state, before, mut steps) = self.plan().await?;
        steps.retain(|step| self.in_scope(step.funko()));
        // Funkos whose content changed since their failure are no longer held: forget it.
        let changed: Vec<String> = self
            .failures
            .all()
            .keys()
            .filter(|name| {
                self.in_scope(name)
                    && state.prepared.contains_key(*name)
                    && !state.desired.held.contains(*name)
            })
            .cloned()
            .collect();
        for name in changed {
            self.failures.clear(&name);
        }
        if steps
            .iter()
            .any(|s| matches!(s, Step::Start { .. } | Step::Replace { .. }))
        {
            self.engine.ensure_network().await?;
        }
        let mut groups: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
        for step in &steps {
            groups.entry(step.funko()).or_default().push(step);
        }
        let engine = &self.engine;
        // Built in a loop, not a `map` closure: that keeps the pass future `Send` (it can be
        // spawned) without higher-ranked lifetime trouble.
        let mut work = Vec::new();
        for (funko, steps) in groups {
            let prepared = state.prepared.get(funko);
            work.push(async move {
                let result = run_funko(engine, prepared, &steps, listener).await;
                (funko.to_owned(), result)
            });
        }
        let results: Vec<(String, Result<(), FunkoFailure>)> = futures_util::stream::iter(work)
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for (funko, result) in results {
            match result {
                Ok(()) => self.failures.clear(&funko),
                Err(failure) => self.failures.record(&funko, &failure.key, failure.error),
            }
        }
        // Nothing done: the engine looks as it did a moment ago, so skip listing it again.
        let observed = if steps.is_empty() {
            before
        } else {
            self.observe().await?
        };
        if !steps.is_empty() {
            let mut keep: BTreeSet<String> = state
                .desired
                .funkos
                .values()
                .map(|f| f.image.clone())
                .collect();
            keep.extend(observed.instances.iter().map(|i| i.image.clone()));
            match self.engine.prune_images(&keep).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed images nothing needs"),
                Err(error) => tracing::warn!(%error, "cannot prune images"),
            }
        }
        let funkos = self.status_from(&state, &observed).await?;
        let report = PassReport {
            plan: steps,
            funkos,
            warnings: state.warnings,
            observed,
        };
        listener.pass_finished(&report);
        Ok(report)
    }

    /// Where every funko stands now, without changing anything.
    pub async fn status(&self) -> Result<Vec<FunkoStatus>, DockerError> {
        let observed = self.observe().await?;
        let state = self.desired(&observed)?;
        self.status_from(&state, &observed).await
    }

    async fn status_from(
        &self,
        state: &DesiredState,
        observed: &Observed,
    ) -> Result<Vec<FunkoStatus>, DockerError> {
        let mut names: BTreeSet<String> = state.desired.funkos.keys().cloned().collect();
        names.extend(state.problems.keys().cloned());
        names.extend(
            observed
                .instances
                .iter()
                .filter(|i| i.managed)
                .map(|i| i.funko.clone()),
        );
        names.retain(|name| self.in_scope(name));
        // Every current instance of every funko is probed at once: one slow instance costs its
        // timeout once, not once per funko before it.
        let mut statuses = Vec::new();
        let mut probes = Vec::new();
        for name in names {
            let desired = state.desired.funkos.get(&name);
            let live: Vec<_> = observed
                .instances
                .iter()
                .filter(|i| i.managed && i.funko == name && i.state == InstanceState::Running)
                .collect();
            let current_hash = desired.map(|d| d.config_hash.as_str());
            let health = state.prepared.get(&name).map(|p| &p.funko.spec.healthcheck);
            let index = statuses.len();
            for &instance in live
                .iter()
                .filter(|i| Some(i.config_hash.as_str()) == current_hash)
            {
                if let Some(health) = health {
                    probes.push(async move { (index, instance_ready(instance, health).await) });
                }
            }
            let outdated = live
                .iter()
                .filter(|i| Some(i.config_hash.as_str()) != current_hash)
                .count() as u32;
            let error = state
                .problems
                .get(&name)
                .map(|p| p.to_string())
                .or_else(|| self.failures.get(&name).map(|f| f.error.clone()))
                .or_else(|| {
                    desired
                        .is_none()
                        .then(|| "its funko folder is gone".to_owned())
                });
            statuses.push(FunkoStatus {
                name,
                desired: desired.map(|d| d.scale),
                ready: 0,
                outdated,
                image: desired.map(|d| d.image.clone()),
                image_created: desired.and_then(|d| observed.images.get(&d.image).copied()),
                error,
                config_hash: current_hash.map(str::to_owned),
            });
        }
        for (index, ready) in futures_util::future::join_all(probes).await {
            statuses[index].ready += u32::from(ready);
        }
        Ok(statuses)
    }
}

/// Whether a running instance answers its healthcheck now.
async fn instance_ready(
    instance: &crate::model::Instance,
    health: &faaso_schema::Healthcheck,
) -> bool {
    let Some(ip) = instance.ip else { return false };
    let addr = std::net::SocketAddr::new(ip, crate::container::FUNKO_PORT);
    probe(
        addr,
        &health.path,
        health.timeout.0.min(Duration::from_secs(2)),
    )
    .await
}

/// Runs one funko's steps in order; the first failure stops the rest (so the old instances,
/// whose removal comes last, keep serving).
async fn run_funko<E: Engine>(
    engine: &E,
    prepared: Option<&Prepared>,
    steps: &[&Step],
    listener: &dyn Listener,
) -> Result<(), FunkoFailure> {
    for step in steps {
        listener.step_started(step);
        let result = run_step(engine, prepared, step, listener).await;
        listener.step_finished(step, result.as_ref().err().map(|f| f.error.as_str()));
        match &result {
            Ok(()) => tracing::debug!(funko = step.funko(), step = ?step, "step done"),
            Err(failure) => {
                tracing::debug!(funko = step.funko(), step = ?step, error = %failure.error, "step failed")
            }
        }
        result?;
    }
    Ok(())
}

async fn run_step<E: Engine>(
    engine: &E,
    prepared: Option<&Prepared>,
    step: &Step,
    listener: &dyn Listener,
) -> Result<(), FunkoFailure> {
    let funko = step.funko();
    let need = || {
        prepared.ok_or_else(|| FunkoFailure {
            key: String::new(),
            error: format!("funko `{funko}` has no valid spec"),
        })
    };
    match step {
        Step::Build { image, .. } => {
            let output = |line: &str| listener.build_output(funko, line);
            engine
                .build(need()?, &output)
                .await
                .map_err(|e| FunkoFailure {
                    key: image.clone(),
                    error: e.to_string(),
                })
        }
        Step::Start { number, .. } => start_ready(engine, need()?, *number, listener)
            .await
            .map(|_| ()),
        Step::Replace { old, .. } => {
            start_ready(engine, need()?, old.number, listener).await?;
            listener.instance_leaving(funko, &old.id);
            remove(engine, &old.id).await
        }
        Step::Remove { instance, .. } => {
            listener.instance_leaving(funko, &instance.id);
            remove(engine, &instance.id).await
        }
    }
}

/// Starts an instance and waits until it is ready; one that never is gets removed again.
async fn start_ready<E: Engine>(
    engine: &E,
    prepared: &Prepared,
    number: u32,
    listener: &dyn Listener,
) -> Result<Started, FunkoFailure> {
    let failure = |error: DockerError| FunkoFailure {
        key: prepared.config_hash.clone(),
        error: error.to_string(),
    };
    let started = engine.start(prepared, number).await.map_err(failure)?;
    if let Err(error) = engine
        .wait_ready(&started, &prepared.funko.spec.healthcheck)
        .await
    {
        let _ = engine.remove(&started.id).await;
        return Err(failure(error));
    }
    listener.instance_ready(prepared.funko.spec.name.as_str(), &started);
    Ok(started)
}

async fn remove<E: Engine>(engine: &E, id: &str) -> Result<(), FunkoFailure> {
    engine.remove(id).await.map_err(|e| FunkoFailure {
        key: String::new(),
        error: e.to_string(),
    })
}
