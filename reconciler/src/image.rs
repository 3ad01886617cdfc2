//! Images: whether one exists, and building one from a funko's build context.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::ImageSummary;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptions, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use faaso_schema::BuildContext;
use futures_util::StreamExt;

use crate::docker::{DockerError, is_not_found};
use crate::namespace::Namespace;

/// How a build went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The tag already existed, so nothing was built.
    Reused,
    /// The image was built now.
    Built,
}

/// Whether the engine has `image`.
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool, DockerError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(source) => Err(DockerError::InspectImage {
            image: image.to_owned(),
            source,
        }),
    }
}

/// Every `repo:tag` the engine has, with when its image was built (seconds since the Unix
/// epoch).
pub async fn image_tags(docker: &Docker) -> Result<BTreeMap<String, u64>, DockerError> {
    Ok(docker
        .list_images(None::<ListImagesOptions>)
        .await
        .map_err(|source| DockerError::ListImages { source })?
        .into_iter()
        .flat_map(|image| {
            let created = u64::try_from(image.created).unwrap_or(0);
            image.repo_tags.into_iter().map(move |tag| (tag, created))
        })
        .collect())
}

/// Builds `context` as `image` with the classic builder (BuildKit may be absent on older
/// engines), unless `image` exists already. Each line of build output goes to `on_output`.
pub async fn build_image(
    docker: &Docker,
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
        match run_build(docker, namespace, context, image, tar.clone(), &on_output).await {
            // Another build's clean-up (a prune, or a parallel faaso removing its images) took a
            // cached layer this build was stacking on: the classic builder shares them across
            // images. Nothing is wrong with the funko; the next try builds that layer afresh.
            Err(DockerError::Build { message, .. })
                if message.contains("unknown parent image") && attempt < BUILD_ATTEMPTS =>
            {
                tracing::info!(%image, %message, "a cached layer vanished mid-build; building again");
                remove_orphans(docker).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The label of faaso's base images, which every layer built on them inherits.
const BASE_LABEL: &str = "faaso.base=true";

/// Removes the layers a build leaves when its parent vanished as it committed ("failed to set
/// parent"): untagged, parentless, built on a faaso base image. No build can use them, and no
/// step line names them, so they are found by those marks.
async fn remove_orphans(docker: &Docker) {
    let filters = HashMap::from([("dangling", vec!["true"]), ("label", vec![BASE_LABEL])]);
    let options = ListImagesOptionsBuilder::new().filters(&filters).build();
    let Ok(images) = docker.list_images(Some(options)).await else {
        return;
    };
    for id in orphans(&images) {
        let options = RemoveImageOptionsBuilder::new().build();
        if let Err(error) = docker.remove_image(id, Some(options), None).await {
            tracing::debug!(image = %id, %error, "an orphaned layer was kept");
        }
    }
}

/// The images among `images` that have neither a tag nor a parent.
fn orphans(images: &[ImageSummary]) -> impl Iterator<Item = &str> {
    images
        .iter()
        .filter(|i| i.parent_id.is_empty() && i.repo_tags.iter().all(|t| t == "<none>:<none>"))
        .map(|i| i.id.as_str())
}

/// Tries for a build that loses cached layers to concurrent clean-ups.
const BUILD_ATTEMPTS: u32 = 3;

/// One run of the classic builder over the packed context `tar`.
async fn run_build(
    docker: &Docker,
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
    // The image of the last step that completed: what a failed build leaves behind.
    let mut last_step = None;
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
            if let Some(id) = step_image(line) {
                last_step = Some(id.to_owned());
            }
            if !line.trim().is_empty() {
                on_output(line);
            }
        }
    }
    if let Some(message) = failure {
        if let Some(step) = last_step {
            discard_steps(docker, &step).await;
        }
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

/// The image id in a classic builder's ` ---> 1a2b3c4d5e6f` line, which ends each step.
fn step_image(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> ")?;
    (id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// Removes the untagged images a failed build made for its completed steps: the last one, and
/// with it every parent that no other image builds on (the engine stops at a tagged image or
/// one with other children), so a failed build leaves nothing behind.
async fn discard_steps(docker: &Docker, last_step: &str) {
    let tagged = docker
        .inspect_image(last_step)
        .await
        .is_ok_and(|image| !image.repo_tags.unwrap_or_default().is_empty());
    if tagged {
        // A step the build took from the cache of a tagged image (a base image, say).
        return;
    }
    let options = RemoveImageOptionsBuilder::new().noprune(false).build();
    if let Err(error) = docker.remove_image(last_step, Some(options), None).await {
        tracing::debug!(image = %last_step, %error, "a failed build's step image was kept");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, parent: &str, tags: &[&str]) -> ImageSummary {
        ImageSummary {
            id: id.to_owned(),
            parent_id: parent.to_owned(),
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_untagged_parentless_images_are_orphans() {
        let images = [
            image("sha256:orphan", "", &[]),
            image("sha256:none-tag", "", &["<none>:<none>"]),
            image("sha256:layer", "sha256:base", &[]),
            image("sha256:base", "", &["faaso-base/python:bookworm"]),
        ];
        let found: Vec<_> = orphans(&images).collect();
        assert_eq!(found, ["sha256:orphan", "sha256:none-tag"]);
    }

    #[test]
    fn step_lines_name_their_image_and_nothing_else_does() {
        assert_eq!(step_image(" ---> 5327103d2459"), Some("5327103d2459"));
        assert_eq!(step_image(" ---> Running in 0f1e2d3c4b5a"), None);
        assert_eq!(step_image(" ---> Using cache"), None);
        assert_eq!(step_image("Step 2/5 : RUN false"), None);
        assert_eq!(step_image(" ---> 53271"), None);
    }
}
