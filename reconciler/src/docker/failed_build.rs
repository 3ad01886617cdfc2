//! What a failed build leaves behind, and clearing it: the images of the steps it made, the
//! container of a step still running when a build is cut short, and the orphaned layer of a
//! build whose parent vanished under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bollard::Docker;
use bollard::models::ImageSummary;
use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};

/// The steps of a classic build, as its output tells them.
#[derive(Debug, Default)]
pub(crate) struct BuildSteps {
    /// Images of the steps the build made, oldest first.
    pub(crate) made: Vec<String>,
    /// The container of the step running now (a `RUN`), until the step ends.
    pub(crate) running: Option<String>,
    /// Whether the current step was taken from the cache.
    cached: bool,
    /// Whether a step line was seen yet (the first, `FROM`, makes nothing).
    started: bool,
}

impl BuildSteps {
    /// Takes one line of build output.
    pub(crate) fn read(&mut self, line: &str) {
        if line.trim() == "---> Using cache" {
            self.cached = true;
        } else if let Some(id) = line.trim().strip_prefix("---> Running in ") {
            self.running = Some(id.trim().to_owned());
        } else if let Some(id) = step_image(line) {
            self.running = None;
            if self.started && !self.cached {
                self.made.push(id.to_owned());
            }
            self.started = true;
            self.cached = false;
        }
    }
}

/// The builds running now, by image tag, so that one cut short (its future dropped at a
/// timeout or a cancel) can be cleared by whoever cut it. Clones share them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Builds(Arc<Mutex<HashMap<String, BuildSteps>>>);

impl Builds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BuildSteps>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A build of `image` begins.
    pub(crate) fn begin(&self, image: &str) {
        self.lock().insert(image.to_owned(), BuildSteps::default());
    }

    /// One line of `image`'s build output.
    pub(crate) fn read(&self, image: &str, line: &str) {
        if let Some(steps) = self.lock().get_mut(image) {
            steps.read(line);
        }
    }

    /// The build of `image` ended (or was cut short): its steps, forgotten here.
    pub(crate) fn end(&self, image: &str) -> BuildSteps {
        self.lock().remove(image).unwrap_or_default()
    }
}

/// Clears what a build of `image` cut short leaves: the container of the step it was running
/// (Docker kills it when the client goes, but not always at once) and the step images it made.
pub(crate) async fn abandon(docker: &Docker, builds: &Builds, image: &str) {
    let steps = builds.end(image);
    if let Some(container) = &steps.running {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(container, Some(options)).await {
            Ok(()) => {
                tracing::info!(%image, %container, "removed the step a stopped build was running")
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(error) => {
                tracing::warn!(%image, %container, %error, "cannot remove the step a stopped build was running")
            }
        }
    }
    discard_steps(docker, &steps.made).await;
}

/// The image id in a classic builder's ` ---> 1a2b3c4d5e6f` line, which ends each step.
fn step_image(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> ")?;
    (id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// Removes the images a failed build made for its steps, newest first, without their parents:
/// those came from the cache, and other builds may be stacking on them right now. An image
/// that got a tag meanwhile, or cannot be inspected, is kept.
pub(crate) async fn discard_steps(docker: &Docker, made: &[String]) {
    for step in made.iter().rev() {
        let untagged = docker
            .inspect_image(step)
            .await
            .is_ok_and(|image| image.repo_tags.unwrap_or_default().is_empty());
        if !untagged {
            continue;
        }
        let options = RemoveImageOptionsBuilder::new().noprune(true).build();
        if let Err(error) = docker.remove_image(step, Some(options), None).await {
            log_kept(step, &error, "a failed build's step image was kept");
        }
    }
}

/// Logs an image that could not be removed: a conflict (another image or a container uses it)
/// is expected; anything else is worth a warning.
fn log_kept(image: &str, error: &bollard::errors::Error, what: &str) {
    match error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        } => tracing::debug!(%image, %error, "{what}"),
        _ => tracing::warn!(%image, %error, "{what}"),
    }
}

/// The label of faaso's base images, which every layer built on them inherits.
const BASE_LABEL: &str = "faaso.base=true";

/// Removes the layers a build leaves when its parent vanished as it committed ("failed to set
/// parent"): untagged, parentless, built on a faaso base image. No build can use them, and no
/// step line names them, so they are found by those marks.
pub(crate) async fn remove_orphans(docker: &Docker) {
    let filters = HashMap::from([("dangling", vec!["true"]), ("label", vec![BASE_LABEL])]);
    let options = ListImagesOptionsBuilder::new().filters(&filters).build();
    let images = match docker.list_images(Some(options)).await {
        Ok(images) => images,
        Err(error) => {
            tracing::warn!(%error, "could not list images to find orphaned layers");
            return;
        }
    };
    if !images.is_empty() && !links_parents(docker).await {
        return;
    }
    for id in orphans(&images) {
        let options = RemoveImageOptionsBuilder::new().build();
        if let Err(error) = docker.remove_image(id, Some(options), None).await {
            log_kept(id, &error, "an orphaned layer was kept");
        }
    }
}

/// Whether the engine records each image's parent, as its classic image store does; in the
/// containerd store every image is parentless, so "parentless" would mark nothing.
async fn links_parents(docker: &Docker) -> bool {
    let Ok(info) = docker.info().await else {
        return false;
    };
    !info
        .driver_status
        .unwrap_or_default()
        .iter()
        .flatten()
        .any(|field| field.contains("containerd.snapshotter"))
}

/// The images among `images` that have neither a tag nor a parent.
fn orphans(images: &[ImageSummary]) -> impl Iterator<Item = &str> {
    images
        .iter()
        .filter(|i| i.parent_id.is_empty() && i.repo_tags.iter().all(|t| t == "<none>:<none>"))
        .map(|i| i.id.as_str())
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
    fn only_the_steps_a_build_made_are_its_own() {
        let output = [
            "Step 1/5 : FROM faaso-base/python:bookworm",
            " ---> d652ee0c7360",
            "Step 2/5 : ENV PORT=3000",
            " ---> Using cache",
            " ---> 5327103d2459",
            "Step 3/5 : COPY . /app/",
            " ---> 0c499971ccba",
            "Step 4/5 : RUN make",
            " ---> Running in 0f5979863559",
            "Removing intermediate container 0f5979863559",
            " ---> 271d91094522",
            "Step 5/5 : RUN false",
            " ---> Running in 65a65a20b295",
        ];
        let mut steps = BuildSteps::default();
        for line in output {
            steps.read(line);
        }
        assert_eq!(steps.made, ["0c499971ccba", "271d91094522"]);
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
