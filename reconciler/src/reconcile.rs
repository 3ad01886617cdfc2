//! `Reconciler`: one pass of "read the funkos folder, observe the engine, plan, act", with each
//! funko's steps run in order and different funkos run concurrently, on any [`Backend`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures_util::StreamExt;

use crate::backend::{Backend, EngineError, StepFailure, StepInfo};
use crate::deaths::Deaths;
use crate::desired::{BasePolicy, Demand, DesiredState, load_desired, wanted};
use crate::failures::Failures;
use crate::listener::Listener;
use crate::namespace::Namespace;
use crate::observe::Observed;
use crate::report::{FunkoStatus, PassReport};
use crate::status::statuses;

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

/// Why a pass could not run at all (one funko's failure is never this: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The engine could not be observed or prepared.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The funkos folder could not be read at all.
    #[error("{0}")]
    Desired(String),
}

/// The reconciler: a backend, settings, and the memory of what failed.
pub struct Reconciler<B> {
    backend: B,
    settings: Settings,
    failures: Failures,
    deaths: Deaths,
    /// When set, passes act on and report only these funkos.
    only: Option<BTreeSet<String>>,
    /// The autoscaler's counts, when a server runs one (it then wakes and parks instances).
    demand: Option<Demand>,
}

impl<B: Backend> Reconciler<B> {
    /// A reconciler acting through `backend`.
    pub fn new(backend: B, settings: Settings) -> Self {
        let failures = Failures::load(settings.state_dir.as_deref());
        Self {
            backend,
            settings,
            failures,
            deaths: Deaths::default(),
            only: None,
            demand: None,
        }
    }

    /// Takes autoscaled funkos' counts from `demand` (set by the server's autoscaler, which
    /// also wakes and parks their instances) instead of keeping at least one running.
    pub fn follow_demand(&mut self, demand: Demand) {
        self.demand = Some(demand);
    }

    /// Limits every later pass to `funkos`: the others are neither built nor touched nor
    /// reported (`faaso scale <funko>` converges the funko asked about, not the whole folder).
    pub fn limit_to(&mut self, funkos: impl IntoIterator<Item = String>) {
        self.only = Some(funkos.into_iter().collect());
    }

    fn in_scope(&self, funko: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(funko))
    }

    /// Where the engine's deaths and starts go, so a pass trusts them over a list that lags
    /// behind.
    pub fn deaths(&self) -> &Deaths {
        &self.deaths
    }

    /// The backend it acts through.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Forgets every failure, so failed content is tried again (`--retry`).
    pub fn retry_failed(&mut self) {
        self.failures.clear_all();
    }

    /// The engine's instances, with those known dead marked stopped.
    async fn observe(&self) -> Result<Observed, EngineError> {
        let mut observed = self.backend.observe().await?;
        self.deaths.apply(&mut observed);
        Ok(observed)
    }

    /// Reads both states and plans, touching nothing.
    pub async fn plan(&self) -> Result<(DesiredState, Observed, Vec<B::Step>), ReconcileError> {
        let observed = self.observe().await?;
        let state = self.desired(&observed)?;
        let steps = self.backend.plan(&state.desired, &observed);
        Ok((state, observed, steps))
    }

    fn desired(&self, observed: &Observed) -> Result<DesiredState, ReconcileError> {
        let s = &self.settings;
        let mut state = load_desired(
            &s.funkos_dir,
            &s.namespace,
            s.base_policy,
            &observed.images,
            &s.secrets_dir,
        )
        .map_err(|problem| ReconcileError::Desired(problem.to_string()))?;
        for funko in state.desired.funkos.values_mut() {
            if let Some(auto) = &mut funko.autoscaled {
                auto.resume = self.demand.is_none();
                funko.scale = wanted(funko.scale, Some(auto), self.demand.as_ref(), &funko.name);
            }
        }
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
    pub async fn pass(
        &mut self,
        listener: &dyn Listener<B::Step>,
    ) -> Result<PassReport<B::Step>, ReconcileError> {
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
        if !steps.is_empty() {
            self.backend.prepare(&steps).await?;
        }
        let mut groups: BTreeMap<&str, Vec<&B::Step>> = BTreeMap::new();
        for step in &steps {
            groups.entry(step.funko()).or_default().push(step);
        }
        let backend = &self.backend;
        // Built in a loop, not a `map` closure: that keeps the pass future `Send` (it can be
        // spawned) without higher-ranked lifetime trouble.
        let mut work = Vec::new();
        for (funko, steps) in groups {
            let prepared = state.prepared.get(funko);
            work.push(async move {
                let result = run_funko(backend, prepared, &steps, listener).await;
                (funko.to_owned(), result)
            });
        }
        let results: Vec<(String, Result<(), StepFailure>)> = futures_util::stream::iter(work)
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for (funko, result) in results {
            match result {
                Ok(()) => self.failures.clear(&funko),
                Err(failure) => self.failures.record(&funko, &failure.key, failure.error),
            }
        }
        // Nothing done: the engine looks as it did a moment ago, so skip observing it again.
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
            match self.backend.prune_images(&keep).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed images nothing needs"),
                Err(error) => tracing::warn!(%error, "cannot prune images"),
            }
        }
        let funkos = self.status_from(&state, &observed).await;
        let report = PassReport {
            plan: steps,
            funkos,
            warnings: state.warnings,
            observed,
            desired: state.desired,
        };
        listener.pass_finished(&report);
        Ok(report)
    }

    /// Where every funko stands now, without changing anything.
    pub async fn status(&self) -> Result<Vec<FunkoStatus>, ReconcileError> {
        let observed = self.observe().await?;
        let state = self.desired(&observed)?;
        Ok(self.status_from(&state, &observed).await)
    }

    async fn status_from(&self, state: &DesiredState, observed: &Observed) -> Vec<FunkoStatus> {
        let vouched = self.backend.vouches_for_health();
        statuses(state, observed, &self.failures, vouched, |name| {
            self.in_scope(name)
        })
        .await
    }
}

/// Runs one funko's steps in order; the first failure stops the rest (so the old instances,
/// whose removal comes last, keep serving).
async fn run_funko<B: Backend>(
    backend: &B,
    prepared: Option<&crate::desired::Prepared>,
    steps: &[&B::Step],
    listener: &dyn Listener<B::Step>,
) -> Result<(), StepFailure> {
    for step in steps {
        listener.step_started(step);
        let result = backend.execute(step, prepared, listener).await;
        listener.step_finished(step, result.as_ref().err().map(|f| f.error.as_str()));
        match &result {
            Ok(()) => tracing::debug!(funko = step.funko(), ?step, "step done"),
            Err(failure) => {
                tracing::debug!(funko = step.funko(), ?step, error = %failure.error, "step failed")
            }
        }
        result?;
    }
    Ok(())
}
