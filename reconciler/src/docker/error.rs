//! Connecting to the Docker engine, and the errors of talking to it.

use bollard::Docker;

/// bollard's error, kept as the cause (message and source) without putting bollard's type in
/// faaso's API.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Cause(#[from] bollard::errors::Error);

/// A failed Docker operation, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine could not be reached or its API version not agreed.
    #[error("cannot connect to the Docker engine ({hint}): {source}")]
    Connect {
        /// Where we looked for it.
        hint: String,
        /// bollard's error.
        source: Cause,
    },
    /// Inspecting an image failed for a reason other than its absence.
    #[error("cannot inspect image `{image}`: {source}")]
    InspectImage {
        /// The image reference.
        image: String,
        /// bollard's error.
        source: Cause,
    },
    /// The image build failed.
    #[error("building image `{image}` failed: {message}")]
    Build {
        /// The image reference.
        image: String,
        /// The builder's error message.
        message: String,
    },
    /// Listing containers failed.
    #[error("cannot list containers: {source}")]
    ListContainers {
        /// bollard's error.
        source: Cause,
    },
    /// Listing images failed.
    #[error("cannot list images: {source}")]
    ListImages {
        /// bollard's error.
        source: Cause,
    },
    /// Inspecting a container failed.
    #[error("cannot inspect container `{id}`: {source}")]
    Inspect {
        /// The container.
        id: String,
        /// bollard's error.
        source: Cause,
    },
    /// Inspecting or creating the network failed.
    #[error("cannot set up network `{network}`: {source}")]
    Network {
        /// The network name.
        network: String,
        /// bollard's error.
        source: Cause,
    },
    /// Creating a container failed.
    #[error("cannot create container `{name}`: {source}")]
    Create {
        /// The container name.
        name: String,
        /// bollard's error.
        source: Cause,
    },
    /// Pausing, unpausing, stopping or starting again a kept container failed.
    #[error("cannot {action} container `{id}`: {source}")]
    Park {
        /// What was being done (`pause`, `unpause`, `stop`, `start`).
        action: &'static str,
        /// The container.
        id: String,
        /// bollard's error.
        source: Cause,
    },
    /// Starting a container failed.
    #[error("cannot start container `{name}`: {source}")]
    Start {
        /// The container name.
        name: String,
        /// bollard's error.
        source: Cause,
    },
    /// Stopping or removing a container failed.
    #[error("cannot remove container `{id}`: {source}")]
    Remove {
        /// The container.
        id: String,
        /// bollard's error.
        source: Cause,
    },
    /// Restarting a container failed.
    #[error("cannot restart instance `{id}`: {source}")]
    Restart {
        /// The container.
        id: String,
        /// bollard's error.
        source: Cause,
    },
    /// Removing an image failed (a container still uses it, say).
    #[error("cannot remove image `{image}`: {source}")]
    RemoveImage {
        /// The image.
        image: String,
        /// bollard's error.
        source: Cause,
    },
    /// A new instance never answered its healthcheck.
    #[error("instance `{id}` never became ready: {reason}")]
    NotReady {
        /// The container name.
        id: String,
        /// What was seen.
        reason: String,
    },
    /// The build context could not be packed.
    #[error("cannot pack the build context of `{image}`: {source}")]
    Pack {
        /// The image reference.
        image: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Connects to the engine named by `DOCKER_HOST` (or the local socket) and agrees on an API
/// version, so older engines (Debian's 20.10 speaks 1.41) work.
pub(super) async fn connect() -> Result<Docker, DockerError> {
    let hint =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    agree(Docker::connect_with_defaults(), hint).await
}

/// Connects to the engine on the Unix socket `socket`.
pub(super) async fn connect_at(socket: &std::path::Path) -> Result<Docker, DockerError> {
    let path = socket.to_string_lossy();
    let docker = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION);
    agree(docker, path.into_owned()).await
}

/// Agrees on an API version and checks the engine answers.
async fn agree(
    docker: Result<Docker, bollard::errors::Error>,
    hint: String,
) -> Result<Docker, DockerError> {
    let connect_error = |source: bollard::errors::Error| DockerError::Connect {
        hint: hint.clone(),
        source: source.into(),
    };
    let docker = docker.map_err(connect_error)?;
    let docker = docker.negotiate_version().await.map_err(connect_error)?;
    docker.ping().await.map_err(connect_error)?;
    Ok(docker)
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

/// Whether bollard's error is the engine saying "conflict" (a name taken, a state that forbids).
pub(super) fn is_conflict(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

impl From<DockerError> for crate::backend::EngineError {
    fn from(error: DockerError) -> Self {
        Self::new(error)
    }
}
