//! `StatusBoard`: where every funko stands as of the last pass, and the stream of admin events
//! (`GET /admin/events`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use faaso_reconciler::{Converging, FunkoStatus};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// The state after one pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Board {
    /// How many passes have finished (0: none yet).
    pub pass: u64,
    /// When the last pass finished, seconds since the Unix epoch.
    pub updated_at: u64,
    /// Every funko's status.
    pub funkos: Vec<FunkoStatus>,
}

/// Something that happened, as the event stream tells it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminEvent {
    /// A reconcile pass finished.
    Pass {
        /// Its number.
        pass: u64,
        /// Steps it took.
        steps: usize,
        /// Funkos not at their desired state after it.
        pending: Vec<String>,
    },
    /// An instance became ready and gets traffic.
    InstanceReady {
        /// The funko.
        funko: String,
        /// The container name.
        instance: String,
    },
    /// An instance was taken out of rotation to be stopped.
    InstanceLeaving {
        /// The funko.
        funko: String,
        /// The container id.
        instance: String,
    },
    /// A funko was uploaded.
    Deployed {
        /// The funko.
        funko: String,
    },
    /// A funko folder was deleted.
    Deleted {
        /// The funko.
        funko: String,
    },
    /// A funko's scale was changed.
    Scaled {
        /// The funko.
        funko: String,
        /// The new scale.
        scale: u32,
    },
    /// A secret was set or removed (never its value).
    Secret {
        /// The funko.
        funko: String,
        /// The key.
        key: String,
        /// Whether it was removed.
        removed: bool,
    },
}

/// Where a funko's work stands right now (the reconciler's record of work in flight).
pub type Progress = Arc<dyn Fn(&str) -> Option<Converging> + Send + Sync>;

/// The latest [`Board`] plus the event fan-out.
#[derive(Clone)]
pub struct StatusBoard {
    board: watch::Sender<Arc<Board>>,
    events: broadcast::Sender<AdminEvent>,
    progress: Option<Progress>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard").finish_non_exhaustive()
    }
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self {
            board: watch::Sender::new(Arc::new(Board::default())),
            events: broadcast::Sender::new(256),
            progress: None,
        }
    }
}

impl StatusBoard {
    /// A board whose funkos' `converging` is read live from `progress` when asked for, not as
    /// of the last pass: a funko's work moves on between passes (from waiting for a build slot
    /// to building, say) and may run for an hour with no pass in between.
    pub fn with_progress(progress: Progress) -> Self {
        Self {
            progress: Some(progress),
            ..Self::default()
        }
    }

    /// The latest board, with each funko's work as it stands now.
    pub fn current(&self) -> Arc<Board> {
        let board = self.board.borrow().clone();
        let Some(progress) = &self.progress else {
            return board;
        };
        let mut live = board.as_ref().clone();
        for funko in &mut live.funkos {
            funko.converging = progress(&funko.name);
        }
        Arc::new(live)
    }

    /// Waits for the next board.
    pub fn watch(&self) -> watch::Receiver<Arc<Board>> {
        self.board.subscribe()
    }

    /// Records the outcome of a pass.
    pub fn pass_finished(&self, funkos: Vec<FunkoStatus>, steps: usize) {
        let pass = self.board.borrow().pass + 1;
        let pending = funkos
            .iter()
            .filter(|f| !f.converged())
            .map(|f| f.name.clone())
            .collect();
        let updated_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.board.send_replace(Arc::new(Board {
            pass,
            updated_at,
            funkos,
        }));
        self.publish(AdminEvent::Pass {
            pass,
            steps,
            pending,
        });
    }

    /// Tells every event subscriber.
    pub fn publish(&self, event: AdminEvent) {
        let _ = self.events.send(event);
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<AdminEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str) -> FunkoStatus {
        FunkoStatus {
            name: name.into(),
            desired: Some(1),
            ready: 0,
            outdated: 0,
            paused: 0,
            stopped: 0,
            autoscaled: None,
            last_decision: None,
            image: None,
            image_created: None,
            error: None,
            converging: None,
            config_hash: None,
        }
    }

    #[test]
    fn a_funkos_work_is_shown_as_it_stands_now_not_as_of_the_last_pass() {
        let step = Arc::new(std::sync::Mutex::new("waiting for a build slot".to_owned()));
        let board = StatusBoard::with_progress({
            let step = step.clone();
            Arc::new(move |funko: &str| {
                (funko == "slow").then(|| Converging {
                    since: 1,
                    seconds: 2,
                    step: step.lock().unwrap().clone(),
                })
            })
        });
        board.pass_finished(vec![status("slow"), status("quick")], 1);
        *step.lock().unwrap() = "build faaso-slow:1".into();
        let now = board.current();
        assert_eq!(now.pass, 1);
        assert_eq!(
            now.funkos[0].converging.as_ref().unwrap().step,
            "build faaso-slow:1"
        );
        assert_eq!(now.funkos[1].converging, None);
    }
}
