//! Removing what one test's faaso made: its containers, networks and images, found by label.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};

/// Removes everything labelled `<namespace>.managed=true` or `<namespace>.role=proxy`, and
/// prints what could not be removed. Runs on a thread of its own with its own runtime, since
/// callers are `Drop`s that may run inside a test's runtime or while it unwinds; never panics.
pub fn remove_namespace(namespace: &str) {
    // The server's container first: running, it would start instances after their sweep
    // (a failed `server up` test left one, found in issue 25).
    let labels = [
        format!("{namespace}.role=proxy"),
        format!("{namespace}.managed=true"),
    ];
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let docker = Docker::connect_with_defaults().ok()?;
            let docker = docker.negotiate_version().await.ok()?;
            let mut leftovers = Vec::new();
            // Docker ANDs label filters: one sweep per label.
            for label in &labels {
                leftovers.extend(remove_labelled(&docker, label).await);
            }
            Some(leftovers)
        })
    });
    match cleanup.join() {
        Ok(Some(leftovers)) if leftovers.is_empty() => {}
        Ok(Some(leftovers)) => eprintln!("{namespace}: could not remove {leftovers:#?}"),
        _ => eprintln!("{namespace}: could not reach Docker to clean up"),
    }
}

async fn remove_labelled(docker: &Docker, label: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![label])]);
    let mut leftovers = Vec::new();
    let containers = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    for c in docker
        .list_containers(Some(containers))
        .await
        .unwrap_or_default()
    {
        let id = c.id.unwrap_or_default();
        let force = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = docker.remove_container(&id, Some(force)).await {
            leftovers.push(format!("container {id}: {e}"));
        }
    }
    let networks = ListNetworksOptionsBuilder::new().filters(&filters).build();
    for n in docker
        .list_networks(Some(networks))
        .await
        .unwrap_or_default()
    {
        let name = n.name.unwrap_or_default();
        if let Err(e) = docker.remove_network(&name).await {
            leftovers.push(format!("network {name}: {e}"));
        }
    }
    let images = ListImagesOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    for i in docker.list_images(Some(images)).await.unwrap_or_default() {
        let force = RemoveImageOptionsBuilder::new().force(true).build();
        if let Err(e) = docker.remove_image(&i.id, Some(force), None).await {
            leftovers.push(format!("image {}: {e}", i.id));
        }
    }
    leftovers
}
