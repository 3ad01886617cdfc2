//! What can go wrong talking to a Swarm manager: one variant per operation, bollard's error kept
//! as an opaque cause.

/// bollard's error, kept as the source without putting a bollard type in the public API.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failed Swarm operation.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The manager did not answer.
    #[error(
        "cannot reach the Swarm manager at {hint} (scripts/swarm-lab env tells the lab's): {source}"
    )]
    Connect {
        /// Where it was looked for.
        hint: String,
        /// bollard's error.
        source: Cause,
    },
    /// The engine answers but is no Swarm manager.
    #[error("the engine at {hint} is not a Swarm manager (its node state is `{state}`)")]
    NotManager {
        /// Where it is.
        hint: String,
        /// Its local node state.
        state: String,
    },
    /// No registry is configured: Swarm nodes pull images from one.
    #[error(
        "the Swarm backend needs a registry its nodes pull from: set --registry or FAASO_REGISTRY (scripts/swarm-lab env prints the lab's)"
    )]
    NoRegistry,
    /// An engine call failed.
    #[error("cannot {what}: {source}")]
    Engine {
        /// What was being done.
        what: String,
        /// bollard's error.
        source: Cause,
    },
    /// The network faaso uses exists with another driver.
    #[error(
        "network `{0}` exists but is no attachable overlay network: choose another with --network"
    )]
    NotOverlay(String),
    /// Something the operator asked that Swarm does not do.
    #[error("{0}")]
    Unsupported(String),
}

impl SwarmError {
    /// An engine call's failure, saying what was being done.
    pub(super) fn engine(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let what = what.into();
        move |source| SwarmError::Engine {
            what,
            source: source.into(),
        }
    }
}

impl From<SwarmError> for crate::backend::EngineError {
    fn from(error: SwarmError) -> Self {
        Self::new(error)
    }
}

/// Whether bollard's error is the engine saying "no such object".
pub(super) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
