//! `StatusBoard`: where every funko stands as of the last pass, and the stream of admin events
//! (`GET /admin/events`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use faaso_reconciler::FunkoStatus;
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

/// The latest [`Board`] plus the event fan-out.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    board: watch::Sender<Arc<Board>>,
    events: broadcast::Sender<AdminEvent>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self {
            board: watch::Sender::new(Arc::new(Board::default())),
            events: broadcast::Sender::new(256),
        }
    }
}

impl StatusBoard {
    /// The latest board.
    pub fn current(&self) -> Arc<Board> {
        self.board.borrow().clone()
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
