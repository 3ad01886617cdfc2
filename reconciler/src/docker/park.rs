//! Idle instances on Docker: paused (cgroup freezer: memory and address kept, a wake costs
//! milliseconds), stopped and kept (memory freed, the container and its config kept), and
//! back again.

use std::net::SocketAddr;

use bollard::errors::Error;
use bollard::query_parameters::StopContainerOptionsBuilder;

use super::DockerEngine;
use super::container::STOP_GRACE_SECS;
use super::error::DockerError;

impl DockerEngine {
    /// Freezes a running container.
    pub(super) async fn pause_container(&self, id: &str) -> Result<(), DockerError> {
        let result = self.docker.pause_container(id).await;
        self.parked("pause", id, result)
    }

    /// Thaws a paused container; one that is not paused is left as it is.
    pub(super) async fn unpause_container(&self, id: &str) -> Result<(), DockerError> {
        match self.docker.unpause_container(id).await {
            // Not paused (already woken, or never paused): 409, or 500 from Docker 20.10.
            Err(Error::DockerResponseServerError {
                status_code,
                message,
            }) if status_code == 409 || message.contains("is not paused") => Ok(()),
            result => self.parked("unpause", id, result),
        }
    }

    /// Stops a container (SIGTERM, grace period, SIGKILL) and keeps it; a paused one is thawed
    /// first so it can end gracefully.
    pub(super) async fn stop_kept(&self, id: &str) -> Result<(), DockerError> {
        self.unpause_container(id).await?;
        let options = StopContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECS as i32)
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            // 304: already stopped.
            Err(Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            result => self.parked("stop", id, result),
        }
    }

    /// Thaws a paused container or starts a stopped one, and says where it listens now (a
    /// started one may get another address).
    pub(super) async fn resume_container(
        &self,
        id: &str,
        paused: bool,
    ) -> Result<SocketAddr, DockerError> {
        if paused {
            self.unpause_container(id).await?;
        } else {
            let result = self.docker.start_container(id, None).await;
            match result {
                // 304: already running.
                Err(Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => {}
                result => self.parked("start", id, result)?,
            }
        }
        self.address(id).await
    }

    fn parked(
        &self,
        action: &'static str,
        id: &str,
        result: Result<(), Error>,
    ) -> Result<(), DockerError> {
        result.map_err(|source| DockerError::Park {
            action,
            id: id.to_owned(),
            source: source.into(),
        })
    }
}
