//! `Engine`: the side-effect edge of the reconciler. The Docker implementation runs real
//! containers; the twin implements it in memory for tests of the pass logic.

use std::future::Future;
use std::net::SocketAddr;

use faaso_schema::Healthcheck;

use crate::desired::Prepared;
use crate::docker::DockerError;
use crate::model::Observed;

/// A freshly started instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// Where it listens (its address on the network, port 3000).
    pub addr: SocketAddr,
    /// The request timeout its funko's spec sets (what a proxy applies to it).
    pub request_timeout: std::time::Duration,
}

/// What the reconciler needs from a container engine.
pub trait Engine: Send + Sync {
    /// Lists managed containers (and `<prefix>-<x>` ones) and the images present.
    fn observe(&self) -> impl Future<Output = Result<Observed, DockerError>> + Send;
    /// Creates the network when it is missing.
    fn ensure_network(&self) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Builds the funko's image; `output` receives each line of build output.
    fn build(
        &self,
        prepared: &Prepared,
        output: &(dyn Fn(&str) + Send + Sync),
    ) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Creates and starts instance `number` of the funko.
    fn start(
        &self,
        prepared: &Prepared,
        number: u32,
    ) -> impl Future<Output = Result<Started, DockerError>> + Send;
    /// Waits until the instance answers its healthcheck, or says why it never did.
    fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Stops (SIGTERM, grace period, SIGKILL) and removes a container; a missing one is fine.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Removes the funko images nothing needs: all but `keep` and one previous image per funko,
    /// and any left dangling by an interrupted build. Returns how many went.
    fn prune_images(
        &self,
        keep: &std::collections::BTreeSet<String>,
    ) -> impl Future<Output = Result<usize, DockerError>> + Send;
}
