//! Instance output from Docker: every instance of a funko as a stream, and the last lines of
//! one container for an error report.

use bollard::Docker;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerEngine, DockerError};
use crate::backend::{EngineError, InstanceLog, LogOptions};

/// The engine API's query for `options`: a container's and a Swarm task's logs take the same.
pub(crate) fn logs_query(options: LogOptions) -> bollard::query_parameters::LogsOptions {
    let tail = options.tail.map_or("all".to_owned(), |n| n.to_string());
    LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(options.follow)
        .tail(&tail)
        .build()
}

/// Every instance of `funko`, each with its output stream.
pub(super) async fn logs(
    engine: &DockerEngine,
    funko: &str,
    options: LogOptions,
) -> Result<Vec<InstanceLog>, DockerError> {
    let query = logs_query(options);
    let instances = engine.funko_instances(funko).await?;
    Ok(instances
        .into_iter()
        .map(|instance| {
            let output = engine
                .docker
                .logs(&instance.id, Some(query.clone()))
                .map(|chunk| chunk.map(|c| c.into_bytes()).map_err(EngineError::new))
                .boxed();
            InstanceLog {
                instance: instance.name,
                output,
            }
        })
        .collect())
}

/// The last `lines` a container printed, for error reports.
pub(super) async fn tail(docker: &Docker, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    text.trim().to_owned()
}
