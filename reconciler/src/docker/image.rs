//! Images: whether one exists, and building one from a funko's build context.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptions, ListImagesOptionsBuilder, RemoveImageOptions,
};
use faaso_schema::BuildContext;
use futures_util::StreamExt;

use super::error::{DockerError, is_not_found};
use super::failed_build::{Builds, discard_steps, remove_orphans};
use crate::namespace::Namespace;

/// How a build went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The tag already existed, so nothing was built.
    Reused,
    /// The image was built now.
    Built,
}

/// Removes every image built for `funko` in `namespace` (`faaso purge`); returns their tags.
/// An image a container still uses is not removed: that is an error naming it.
pub(super) async fn remove_funko_images(
    docker: &Docker,
    namespace: &Namespace,
    funko: &str,
) -> Result<Vec<String>, DockerError> {
    let labels = vec![
        namespace.managed_filter(),
        format!("{}={funko}", namespace.label("funko")),
    ];
    let filters = HashMap::from([("label", labels)]);
    let options = ListImagesOptionsBuilder::new().filters(&filters).build();
    let images =
        docker
            .list_images(Some(options))
            .await
            .map_err(|source| DockerError::ListImages {
                source: source.into(),
            })?;
    let mut removed = Vec::new();
    for image in images {
        let name = image.repo_tags.first().cloned().unwrap_or(image.id.clone());
        match docker
            .remove_image(&image.id, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => removed.extend(image.repo_tags),
            Err(e) if is_not_found(&e) => {}
            Err(source) => {
                return Err(DockerError::RemoveImage {
                    image: name,
                    source: source.into(),
                });
            }
        }
    }
    removed.sort();
    Ok(removed)
}

/// Whether the engine has `image`.
pub(super) async fn image_exists(docker: &Docker, image: &str) -> Result<bool, DockerError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(source) => Err(DockerError::InspectImage {
            image: image.to_owned(),
            source: source.into(),
        }),
    }
}

/// Every `repo:tag` the engine has, with when its image was built (seconds since the Unix
/// epoch).
pub(super) async fn image_tags(docker: &Docker) -> Result<BTreeMap<String, u64>, DockerError> {
    Ok(docker
        .list_images(None::<ListImagesOptions>)
        .await
        .map_err(|source| DockerError::ListImages {
            source: source.into(),
        })?
        .into_iter()
        .flat_map(|image| {
            let created = u64::try_from(image.created).unwrap_or(0);
            image.repo_tags.into_iter().map(move |tag| (tag, created))
        })
        .collect())
}

/// Builds `context` as `image` with the classic builder (BuildKit may be absent on older
/// engines), unless `image` exists already. Each line of build output goes to `on_output`.
pub(super) async fn build_image(
    docker: &Docker,
    builds: &Builds,
    namespace: &Namespace,
    context: &BuildContext,
    image: &str,
    on_output: impl Fn(&str),
) -> Result<BuildOutcome, DockerError> {
    if image_exists(docker, image).await? {
        return Ok(BuildOutcome::Reused);
    }
    let tar = bytes::Bytes::from(context.to_tar().map_err(|source| DockerError::Pack {
        image: image.to_owned(),
        source,
    })?);
    let mut attempt = 1;
    loop {
        builds.begin(image);
        let result = run_build(
            docker,
            builds,
            namespace,
            context,
            image,
            tar.clone(),
            &on_output,
        )
        .await;
        builds.end(image);
        match result {
            // Another build's clean-up (a prune, or a parallel faaso removing its images) took a
            // cached layer this build was stacking on: the classic builder shares them across
            // images. Nothing is wrong with the funko; the next try builds that layer afresh.
            Err(DockerError::Build { message, .. })
                if layer_vanished(&message) && attempt < BUILD_ATTEMPTS =>
            {
                tracing::info!(%image, %message, "a cached layer vanished mid-build; building again");
                remove_orphans(docker).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether a build failed because a cached layer it stacked on was removed under it: the
/// classic builder says "unknown parent image", or fails to read the layer's config ("failed to
/// get digest …: no such file or directory").
fn layer_vanished(message: &str) -> bool {
    message.contains("unknown parent image")
        || (message.contains("failed to get digest") && message.contains("no such file"))
}

/// Tries for a build that loses cached layers to concurrent clean-ups.
const BUILD_ATTEMPTS: u32 = 3;

/// One run of the classic builder over the packed context `tar`.
async fn run_build(
    docker: &Docker,
    builds: &Builds,
    namespace: &Namespace,
    context: &BuildContext,
    image: &str,
    tar: bytes::Bytes,
    on_output: &impl Fn(&str),
) -> Result<BuildOutcome, DockerError> {
    let labels = HashMap::from([
        (namespace.label("managed"), "true".to_owned()),
        (namespace.label("funko"), context.name.to_string()),
    ]);
    let options = BuildImageOptionsBuilder::new()
        .t(image)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar)));
    let build_error = |message: String| DockerError::Build {
        image: image.to_owned(),
        message,
    };
    // The images of the steps this build made itself (not taken from the cache) are what a
    // failed build would leave behind: `builds` follows them, and the step running now.
    let mut failure = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        if let Some(detail) = info.error_detail {
            failure = Some(detail.message.unwrap_or_default().trim().to_owned());
            break;
        }
        for line in info.stream.iter().flat_map(|s| s.lines()) {
            builds.read(image, line);
            if !line.trim().is_empty() {
                on_output(line);
            }
        }
    }
    if let Some(message) = failure {
        discard_steps(docker, &builds.end(image).made).await;
        return Err(build_error(message));
    }
    // The classic builder can end the stream without an error yet leave no image (a dropped
    // connection, say); only the tag's presence proves success.
    if image_exists(docker, image).await? {
        Ok(BuildOutcome::Built)
    } else {
        Err(build_error(
            "the build ended without producing the image".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::layer_vanished;

    #[test]
    fn a_cached_layer_removed_under_a_build_is_told_from_a_broken_build() {
        assert!(layer_vanished("unknown parent image ID sha256:0123"));
        assert!(layer_vanished(
            "failed to get digest sha256:a49e: open /var/lib/docker/image/fuse-overlayfs/imagedb/content/sha256/a49e: no such file or directory"
        ));
        assert!(!layer_vanished(
            "The command '/bin/sh -c false' returned a non-zero code: 1"
        ));
    }
}
