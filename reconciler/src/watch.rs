//! Watch mode: a pass whenever the funkos folder changes, the engine reports a change, or the
//! periodic resync comes due; surviving the engine going away and coming back.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Change};
use crate::deaths::Deaths;
use crate::listener::Listener;
use crate::reconcile::Reconciler;

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

/// Runs passes until `stop` is cancelled.
pub async fn watch<B: Backend + Clone + 'static>(
    reconciler: &mut Reconciler<B>,
    listener: &dyn Listener<B::Step>,
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
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut next = timing.resync;
        match reconciler.pass(listener).await {
            Ok(report) => {
                backoff = Duration::from_millis(250);
                let pending: Vec<_> = report
                    .funkos
                    .iter()
                    .filter(|f| !f.converged())
                    .map(|f| &f.name)
                    .collect();
                tracing::info!(steps = report.plan.len(), ?pending, "pass finished");
                // Not converged and not failed: the engine's view lagged behind its events (a
                // killed container still listed as running). Look again soon, not at resync.
                if report
                    .funkos
                    .iter()
                    .any(|f| !f.converged() && f.error.is_none())
                {
                    next = next.min(timing.requeue);
                }
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "pass failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                }
                backoff = (backoff * 2).min(timing.max_backoff);
                continue;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(next) => tracing::debug!("periodic resync or requeue"),
            Some(trigger) = rx.recv() => {
                // Let a burst of events settle, then take them all as one reason to look again.
                tokio::time::sleep(timing.debounce).await;
                while rx.try_recv().is_ok() {}
                tracing::debug!(?trigger, "change seen");
            }
        }
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
