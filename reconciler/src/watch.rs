//! Watch mode: a pass whenever the funkos folder changes, the engine reports a change, a
//! funko's work ends, or the periodic resync comes due; each funko's work runs on its own
//! (`Runner`); surviving the engine going away and coming back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use tokio::time::Instant;

use crate::backend::{Backend, Change, StepFailure};
use crate::deaths::Deaths;
use crate::listener::Listener;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::report::PassReport;
use crate::runner::Runner;

/// Timing of watch mode.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// How long the folder must be quiet before a pass: editors save in several writes.
    pub debounce: Duration,
    /// A pass at least this often, to catch anything an event missed.
    pub resync: Duration,
    /// The longest wait between attempts when the engine is unreachable; short, because it
    /// bounds how long faaso stays blind after the engine comes back.
    pub max_backoff: Duration,
    /// How soon to look again after a pass that left a funko neither converged nor failed.
    pub requeue: Duration,
}

impl Default for WatchTiming {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(150),
            resync: Duration::from_secs(30),
            max_backoff: Duration::from_secs(2),
            requeue: Duration::from_secs(1),
        }
    }
}

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Something under the funkos folder changed.
    Files,
    /// The engine reported a change.
    Engine,
    /// Someone asked (an admin API call, say).
    Requested,
}

/// The queue of reasons to run a pass; clone [`Triggers::sender`] to ask for one from outside.
pub struct Triggers {
    tx: mpsc::UnboundedSender<Trigger>,
    rx: mpsc::UnboundedReceiver<Trigger>,
}

impl Triggers {
    /// An empty queue.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx }
    }

    /// A handle that asks for a pass.
    pub fn sender(&self) -> mpsc::UnboundedSender<Trigger> {
        self.tx.clone()
    }
}

impl Default for Triggers {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs passes until `stop` is cancelled. A pass plans every funko from one look at the folder
/// and the engine, then starts each funko's work on its own (at most one per funko) and does
/// not wait for it: a funko whose work ends, or that something else concerns, is planned again
/// at the next pass while the others' work goes on.
pub async fn watch<B: Backend + Clone + 'static>(
    reconciler: &mut Reconciler<B>,
    listener: Arc<dyn Listener<B::Step>>,
    timing: WatchTiming,
    triggers: Triggers,
    stop: CancellationToken,
) -> Result<(), notify::Error> {
    let Triggers { tx, mut rx } = triggers;
    let _watcher = watch_files(&reconciler.settings().funkos_dir, tx.clone())?;
    tokio::spawn(forward_changes(
        reconciler.backend().clone(),
        reconciler.deaths().clone(),
        tx,
        timing,
        stop.clone(),
    ));
    let mut runner = Runner::default();
    let mut requeue = Requeue::new(timing.requeue, timing.resync);
    let mut backoff = Duration::from_millis(250);
    // Work ended since images were last pruned: prune once no build runs.
    let mut prune_due = false;
    while !stop.is_cancelled() {
        let mut next = timing.resync;
        match pass(reconciler, &listener, &mut runner, &stop).await {
            Ok(report) => {
                backoff = Duration::from_millis(250);
                if prune_due && !reconciler.building() {
                    reconciler.prune(&report.desired, &report.observed).await;
                    prune_due = false;
                }
                let pending: Vec<_> = report
                    .funkos
                    .iter()
                    .filter(|f| !f.converged())
                    .map(|f| &f.name)
                    .collect();
                tracing::info!(steps = report.plan.len(), ?pending, "pass finished");
                // Not converged, not failed and not being worked on: the engine's view lagged
                // behind its events (a killed container still listed as running). Look again
                // soon, and less soon each time it stays so.
                let lagging = report
                    .funkos
                    .iter()
                    .filter(|f| !f.converged() && f.error.is_none() && f.converging.is_none())
                    .map(|f| f.name.as_str());
                if let Some(due) = requeue.after_pass(lagging) {
                    next = next.min(due);
                }
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "pass failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(jitter(backoff)) => {}
                }
                backoff = (backoff * 2).min(timing.max_backoff);
                continue;
            }
        }
        tokio::select! {
            // Stopping comes first: cancelled work ends at once and would always be ready too.
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep(next) => tracing::debug!("periodic resync or requeue"),
            Some(trigger) = rx.recv() => {
                // Let a burst of events settle, then take them all as one reason to look again.
                tokio::time::sleep(timing.debounce).await;
                while rx.try_recv().is_ok() {}
                tracing::debug!(?trigger, "change seen");
            }
            (funko, outcome) = runner.next() => {
                finished(reconciler, listener.as_ref(), &funko, outcome);
                prune_due = true;
                // Work often ends in bursts (a rollout of many funkos): take them together.
                let settle = tokio::time::sleep(timing.debounce);
                tokio::pin!(settle);
                loop {
                    tokio::select! {
                        () = &mut settle => break,
                        (funko, outcome) = runner.next() => {
                            finished(reconciler, listener.as_ref(), &funko, outcome);
                        }
                    }
                }
                while rx.try_recv().is_ok() {}
            }
        }
    }
    runner.shut_down(SHUTDOWN_PATIENCE).await;
    Ok(())
}

/// How long stopping waits for funko work to clear up after itself (a cut-short build removing
/// its running step) before abandoning it.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(20);

/// One pass of watch mode: plan the funkos not at work, cancel work made stale, start the
/// rest, and report (funkos at work show where they are).
async fn pass<B: Backend + Clone + 'static>(
    reconciler: &mut Reconciler<B>,
    listener: &Arc<dyn Listener<B::Step>>,
    runner: &mut Runner,
    stop: &CancellationToken,
) -> Result<PassReport<B::Step>, ReconcileError> {
    let mut planned = reconciler.plan_work(&runner.busy()).await?;
    runner.cancel_stale(|funko, content| planned.still_wanted(funko, content));
    for work in std::mem::take(&mut planned.work) {
        let funko = work.funko.clone();
        let content = work.content().map(|(i, h)| (i.to_owned(), h.to_owned()));
        let cancel = stop.child_token();
        let running = reconciler.run_work(work, listener.clone(), cancel.clone());
        runner.spawn(funko, content, cancel, running);
    }
    let mut report = reconciler.report(planned, false).await?;
    report.busy = runner.busy();
    listener.pass_finished(&report);
    Ok(report)
}

/// Records how one funko's work ended (cancelled work records nothing: its funko is planned
/// afresh).
fn finished<B: Backend>(
    reconciler: &mut Reconciler<B>,
    listener: &dyn Listener<B::Step>,
    funko: &str,
    outcome: Option<Result<(), StepFailure>>,
) {
    let Some(result) = outcome else {
        tracing::debug!(%funko, "its work was cancelled");
        return;
    };
    listener.funko_finished(funko, result.as_ref().err().map(|f| f.error.as_str()));
    reconciler.record(funko, &result);
}

/// When to look again at funkos that are neither converged nor failed nor at work, each on
/// its own backoff (doubling from `first` up to `most`), forgotten once it is settled.
struct Requeue {
    first: Duration,
    most: Duration,
    funkos: BTreeMap<String, (Duration, Instant)>,
}

impl Requeue {
    fn new(first: Duration, most: Duration) -> Self {
        Self {
            first,
            most,
            funkos: BTreeMap::new(),
        }
    }

    /// Takes the funkos a pass left lagging; how soon the earliest of them is due.
    fn after_pass<'a>(&mut self, lagging: impl Iterator<Item = &'a str>) -> Option<Duration> {
        let now = Instant::now();
        let lagging: BTreeSet<&str> = lagging.collect();
        self.funkos
            .retain(|name, _| lagging.contains(name.as_str()));
        for name in lagging {
            let (wait, due) = self
                .funkos
                .entry(name.to_owned())
                .or_insert((self.first, now + self.first));
            if *due <= now {
                *wait = (*wait * 2).min(self.most);
                *due = now + *wait;
            }
        }
        self.funkos
            .values()
            .map(|(_, due)| due.saturating_duration_since(now))
            .min()
    }
}

/// Up to 25% random-looking spread, so restarted processes do not retry in lockstep.
fn jitter(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn watch_files(
    dir: &Path,
    tx: mpsc::UnboundedSender<Trigger>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(Trigger::Files);
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Turns the engine's changes into triggers (and deaths), asking again with backoff when the
/// stream breaks (the engine restarted, the socket was cut).
async fn forward_changes<B: Backend>(
    backend: B,
    deaths: Deaths,
    tx: mpsc::UnboundedSender<Trigger>,
    timing: WatchTiming,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    while !stop.is_cancelled() {
        let mut changes = backend.changes();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                change = changes.next() => match change {
                    Some(Ok(change)) => {
                        backoff = Duration::from_millis(250);
                        match &change {
                            Change::Died(id) => deaths.died(id),
                            Change::Started(id) => deaths.started(id),
                            Change::Other => {}
                        }
                        tracing::debug!(?change, "engine change");
                        if tx.send(Trigger::Engine).is_err() {
                            return;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "the engine's change stream broke; reconnecting");
                        break;
                    }
                    None => break,
                },
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(jitter(backoff)) => {}
        }
        backoff = (backoff * 2).min(timing.max_backoff);
        // After a gap the engine may have changed behind our back: look again.
        let _ = tx.send(Trigger::Engine);
    }
}
