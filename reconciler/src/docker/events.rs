//! Docker's container events for the namespace, as the backend's stream of changes.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::backend::{Change, EngineError};
use crate::namespace::Namespace;

/// The events worth a pass: an instance died, started, went away or ran out of memory.
const ACTIONS: [&str; 5] = ["die", "start", "destroy", "stop", "oom"];

/// Managed containers' changes from now on; ends when the engine's stream does.
pub(super) fn changes(
    docker: &Docker,
    ns: &Namespace,
) -> BoxStream<'static, Result<Change, EngineError>> {
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        ("label", vec![ns.managed_filter()]),
    ]);
    let options = EventsOptionsBuilder::new().filters(&filters).build();
    docker
        .events(Some(options))
        .filter_map(|event| async move {
            match event {
                Err(error) => Some(Err(EngineError::new(error))),
                Ok(event) => {
                    let action = event.action.unwrap_or_default();
                    let id = event.actor.and_then(|a| a.id).unwrap_or_default();
                    match action.as_str() {
                        "die" => Some(Ok(Change::Died(id))),
                        "start" => Some(Ok(Change::Started(id))),
                        other if ACTIONS.contains(&other) => Some(Ok(Change::Other)),
                        _ => None,
                    }
                }
            }
        })
        .boxed()
}
