//! `Reconciler`: "read the funkos folder, observe the engine, plan, act", on any [`Backend`].
//! Planning reads everything at once (one listing serves every funko); the acting is each
//! funko's own work ([`FunkoWork`]), which `pass` runs all at once and waits for, and watch
//! mode runs on its own per funko, never waiting for one to plan the others.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, EngineError, StepFailure, StepInfo};
use crate::deaths::Deaths;
use crate::desired::{BasePolicy, Demand, Desired, DesiredState, load_desired, wanted};
use crate::failures::Failures;
use crate::listener::Listener;
use crate::namespace::Namespace;
use crate::observe::Observed;
use crate::report::{FunkoStatus, PassReport};
use crate::status::statuses;
use crate::worker::{self, FunkoWork, Shared};

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
    /// How many builds run at once (each funko's starts, rollouts and readiness waits run on
    /// their own and take no build slot).
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
    /// What every funko's work shares: build slots, and which funkos are at work.
    shared: Shared,
}

/// A pass planned, before its work runs: what it read, its steps, and each funko's work.
pub struct Planned<S> {
    state: DesiredState,
    before: Observed,
    steps: Vec<S>,
    /// Each funko's steps, in plan order; take them to run them.
    pub work: Vec<FunkoWork<S>>,
}

impl<S> Planned<S> {
    /// Whether `funko`'s current content is still what `content` was made for (a funko whose
    /// files changed or went makes its running work stale).
    pub fn still_wanted(&self, funko: &str, content: Option<(&str, &str)>) -> bool {
        let now = self
            .state
            .prepared
            .get(funko)
            .map(|p| (p.image.as_str(), p.config_hash.as_str()));
        now == content
    }
}

impl<B: Backend> Reconciler<B> {
    /// A reconciler acting through `backend`.
    pub fn new(backend: B, settings: Settings) -> Self {
        let failures = Failures::load(settings.state_dir.as_deref());
        let shared = Shared::new(settings.concurrency);
        Self {
            backend,
            settings,
            failures,
            deaths: Deaths::default(),
            only: None,
            demand: None,
            shared,
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

    /// Which funkos are at work now, at which step (for a live status between passes).
    pub fn in_flight(&self) -> crate::in_flight::InFlight {
        self.shared.in_flight.clone()
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

    /// Reads both states, plans, and groups the steps by funko, leaving out the funkos in
    /// `busy` (their work is running; their view here may predate it). Nothing runs yet.
    pub async fn plan_work(
        &mut self,
        busy: &BTreeSet<String>,
    ) -> Result<Planned<B::Step>, ReconcileError> {
        let (state, before, mut steps) = self.plan().await?;
        steps.retain(|step| self.in_scope(step.funko()) && !busy.contains(step.funko()));
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
        // Grouped by funko, each funko's steps in plan order.
        let mut work: Vec<FunkoWork<B::Step>> = Vec::new();
        for step in &steps {
            match work.iter_mut().find(|w| w.funko == step.funko()) {
                Some(group) => group.steps.push(step.clone()),
                None => work.push(FunkoWork {
                    funko: step.funko().to_owned(),
                    steps: vec![step.clone()],
                    prepared: state.prepared.get(step.funko()).cloned(),
                }),
            }
        }
        Ok(Planned {
            state,
            before,
            steps,
            work,
        })
    }

    /// Runs one funko's work until it ends or `cancel` fires; `None` when cancelled. Its
    /// outcome is not yet recorded: see [`Reconciler::record`].
    pub fn run_work(
        &self,
        work: FunkoWork<B::Step>,
        listener: std::sync::Arc<dyn Listener<B::Step>>,
        cancel: CancellationToken,
    ) -> impl Future<Output = (String, Option<Result<(), StepFailure>>)> + Send + 'static
    where
        B: Clone + 'static,
    {
        let backend = self.backend.clone();
        let shared = self.shared.clone();
        let working = shared.in_flight.begin(&work.funko);
        async move {
            let outcome = worker::run(
                &backend,
                &work,
                listener.as_ref(),
                &shared,
                &cancel,
                working,
            )
            .await;
            (work.funko, outcome.ok())
        }
    }

    /// Remembers how a funko's work ended: a failure holds its content until it changes.
    pub fn record(&mut self, funko: &str, result: &Result<(), StepFailure>) {
        match result {
            Ok(()) => self.failures.clear(funko),
            Err(failure) => self
                .failures
                .record(funko, &failure.key, failure.error.clone()),
        }
    }

    /// Where every funko stands after `planned`'s work: observed again when `acted` (the
    /// engine changed), with funkos whose work still runs shown converging. Images nothing
    /// needs are pruned then, unless a build runs (it stacks on untagged cached layers).
    pub async fn report(
        &self,
        planned: Planned<B::Step>,
        acted: bool,
    ) -> Result<PassReport<B::Step>, ReconcileError> {
        let Planned {
            state,
            before,
            steps,
            ..
        } = planned;
        // Nothing done: the engine looks as it did a moment ago, so skip observing it again.
        let observed = if acted { self.observe().await? } else { before };
        if acted && !self.building() {
            self.prune(&state.desired, &observed).await;
        }
        let funkos = self.status_from(&state, &observed).await;
        Ok(PassReport {
            plan: steps,
            funkos,
            warnings: state.warnings,
            observed,
            desired: state.desired,
            busy: BTreeSet::new(),
        })
    }

    /// Whether some funko's work is building an image now.
    pub fn building(&self) -> bool {
        self.shared.in_flight.building()
    }

    /// Removes the images neither `desired` nor `observed`'s instances need (one previous
    /// image per funko is kept for a rollback).
    pub async fn prune(&self, desired: &Desired, observed: &Observed) {
        let mut keep: BTreeSet<String> = desired.funkos.values().map(|f| f.image.clone()).collect();
        keep.extend(observed.instances.iter().map(|i| i.image.clone()));
        match self.backend.prune_images(&keep).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed images nothing needs"),
            Err(error) => tracing::warn!(%error, "cannot prune images"),
        }
    }

    /// One full pass: plan, act on every funko at once (builds bounded by the build slots),
    /// wait for all of them, and report where every funko stands.
    pub async fn pass(
        &mut self,
        listener: &dyn Listener<B::Step>,
    ) -> Result<PassReport<B::Step>, ReconcileError> {
        let mut planned = self.plan_work(&BTreeSet::new()).await?;
        let work = std::mem::take(&mut planned.work);
        let never = CancellationToken::new();
        let (backend, shared) = (&self.backend, &self.shared);
        let running = work.iter().map(|work| {
            let never = &never;
            let working = shared.in_flight.begin(&work.funko);
            async move {
                let outcome = worker::run(backend, work, listener, shared, never, working).await;
                if let Ok(result) = &outcome {
                    listener.funko_finished(
                        &work.funko,
                        result.as_ref().err().map(|f| f.error.as_str()),
                    );
                }
                (work.funko.as_str(), outcome)
            }
        });
        let results = futures_util::future::join_all(running).await;
        for (funko, outcome) in results {
            if let Ok(result) = outcome {
                self.record(funko, &result);
            }
        }
        let acted = !planned.steps.is_empty();
        let report = self.report(planned, acted).await?;
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
        let in_flight = &self.shared.in_flight;
        statuses(
            state,
            observed,
            &self.failures,
            in_flight,
            vouched,
            |name| self.in_scope(name),
        )
        .await
    }
}
