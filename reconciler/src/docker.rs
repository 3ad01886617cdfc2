//! Connecting to the Docker engine, and the errors of talking to it.

use bollard::Docker;

/// A failed Docker operation, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine could not be reached or its API version not agreed.
    #[error("cannot connect to the Docker engine ({hint}): {source}")]
    Connect {
        /// Where we looked for it.
        hint: String,
        /// bollard's error.
        source: bollard::errors::Error,
    },
    /// Inspecting an image failed for a reason other than its absence.
    #[error("cannot inspect image `{image}`: {source}")]
    InspectImage {
        /// The image reference.
        image: String,
        /// bollard's error.
        source: bollard::errors::Error,
    },
    /// The image build failed; `log` holds the last lines of its output.
    #[error("building image `{image}` failed: {message}")]
    Build {
        /// The image reference.
        image: String,
        /// The builder's error message.
        message: String,
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
pub async fn connect() -> Result<Docker, DockerError> {
    let hint =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let connect_error = |source| DockerError::Connect {
        hint: hint.clone(),
        source,
    };
    let docker = Docker::connect_with_defaults().map_err(connect_error)?;
    let docker = docker.negotiate_version().await.map_err(connect_error)?;
    docker.ping().await.map_err(connect_error)?;
    Ok(docker)
}

/// Whether bollard's error is the engine saying "no such object".
pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
