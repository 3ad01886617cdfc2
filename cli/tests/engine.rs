//! Real Docker engine tests: `faaso build` on every example funko, then the image run the way
//! faaso runs it (own bridge network, `PORT=3000`, env from funko.yml, secrets mounted
//! read-only, read-only root filesystem) must answer `/ping` and its handler. Needs a Docker engine and the base images
//! from `scripts/base-images`.
//!
//! Everything a test creates carries the label namespace of its `Sandbox` (also its image and
//! container name prefix), so tests run in parallel and the sandbox removes exactly its own
//! containers, network and images when dropped, even when an assertion failed.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    LogsOptionsBuilder, StopContainerOptionsBuilder,
};
use common::{Run, arg, faaso_in, repo_root};
use futures_util::StreamExt;

/// How long a fresh container may take to answer `/ping`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A started container of a funko, ready on the test network.
struct Instance {
    name: String,
    ip: IpAddr,
}

/// One test's corner of the engine: a unique name prefix and label namespace, a bridge network,
/// and a scratch folder. Dropping it removes everything labelled with its namespace.
struct Sandbox {
    id: String,
    docker: Docker,
    network: String,
    tmp: tempfile::TempDir,
}

impl Sandbox {
    /// Connects, checks the base images are there, and creates the test's network.
    async fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!(
            "faasotest-{:x}{:x}{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let docker = connect().await;
        require_base_images(&docker).await;
        let network = format!("{id}-net");
        let sandbox = Self {
            docker,
            network: network.clone(),
            tmp: tempfile::tempdir().unwrap(),
            id,
        };
        sandbox
            .docker
            .create_network(NetworkCreateRequest {
                name: network,
                driver: Some("bridge".into()),
                labels: Some(sandbox.labels()),
                ..Default::default()
            })
            .await
            .expect("the test network should be created");
        sandbox
    }

    /// The labels on everything this sandbox creates; faaso is told to use the same namespace.
    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(format!("{}.managed", self.id), "true".to_owned())])
    }

    /// Runs `faaso` with this sandbox's prefix, labels and network, and local base images.
    fn faaso(&self, args: &[&str]) -> Run {
        faaso_in(
            self.tmp.path(),
            args,
            &[
                ("FAASO_PREFIX", &self.id),
                ("FAASO_LABELS", &self.id),
                ("FAASO_NETWORK", &self.network),
                ("FAASO_BASE_IMAGES", "local"),
            ],
        )
    }

    /// Copies the example funko `name` into the scratch folder (so its build products stay
    /// there) and runs its `build.sh`, if it has one, like a user deploying it would.
    fn example(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        copy_dir(&repo_root().join("funkos").join(name), &dir);
        prepare(&dir);
        dir
    }

    /// The image tags faaso built for funko `name` in this sandbox.
    async fn images_of(&self, name: &str) -> Vec<String> {
        let label = format!("{}.funko={name}", self.id);
        let filters = HashMap::from([("label", vec![label.as_str()])]);
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        let images = self.docker.list_images(Some(options)).await.unwrap();
        images.into_iter().flat_map(|i| i.repo_tags).collect()
    }

    /// The one image faaso built for `name`, checking it is tagged `<prefix>-<name>:<hash>`.
    async fn image_of(&self, name: &str) -> String {
        let tags = self.images_of(name).await;
        assert_eq!(tags.len(), 1, "one image for `{name}`: {tags:?}");
        let repository = format!("{}-{name}:", self.id);
        assert!(tags[0].starts_with(&repository), "{tags:?}");
        assert!(
            tags[0].len() > repository.len(),
            "no content hash: {tags:?}"
        );
        tags[0].clone()
    }

    /// Starts `image` as faaso would start funko `dir`, and returns it once `/ping` answers 200
    /// on its address on the test network.
    async fn run(&self, image: &str, dir: &Path, secrets: &[(&str, &str)]) -> Instance {
        let funko = faaso_schema::load_funko(dir).expect("the funko is valid");
        let mut env = vec!["PORT=3000".to_owned()];
        env.extend(
            funko
                .spec
                .env
                .iter()
                .map(|(k, v)| format!("{}={}", k.0, v.0)),
        );
        let secret_dir = self.tmp.path().join(format!("secrets-{}", funko.spec.name));
        std::fs::create_dir_all(&secret_dir).unwrap();
        let mut binds = Vec::new();
        for key in &funko.spec.secrets {
            let value = secrets
                .iter()
                .find(|(k, _)| *k == key.0)
                .unwrap_or_else(|| panic!("the test has no value for secret `{}`", key.0))
                .1;
            let file = secret_dir.join(&key.0);
            std::fs::write(&file, value).unwrap();
            binds.push(format!("{}:/secrets/{}:ro", file.display(), key.0));
        }
        let name = format!("{}-{}", self.id, funko.spec.name);
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(env),
            labels: Some(self.labels()),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                binds: Some(binds),
                // As faaso runs instances: under Docker's init, which passes SIGTERM on, and
                // hardened (read-only root with a tmpfs /tmp, no capabilities, no new
                // privileges), so a runtime that writes outside /tmp fails here too.
                init: Some(true),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_owned(),
                    "rw,noexec,nosuid,size=64m".to_owned(),
                )])),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                pids_limit: Some(256),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("creating a container from {image}: {e}"));
        self.docker
            .start_container(&name, None)
            .await
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let inspect = self.docker.inspect_container(&name, None).await.unwrap();
        let ip = inspect
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|n| n.get(&self.network).cloned())
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("{name} has no address on {}", self.network));
        let started = Instant::now();
        loop {
            match http_get(ip, "/ping") {
                Ok((200, _)) => return Instance { name, ip },
                Ok(_) | Err(_) if started.elapsed() < READY_WITHIN => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                answer => panic!(
                    "{name} ({image}) did not answer GET /ping with 200 within {READY_WITHIN:?}: \
                     {answer:?}\n--- container log\n{}",
                    self.logs(&name).await
                ),
            }
        }
    }

    /// Stops `instance` as faaso does (SIGTERM, then SIGKILL after a grace period) and checks
    /// it left on SIGTERM by itself: a SIGKILL (exit 137) means every redeploy waits out the
    /// grace period.
    async fn assert_stops_on_sigterm(&self, instance: &Instance) {
        let options = StopContainerOptionsBuilder::new().t(10).build();
        self.docker
            .stop_container(&instance.name, Some(options))
            .await
            .unwrap();
        let state = self
            .docker
            .inspect_container(&instance.name, None)
            .await
            .unwrap()
            .state
            .unwrap();
        assert_ne!(
            state.exit_code,
            Some(137),
            "{} ignored SIGTERM and was killed\n--- container log\n{}",
            instance.name,
            self.logs(&instance.name).await
        );
    }

    /// Checks `image` runs as a user other than root, as issue 2 asks where the base allows.
    async fn assert_not_root(&self, image: &str) {
        let config = self
            .docker
            .inspect_image(image)
            .await
            .unwrap()
            .config
            .unwrap();
        let user = config.user.unwrap_or_default();
        let uid = user.split(':').next().unwrap_or_default();
        assert!(
            !matches!(uid, "" | "0" | "root"),
            "{image} runs as root (USER `{user}`)"
        );
    }

    async fn logs(&self, container: &str) -> String {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut stream = self.docker.logs(container, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        text
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        common::cleanup::remove_namespace(&self.id);
    }
}

async fn connect() -> Docker {
    let docker = Docker::connect_with_defaults().expect("DOCKER_HOST should be usable");
    docker
        .negotiate_version()
        .await
        .expect("these tests need a running Docker engine")
}

/// Fails (never skips) when a runtime's offline base image is missing, saying how to make it.
async fn require_base_images(docker: &Docker) {
    for runtime in faaso_schema::Runtime::builtin_names() {
        let runtime = faaso_schema::Runtime::builtin(&runtime).unwrap();
        if let Some(image) = runtime.base_image(faaso_schema::BaseChoice::Local)
            && docker.inspect_image(image).await.is_err()
        {
            panic!(
                "base image {image} is missing: run scripts/base-images first (it builds every base image offline)"
            );
        }
    }
}

/// Runs the funko's `build.sh` when it has one (the binary runtime's static executable).
fn prepare(dir: &Path) {
    let script = dir.join("build.sh");
    if script.exists() {
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .expect("bash should start");
        assert!(status.success(), "{} failed", script.display());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `GET path` on port 3000 of `ip` over HTTP/1.0, so the server closes after answering:
/// (status, body).
fn http_get(ip: IpAddr, path: &str) -> std::io::Result<(u16, String)> {
    let address = SocketAddr::new(ip, 3000);
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, text.to_string());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)?;
    Ok((status, body.to_owned()))
}

/// Builds the example funko `name`, runs it, and checks `GET path` answers 200 with `body`.
async fn example_answers(name: &str, path: &str, body: &str) {
    example_answers_each(name, &[(path, body)]).await;
}

/// Like [`example_answers`], for several paths of one instance: `(path, body)` each.
async fn example_answers_each(name: &str, answers: &[(&str, &str)]) {
    let sandbox = Sandbox::new().await;
    let dir = sandbox.example(name);
    let build = sandbox.faaso(&["build", arg(&dir)]).success();
    let image = sandbox.image_of(name).await;
    assert!(build.stderr.contains(&format!("built {image}")), "{build}");
    let instance = sandbox
        .run(&image, &dir, &[("api-key", "s3cret-from-a-file")])
        .await;
    for (path, body) in answers {
        let answer = http_get(instance.ip, path).unwrap();
        assert_eq!(answer, (200, (*body).to_owned()), "GET {path} on {name}");
    }
    sandbox.assert_not_root(&image).await;
    sandbox.assert_stops_on_sigterm(&instance).await;
}

const CONFIG_BODY: &str = "greeting: hello from funko.yml\napi-key: s3cret-from-a-file\n";

#[tokio::test]
async fn hello_python_answers() {
    example_answers("hello-python", "/?name=faaso", "Hello, faaso!\n").await;
}

#[tokio::test]
async fn hello_idle_answers() {
    let sandbox = Sandbox::new().await;
    let dir = sandbox.example("hello-idle");
    sandbox.faaso(&["build", arg(&dir)]).success();
    let image = sandbox.image_of("hello-idle").await;
    let instance = sandbox.run(&image, &dir, &[]).await;
    let (status, body) = http_get(instance.ip, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.starts_with("Hello from ") && body.ends_with("awake again!\n"),
        "{body}"
    );
}

#[tokio::test]
async fn hello_node_answers() {
    example_answers("hello-node", "/?name=faaso", "Hello, faaso!\n").await;
}

#[tokio::test]
async fn hello_flask_answers() {
    let links = r#"{"echo":"/echo","hello":"/"}"#.to_owned() + "\n";
    let answers = [("/?name=faaso", "Hello, faaso!\n"), ("/links", &links)];
    example_answers_each("hello-flask", &answers).await;
}

#[tokio::test]
async fn hello_express_answers() {
    let answers = [
        ("/?name=faaso", "Hello, faaso!\n"),
        ("/users/7", r#"{"id":"7"}"#),
    ];
    example_answers_each("hello-express", &answers).await;
}

#[tokio::test]
async fn hello_binary_answers() {
    let body = "Hello from hello-binary! You asked for /hi\n";
    example_answers("hello-binary", "/hi", body).await;
}

#[tokio::test]
async fn config_python_reads_env_and_secret() {
    example_answers("config-python", "/", CONFIG_BODY).await;
}

#[tokio::test]
async fn config_node_reads_env_and_secret() {
    example_answers("config-node", "/", CONFIG_BODY).await;
}

#[tokio::test]
async fn config_binary_reads_env_and_secret() {
    example_answers("config-binary", "/", CONFIG_BODY).await;
}

/// Issue 2's "done when": `faaso new` then `faaso build` gives an image that answers.
async fn new_funko_answers(runtime: &str) {
    let sandbox = Sandbox::new().await;
    let funkos = sandbox.tmp.path().join("funkos");
    let new = ["new", "hello", "--runtime", runtime, "--dir", arg(&funkos)];
    sandbox.faaso(&new).success();
    let dir = funkos.join("hello");
    prepare(&dir);
    sandbox.faaso(&["build", arg(&dir)]).success();
    let image = sandbox.image_of("hello").await;
    let instance = sandbox.run(&image, &dir, &[]).await;
    let (status, body) = http_get(instance.ip, "/").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("hello"),
        "the template's answer names the funko: {body}"
    );
    sandbox.assert_not_root(&image).await;
    sandbox.assert_stops_on_sigterm(&instance).await;
}

#[tokio::test]
async fn a_new_python_funko_builds_and_answers() {
    new_funko_answers("python").await;
}

#[tokio::test]
async fn a_new_node_funko_builds_and_answers() {
    new_funko_answers("node").await;
}

#[tokio::test]
async fn a_new_flask_funko_builds_and_answers() {
    new_funko_answers("flask").await;
}

#[tokio::test]
async fn a_new_express_funko_builds_and_answers() {
    new_funko_answers("express").await;
}

#[tokio::test]
async fn a_new_binary_funko_builds_and_answers() {
    new_funko_answers("binary").await;
}

/// A Flask app made by a factory named in `options.app`, with its own `/ping`.
const FLASK_FACTORY: &str = r#"
from flask import Flask

def create_app():
    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return "own pong"

    return app
"#;

/// A whole `express()` app (not a router) with its own `/ping` and its own 404.
const EXPRESS_APP: &str = r#"
const express = require('express');
const app = express();
app.get('/ping', (req, res) => res.send('own pong'));
app.use((req, res) => res.status(404).send('own 404'));
module.exports = app;
"#;

/// The framework runtimes leave an app's own `/ping` alone, and take the other forms of app
/// their README row names: a Flask factory in another module, a whole Express app.
#[tokio::test]
async fn framework_apps_keep_their_own_ping() {
    let sandbox = Sandbox::new().await;
    let funkos = [
        (
            "own-flask",
            "name: own-flask\nruntime: flask\noptions: {app: \"web:create_app\"}\n",
            ("web.py", FLASK_FACTORY),
            "<!doctype html>",
        ),
        (
            "own-express",
            "name: own-express\nruntime: express\n",
            ("app.js", EXPRESS_APP),
            "own 404",
        ),
    ];
    for (name, spec, code, not_found) in funkos {
        let dir = common::write_funko(sandbox.tmp.path(), name, &[("funko.yml", spec), code]);
        sandbox.faaso(&["build", arg(&dir)]).success();
        let image = sandbox.image_of(name).await;
        let instance = sandbox.run(&image, &dir, &[]).await;
        let ping = http_get(instance.ip, "/ping").unwrap();
        assert_eq!(ping, (200, "own pong".to_owned()), "{name}");
        let (status, body) = http_get(instance.ip, "/nowhere").unwrap();
        assert_eq!(status, 404, "{name}: {body}");
        assert!(body.starts_with(not_found), "{name}: {body}");
        sandbox.assert_stops_on_sigterm(&instance).await;
    }
}

#[tokio::test]
async fn building_unchanged_code_again_reuses_the_image() {
    let sandbox = Sandbox::new().await;
    let dir = sandbox.example("hello-python");
    let started = Instant::now();
    sandbox.faaso(&["build", arg(&dir)]).success();
    let build = started.elapsed();
    let image = sandbox.image_of("hello-python").await;
    let id = sandbox.docker.inspect_image(&image).await.unwrap().id;

    // Same content, newer mtime: still the same image, and no build runs.
    std::fs::write(
        dir.join("handler.py"),
        std::fs::read(dir.join("handler.py")).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let second = sandbox.faaso(&["build", arg(&dir)]).success();
    let reuse = started.elapsed();
    assert!(
        second.stderr.contains(&format!("{image} is up to date")),
        "{second}"
    );
    assert!(
        !second.stderr.contains("Step "),
        "nothing may be built\n{second}"
    );
    assert_eq!(sandbox.images_of("hello-python").await, vec![image.clone()]);
    assert_eq!(sandbox.docker.inspect_image(&image).await.unwrap().id, id);
    // A timing, not an assertion (the machine is shared): shown with --nocapture.
    eprintln!(
        "build {build:.1?}, unchanged rebuild {reuse:.1?} ({:.0}x faster)",
        build.as_secs_f64() / reuse.as_secs_f64()
    );

    // Changed code: a new tag, and the new image answers with the new code.
    let handler = "def handle(request):\n    return 'changed\\n'\n";
    std::fs::write(dir.join("handler.py"), handler).unwrap();
    sandbox.faaso(&["build", arg(&dir)]).success();
    let tags = sandbox.images_of("hello-python").await;
    assert_eq!(tags.len(), 2, "{tags:?}");
    let new_image = tags.into_iter().find(|t| *t != image).unwrap();
    let instance = sandbox.run(&new_image, &dir, &[]).await;
    assert_eq!(
        http_get(instance.ip, "/").unwrap(),
        (200, "changed\n".to_owned())
    );
}

#[tokio::test]
async fn a_failed_build_exits_1_with_the_builders_error_and_leaves_no_image() {
    let sandbox = Sandbox::new().await;
    let marker = format!("{}-marker", sandbox.id);
    // Two steps complete (their images are the build cache) before the third fails.
    let dockerfile = format!(
        "FROM faaso-base/python:bookworm\nENV MARKER={marker}\nWORKDIR /{marker}\nRUN echo {marker} && false\n"
    );
    let dir = common::write_funko(
        sandbox.tmp.path(),
        "broken",
        &[("funko.yml", "name: broken\n"), ("Dockerfile", &dockerfile)],
    );
    let run = sandbox.faaso(&["build", arg(&dir)]).failure();
    assert!(run.stderr.contains("broken"), "the funko is named\n{run}");
    assert!(
        run.stderr.contains("returned a non-zero code"),
        "the builder's error\n{run}"
    );
    assert!(sandbox.images_of("broken").await.is_empty());
    let reference = format!("{}-broken", sandbox.id);
    let filters = HashMap::from([("reference", vec![reference.as_str()])]);
    let options = ListImagesOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let images = sandbox.docker.list_images(Some(options)).await.unwrap();
    assert!(images.is_empty(), "{images:?}");
    // Nor the images of the steps that completed.
    let output = format!("{}{}", run.stdout, run.stderr);
    let steps: Vec<&str> = output
        .lines()
        .filter_map(|line| line.split_once("---> ").map(|(_, id)| id.trim()))
        .filter(|id| id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert!(steps.len() >= 2, "the completed steps are shown\n{run}");
    for step in steps.iter().skip(1) {
        assert!(
            sandbox.docker.inspect_image(step).await.is_err(),
            "step image {step} left behind\n{run}"
        );
    }
    // The classic builder's intermediate container must not be left behind either.
    let all = ListContainersOptionsBuilder::new().all(true).build();
    let containers = sandbox.docker.list_containers(Some(all)).await.unwrap();
    let stray = containers
        .iter()
        .filter(|c| {
            c.command
                .as_deref()
                .is_some_and(|cmd| cmd.contains(&marker))
        })
        .count();
    assert_eq!(stray, 0, "build containers left behind");
}

#[tokio::test]
async fn a_sandbox_removes_what_it_created() {
    let sandbox = Sandbox::new().await;
    let dir = sandbox.example("hello-node");
    sandbox.faaso(&["build", arg(&dir)]).success();
    let image = sandbox.image_of("hello-node").await;
    sandbox.run(&image, &dir, &[]).await;
    let (docker, id, network) = (
        sandbox.docker.clone(),
        sandbox.id.clone(),
        sandbox.network.clone(),
    );
    drop(sandbox);
    assert!(
        docker.inspect_image(&image).await.is_err(),
        "{image} is left"
    );
    assert!(
        docker.inspect_network(&network, None).await.is_err(),
        "{network} is left"
    );
    let name = format!("{id}-hello-node");
    assert!(
        docker.inspect_container(&name, None).await.is_err(),
        "{name} is left"
    );
}

/// The funko containers of `name` in this sandbox, running or not.
async fn containers_of(sandbox: &Sandbox, name: &str) -> usize {
    let label = format!("{}.funko={name}", sandbox.id);
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = sandbox.docker.list_containers(Some(options)).await.unwrap();
    containers.len()
}

#[tokio::test]
async fn scale_up_and_down_converge_the_funko_asked_about_and_no_other() {
    let sandbox = Sandbox::new().await;
    let funkos = sandbox.tmp.path().join("funkos");
    let handler = "def handle(request):\n    return 'hi\\n'\n";
    for (name, scale) in [("one", 0), ("other", 1)] {
        let spec = format!("name: {name}\nruntime: python\nscale: {scale}\n");
        common::write_funko(
            &funkos,
            name,
            &[("funko.yml", &spec), ("handler.py", handler)],
        );
    }
    // `other` wants an instance too, but the user asked about `one` only.
    let scaled = sandbox.faaso(&["scale", "one", "1"]).success();
    assert!(scaled.stdout.contains("one: scale 0 → 1"), "{scaled}");
    assert_eq!(containers_of(&sandbox, "one").await, 1, "{scaled}");
    assert_eq!(containers_of(&sandbox, "other").await, 0, "{scaled}");
    let built = sandbox.images_of("other").await;
    assert!(built.is_empty(), "`other` was built: {built:?}\n{scaled}");
    assert!(!scaled.stderr.contains("other"), "{scaled}");

    // Without a number, the scale is printed and nothing changes.
    let shown = sandbox.faaso(&["scale", "one"]).success();
    assert_eq!(shown.stdout, "one: scale 1\n", "{shown}");

    // `status <funko…>` shows those funkos only; an unknown one is an error.
    let status = sandbox.faaso(&["status", "one"]).success();
    let rows: Vec<&str> = status.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{status}");
    let columns: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(&columns[..4], ["one", "1", "1", "0"], "{status}");
    let unknown = sandbox.faaso(&["status", "one", "nobody"]).failure();
    assert!(unknown.stderr.contains("no funko `nobody`"), "{unknown}");

    // purge (`-l` is `--local`): instances and images go, the folder stays with scale 0.
    assert_eq!(sandbox.images_of("one").await.len(), 1);
    let purged = sandbox.faaso(&["-l", "purge", "one"]).success();
    assert!(purged.stdout.contains("one: scale 1 → 0"), "{purged}");
    assert!(
        purged.stdout.contains("one: purged (1 images removed)"),
        "{purged}"
    );
    assert_eq!(containers_of(&sandbox, "one").await, 0, "{purged}");
    assert!(sandbox.images_of("one").await.is_empty(), "{purged}");
    let spec = std::fs::read_to_string(funkos.join("one/funko.yml")).unwrap();
    assert!(spec.contains("scale: 0"), "{spec}");
    assert_eq!(containers_of(&sandbox, "other").await, 0, "{purged}");
}
