//! `Runner`: watch mode's funko work in flight, at most one per funko, each on a task of its
//! own, so that a funko whose build hangs or whose instance takes an hour to be ready never
//! holds up another's. Work made stale by a change to its funko is cancelled; stopping cancels
//! all of it and waits (briefly) for each to clear up after itself.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::backend::StepFailure;

/// How a funko's work ended: `None` when it was cancelled.
pub(crate) type Outcome = (String, Option<Result<(), StepFailure>>);

/// The content a work was for (image, config hash), absent for a funko being removed.
type Content = Option<(String, String)>;

/// Running funko work, by funko.
#[derive(Default)]
pub(crate) struct Runner {
    tasks: JoinSet<Outcome>,
    running: HashMap<String, Running>,
    funkos: HashMap<Id, String>,
}

struct Running {
    content: Content,
    cancel: CancellationToken,
}

impl Runner {
    /// The funkos with work running.
    pub fn busy(&self) -> BTreeSet<String> {
        self.running.keys().cloned().collect()
    }

    /// Starts `work` for `funko`, which must have none running; `cancel` ends it.
    pub fn spawn(
        &mut self,
        funko: String,
        content: Content,
        cancel: CancellationToken,
        work: impl Future<Output = Outcome> + Send + 'static,
    ) {
        debug_assert!(
            !self.running.contains_key(&funko),
            "{funko} already at work"
        );
        let id = self.tasks.spawn(work).id();
        self.funkos.insert(id, funko.clone());
        self.running.insert(funko, Running { content, cancel });
    }

    /// Cancels the work that `wanted` no longer wants (its funko changed or went).
    pub fn cancel_stale(&mut self, wanted: impl Fn(&str, Option<(&str, &str)>) -> bool) {
        for (funko, running) in &self.running {
            let content = running
                .content
                .as_ref()
                .map(|(image, hash)| (image.as_str(), hash.as_str()));
            if !running.cancel.is_cancelled() && !wanted(funko, content) {
                tracing::info!(%funko, "its funko changed while being worked on; starting over");
                running.cancel.cancel();
            }
        }
    }

    /// The next work to end, once one does; pending forever while none runs.
    pub async fn next(&mut self) -> Outcome {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (id, outcome) = match joined {
                Ok((id, outcome)) => (id, Some(outcome)),
                // Work catches its own panics; a task that ends otherwise was aborted.
                Err(error) => (error.id(), None),
            };
            let Some(funko) = self.funkos.remove(&id) else {
                continue;
            };
            self.running.remove(&funko);
            return outcome.unwrap_or((funko, None));
        }
    }

    /// Cancels every work and waits up to `patience` for them to clear up (a cut-short build
    /// removes its running step); what is left then is aborted.
    pub async fn shut_down(&mut self, patience: Duration) {
        for running in self.running.values() {
            running.cancel.cancel();
        }
        let drained = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(patience, drained).await.is_err() {
            tracing::warn!("some funko work did not stop in time; abandoning it");
            self.tasks.abort_all();
        }
        self.running.clear();
        self.funkos.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_work_is_cancelled_and_the_rest_goes_on() {
        let mut runner = Runner::default();
        for funko in ["a", "b"] {
            let cancel = CancellationToken::new();
            let token = cancel.clone();
            let content = Some(("img".to_owned(), format!("hash-{funko}")));
            runner.spawn(funko.to_owned(), content, cancel, async move {
                token.cancelled().await;
                (funko.to_owned(), None)
            });
        }
        assert_eq!(runner.busy(), BTreeSet::from(["a".into(), "b".into()]));
        runner.cancel_stale(|funko, _| funko != "a");
        let (funko, outcome) = runner.next().await;
        assert_eq!((funko.as_str(), outcome), ("a", None));
        assert_eq!(runner.busy(), BTreeSet::from(["b".into()]));
        runner.shut_down(Duration::from_secs(1)).await;
        assert!(runner.busy().is_empty());
    }
}
