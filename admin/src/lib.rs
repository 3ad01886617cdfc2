//! faaso's admin API (`/admin/…`, JSON, bearer token) and web UI, served by `faaso server` beside
//! the proxy. It writes only into the funkos folder and the state directory; the reconciler
//! does the rest.
#![forbid(unsafe_code)]

mod auth;
mod board;
mod build;
mod engine;
mod funkos;
mod guesses;
mod images;
mod instances;
mod secrets;
mod traffic;
mod ui;
mod upload;
mod version;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use faaso_reconciler::{BasePolicy, DockerEngine, Namespace, Trigger};
use tokio::sync::{broadcast, mpsc};

pub use auth::{Token, TokenError};
pub use board::{AdminEvent, Board, Progress, StatusBoard};
pub use engine::Engine;
pub use secrets::{SecretError, SecretStore};
pub use traffic::{ReadTraffic, Sample, Traffic, TrafficReading};
pub use upload::{UploadError, UploadLimits};
pub use version::VERSION;

/// What every admin route shares.
pub struct AdminState {
    /// The funkos folder: the desired state the reconciler watches.
    pub funkos_dir: PathBuf,
    /// The secret values.
    pub secrets: SecretStore,
    /// The bearer token every `/admin/` API route requires.
    pub token: Token,
    /// Where funkos stand, as of the last pass.
    pub board: StatusBoard,
    /// Asks the reconciler for a pass now (the file watcher would notice too, a bit later).
    pub trigger: mpsc::UnboundedSender<Trigger>,
    /// The engine that runs the instances, for their details, output and restarts.
    pub engine: Arc<dyn Engine>,
    /// The Docker engine where funko images are built and kept: the engine itself, or a Swarm
    /// manager's own.
    pub builder: DockerEngine,
    /// The proxy's counters and their recent history.
    pub traffic: Traffic,
    /// The names and labels of this faaso's containers.
    pub namespace: Namespace,
    /// Limits on uploaded funkos.
    pub limits: UploadLimits,
    /// Which base images runtimes build on, for builds asked for through the API.
    pub base_policy: BasePolicy,
    /// Where funkos run, `docker` or `swarm` (on a Swarm the proxy service serves them, not
    /// this server).
    pub backend: &'static str,
}

impl AdminState {
    /// Asks for a pass and tells the event stream what happened.
    pub(crate) fn changed(&self, event: AdminEvent) {
        let _ = self.trigger.send(Trigger::Requested);
        self.board.publish(event);
    }

    /// Subscribes to admin events.
    pub fn events(&self) -> broadcast::Receiver<AdminEvent> {
        self.board.subscribe()
    }
}

/// The `/admin` router: every API route requires the token; the web UI's page and assets
/// (which hold no data) do not.
pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .merge(funkos::routes())
        .merge(images::routes())
        .merge(instances::routes())
        .merge(traffic::routes())
        .merge(upload::routes())
        .merge(build::routes())
        .merge(secrets::routes())
        .merge(version::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/admin", api)
        .merge(ui::routes())
        .with_state(state)
}
