//! The Swarm backend against a real three-node Swarm: the lab of `scripts/swarm-lab up`.
//! Ignored in a plain `cargo test` (they need the lab, and root to make it); scripts/test brings
//! the lab up, runs them with `--ignored`, and takes it down. Every test works in a namespace of
//! its own (prefix, labels, overlay network), so they run in parallel, and removes what it made.
//!
//! Requests come from inside the cluster, a global job (one task on every node) on the funkos'
//! attachable overlay network, so "from every node" is checked where the tasks are scheduled;
//! and from the host through port 8888 of the nodes, where faaso's proxy runs as a global
//! service.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::process::{Running, free_port};
use common::{Run, arg, faaso_in, repo_root};

/// The lab's settings (`scripts/swarm-lab env`), as `(name, value)` pairs.
fn lab_env() -> Vec<(String, String)> {
    let out = Command::new(repo_root().join("scripts/swarm-lab"))
        .arg("env")
        .output()
        .expect("scripts/swarm-lab runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(env.iter().any(|(k, _)| k == "DOCKER_HOST"), "{text}");
    env
}

/// One test's corner of the lab: its own names, funkos folder and state.
struct Corner {
    prefix: String,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Corner {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "sw{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut env = lab_env();
        env.push(("FAASO_PREFIX".into(), prefix.clone()));
        env.push(("FAASO_LABELS".into(), prefix.clone()));
        env.push(("FAASO_NETWORK".into(), format!("{prefix}-net")));
        let corner = Self {
            prefix,
            env,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(corner.funkos()).unwrap();
        corner
    }

    fn funkos(&self) -> std::path::PathBuf {
        self.dir.path().join("funkos")
    }

    fn faaso(&self, args: &[&str]) -> Run {
        let mut args = args.to_vec();
        let funkos = self.funkos();
        args.push(arg(&funkos));
        self.faaso_with(&args, &[])
    }

    /// `faaso args` in this corner, with `more` environment and no funkos folder appended.
    fn faaso_with(&self, args: &[&str], more: &[(&str, &str)]) -> Run {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(more);
        faaso_in(self.dir.path(), args, &env)
    }

    /// The docker CLI against the lab's manager.
    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(args)
            .envs(self.env.iter().filter(|(k, _)| k == "DOCKER_HOST").cloned())
            .output()
            .expect("docker runs");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn lines(&self, args: &[&str]) -> Vec<String> {
        let out = self.docker(args);
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn service(&self, funko: &str) -> String {
        format!("{}-{funko}", self.prefix)
    }

    fn copy_example(&self, name: &str) {
        let from = repo_root().join("funkos").join(name);
        let to = self.funkos().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    fn services(&self) -> Vec<String> {
        let filter = format!("label={}.managed=true", self.prefix);
        self.lines(&["service", "ls", "-q", "--filter", &filter])
    }

    fn secrets(&self) -> Vec<String> {
        let filter = format!("label={}.managed=true", self.prefix);
        self.lines(&["secret", "ls", "--format", "{{.Name}}", "--filter", &filter])
    }

    /// The tags the lab's registry holds for `funko`'s image.
    fn registry_tags(&self, funko: &str) -> Vec<String> {
        let registry = self
            .env
            .iter()
            .find(|(k, _)| k == "FAASO_REGISTRY")
            .map(|(_, v)| v.clone())
            .expect("the lab names its registry");
        let url = format!("http://{registry}/v2/{}/tags/list", self.service(funko));
        let out = Command::new("curl")
            .args(["-s", &url])
            .output()
            .expect("curl runs");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| Some(t.as_str()?.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The image a service runs (pinned by digest).
    fn image(&self, funko: &str) -> String {
        let format = "{{.Spec.TaskTemplate.ContainerSpec.Image}}";
        let service = self.service(funko);
        self.docker(&["service", "inspect", "--format", format, &service])
            .trim()
            .to_owned()
    }

    /// The ids of the service's tasks meant to run.
    fn tasks(&self, funko: &str) -> Vec<String> {
        let service = self.service(funko);
        let args = [
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            &service,
        ];
        self.lines(&args)
    }

    /// Runs a Python script as a job on the funkos' network, one task on every node (`global`)
    /// or one (`replicated`), with `image`'s interpreter; true when every task exited 0.
    fn job(&self, mode: &str, image: &str, script: &str, patience: Duration) -> bool {
        self.job_with(mode, image, script, &[], patience)
    }

    /// [`Self::job`] with more `docker service create` options (a placement constraint).
    fn job_with(
        &self,
        mode: &str,
        image: &str,
        script: &str,
        options: &[&str],
        patience: Duration,
    ) -> bool {
        let name = format!("{}-job{}", self.prefix, JOBS.fetch_add(1, Ordering::SeqCst));
        let network = format!("{}-net", self.prefix);
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--name",
            &name,
            "--mode",
            mode,
            "--network",
            &network,
            "--restart-condition",
            "none",
            "--entrypoint",
            "python3",
        ];
        args.extend_from_slice(options);
        args.extend_from_slice(&[image, "-c", script]);
        self.docker(&args);
        let deadline = Instant::now() + patience;
        let outcome = loop {
            let states = self.lines(&["service", "ps", "--format", "{{.CurrentState}}", &name]);
            let done = states.iter().filter(|s| s.starts_with("Complete")).count();
            let failed = states.iter().any(|s| s.starts_with("Failed"));
            let expected = if mode == "global-job" { 3 } else { 1 };
            if failed || done == expected || Instant::now() > deadline {
                break !failed && done == expected;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        if !outcome {
            eprintln!("{}", self.docker(&["service", "ps", "--no-trunc", &name]));
            eprintln!("{}", self.docker(&["service", "logs", &name]));
        }
        self.docker(&["service", "rm", &name]);
        outcome
    }

    /// Every name in `funkos` answers 200 at `/` from every node, by its name and at each of
    /// its tasks' addresses. A node that had no task on the network joins it as the job starts,
    /// and learns the others' endpoints by gossip a moment later: connecting is retried for 10 s.
    fn answers_everywhere(&self, image: &str, funkos: &[&str]) -> bool {
        let script = format!(
            "import socket, time, urllib.request as r\n\
             def retried(what, *args):\n\
             \x20   for attempt in range(20):\n\
             \x20       try:\n\
             \x20           return what(*args)\n\
             \x20       except OSError as e:\n\
             \x20           print('retrying', args, e)\n\
             \x20           time.sleep(0.5)\n\
             \x20   return what(*args)\n\
             def get(host):\n\
             \x20   return r.urlopen('http://%s:3000/' % host, timeout=5).status\n\
             for f in {funkos:?}:\n\
             \x20   ips = retried(socket.gethostbyname_ex, 'tasks.{prefix}-' + f)[2]\n\
             \x20   for host in [f] + ips:\n\
             \x20       status = retried(get, host)\n\
             \x20       assert status == 200, (host, status)\n\
             \x20       print(f, host, status)\n",
            prefix = self.prefix
        );
        self.job("global-job", image, &script, Duration::from_secs(90))
    }
}

impl Drop for Corner {
    /// Removes the funkos (faaso removes their services and secrets), then the network.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.funkos());
        let _ = std::fs::create_dir_all(self.funkos());
        let _ = self.faaso(&["reconcile", "--once"]);
        let proxy = format!("{}-proxy", self.prefix);
        let _ = Command::new("docker")
            .args(["service", "rm", &proxy])
            .envs(self.env.iter().filter(|(k, _)| k == "DOCKER_HOST").cloned())
            .output();
        let network = format!("{}-net", self.prefix);
        let _ = Command::new("docker")
            .args(["network", "rm", &network])
            .envs(self.env.iter().filter(|(k, _)| k == "DOCKER_HOST").cloned())
            .output();
    }
}

static JOBS: AtomicU32 = AtomicU32::new(0);

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
#[ignore = "needs the three-node lab: scripts/swarm-lab up (scripts/test runs it)"]
fn example_funkos_answer_200_from_every_node() {
    let corner = Corner::new();
    corner.copy_example("hello-python");
    corner.copy_example("hello-node");
    let plan = corner.faaso(&["plan", "--exit-code"]);
    assert_eq!(plan.code, Some(2), "a plan with work exits 2\n{plan}");
    corner.faaso(&["reconcile", "--once"]).success();
    let status = corner.faaso(&["status", "--json"]).success();
    let statuses: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for s in statuses.as_array().unwrap() {
        assert_eq!(s["ready"], 1, "{status}");
    }
    assert!(
        corner.image("hello-python").contains("@sha256:"),
        "deployed pinned by digest"
    );
    let image = corner.image("hello-python");
    assert!(corner.answers_everywhere(&image, &["hello-python", "hello-node"]));
    let again = corner.faaso(&["plan", "--exit-code"]);
    assert_eq!(
        again.code,
        Some(0),
        "converged means nothing to do\n{again}"
    );

    // faaso's proxy as a global service: port 8888 of every node routes every funko.
    corner.faaso_with(&["proxy", "up"], &[]).success();
    for node in lab_nodes() {
        for funko in ["hello-python", "hello-node"] {
            let status = http_status(&node, &format!("/funko/{funko}/"));
            assert_eq!(status, 200, "{funko} through {node}:8888");
        }
        assert_eq!(
            http_status(&node, "/funko/nobody/"),
            404,
            "an unknown funko, as on one host"
        );
    }
}

/// The lab's node addresses (`scripts/swarm-lab nodes`).
fn lab_nodes() -> Vec<String> {
    let out = Command::new(repo_root().join("scripts/swarm-lab"))
        .arg("nodes")
        .output()
        .expect("scripts/swarm-lab runs");
    let nodes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(nodes.len(), 3);
    nodes
}

/// The status of `GET <path>` on port 8888 of `host`.
fn http_status(host: &str, path: &str) -> u16 {
    http(host, 8888, &format!("GET {path}"), "").0
}

/// The status and whole answer of `<request line> HTTP/1.1` to `host:port`, with `headers`
/// (each ending in CRLF) added.
fn http(host: &str, port: u16, request: &str, headers: &str) -> (u16, String) {
    try_http(host, port, request, headers, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no HTTP answer from {host}:{port} to {request}"))
}

/// [`http`], or `None` when no answer came within `patience`.
fn try_http(
    host: &str,
    port: u16,
    request: &str,
    headers: &str,
    patience: Duration,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::new(host.parse().ok()?, port);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, patience).ok()?;
    stream.set_read_timeout(Some(patience)).ok()?;
    write!(
        stream,
        "{request} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    Some((status, answer))
}

#[test]
#[ignore = "needs the three-node lab: scripts/swarm-lab up (scripts/test runs it)"]
fn a_version_that_never_turns_healthy_rolls_back_with_no_failed_request() {
    let corner = Corner::new();
    corner.copy_example("hello-python");
    let spec = corner.funkos().join("hello-python/funko.yml");
    write(&spec, "name: hello-python\nruntime: python\nscale: 2\n");
    corner.faaso(&["reconcile", "--once"]).success();
    let image = corner.image("hello-python");
    let before = corner.tasks("hello-python");
    // Requests all along, as a client in the cluster sends them; any failure fails the job.
    let load = "import time, urllib.request as r\n\
                end = time.time() + 40\n\
                n = 0\n\
                while time.time() < end:\n\
                \x20   assert r.urlopen('http://hello-python:3000/', timeout=5).status == 200\n\
                \x20   n += 1\n\
                \x20   time.sleep(0.05)\n\
                print('requests', n)\n";
    let corner = std::sync::Arc::new(corner);
    let loader = {
        let corner = corner.clone();
        let image = image.clone();
        std::thread::spawn(move || {
            corner.job("replicated-job", &image, load, Duration::from_secs(120))
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    // The new version answers its healthcheck path with 500.
    write(
        &spec,
        "name: hello-python\nruntime: python\nscale: 2\n\
         healthcheck: {path: /healthz, interval: 1s, retries: 2, start_period: 1s}\n",
    );
    write(
        &corner.funkos().join("hello-python/handler.py"),
        "def handle(request):\n    if request.path == '/healthz':\n        \
         raise RuntimeError('this version is broken')\n    return 'hello\\n'\n",
    );
    let rolled = corner.faaso(&["reconcile", "--once"]).failure();
    assert!(rolled.stderr.contains("rolled"), "{rolled}");
    assert!(
        loader.join().unwrap(),
        "every request during the failed rollout succeeded"
    );
    assert_eq!(
        corner.image("hello-python"),
        image,
        "the previous version runs on"
    );
    let mut after = corner.tasks("hello-python");
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "the old tasks were never replaced");
}

#[test]
#[ignore = "needs the three-node lab: scripts/swarm-lab up (scripts/test runs it)"]
fn scale_secret_rotation_and_removal_leave_nothing_behind() {
    let corner = Corner::new();
    corner.copy_example("hello-python");
    let spec = corner.funkos().join("hello-python/funko.yml");
    write(
        &spec,
        "name: hello-python\nruntime: python\nsecrets: [token]\n",
    );
    let secret = corner.dir.path().join(".faaso/secrets/hello-python/token");
    write(&secret, "one");
    corner.faaso(&["reconcile", "--once"]).success();
    assert_eq!(corner.secrets().len(), 1);
    let first = corner.tasks("hello-python");

    corner.faaso(&["scale", "hello-python", "3"]).success();
    let scaled = corner.tasks("hello-python");
    assert_eq!(scaled.len(), 3);
    assert!(
        scaled.contains(&first[0]),
        "scaling up keeps the running task"
    );
    corner.faaso(&["scale", "hello-python", "1"]).success();
    assert_eq!(corner.tasks("hello-python").len(), 1);

    let old_secret = corner.secrets();
    write(&secret, "two");
    corner.faaso(&["reconcile", "--once"]).success();
    let rotated = corner.secrets();
    assert_eq!(rotated.len(), 1, "the old value's secret went: {rotated:?}");
    assert_ne!(rotated, old_secret, "a new value is a new secret");
    let image = corner.image("hello-python");
    assert!(corner.answers_everywhere(&image, &["hello-python"]));

    // Two code changes make three versions: the registry keeps the current and the previous.
    let handler = corner.funkos().join("hello-python/handler.py");
    for version in ["two", "three"] {
        write(
            &handler,
            &format!("def handle(request):\n    return 'version {version}\\n'\n"),
        );
        corner.faaso(&["reconcile", "--once"]).success();
    }
    let tags = corner.registry_tags("hello-python");
    assert_eq!(tags.len(), 2, "current and previous only: {tags:?}");
    let current = corner.image("hello-python");
    assert!(
        tags.iter().any(|t| current.contains(&format!(":{t}@"))),
        "the running version is kept: {current} in {tags:?}"
    );

    std::fs::remove_dir_all(corner.funkos().join("hello-python")).unwrap();
    corner.faaso(&["reconcile", "--once"]).success();
    assert!(corner.services().is_empty(), "the service went");
    assert!(corner.secrets().is_empty(), "its secrets went");
    let tags = corner.registry_tags("hello-python");
    assert!(tags.is_empty(), "its versions left the registry: {tags:?}");
    // Task containers by name: job containers from the funko's image inherit its labels. The
    // node's agent removes them a moment after their tasks leave the manager's list.
    let name = format!("name={}.", corner.service("hello-python"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = loop {
        let left = corner.lines(&["ps", "-aq", "--filter", &name]);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        left.is_empty(),
        "no task container is left on the manager: {left:?}"
    );
}

#[test]
#[ignore = "needs the three-node lab: scripts/swarm-lab up (scripts/test runs it)"]
fn a_code_change_rolls_out_under_load_with_no_failed_request() {
    let corner = Corner::new();
    corner.copy_example("hello-python");
    let spec = corner.funkos().join("hello-python/funko.yml");
    write(&spec, "name: hello-python\nruntime: python\nscale: 2\n");
    let handler = corner.funkos().join("hello-python/handler.py");
    write(
        &handler,
        "def handle(request):\n    return 'version one\\n'\n",
    );
    corner.faaso(&["reconcile", "--once"]).success();
    corner.faaso_with(&["proxy", "up"], &[]).success();
    // Through the proxy of the manager's node, as clients send them: ~20 requests a second.
    let manager = lab_nodes()[0].clone();
    assert!(
        eventually(Duration::from_secs(60), || {
            try_http(
                &manager,
                8888,
                "GET /funko/hello-python/",
                "",
                Duration::from_secs(5),
            )
            .is_some_and(|(status, _)| status == 200)
        }),
        "the proxy on the manager answers"
    );
    let load = Load::start(manager.clone(), "/funko/hello-python/");
    std::thread::sleep(Duration::from_secs(5));
    write(
        &handler,
        "def handle(request):\n    return 'version two\\n'\n",
    );
    let started = Instant::now();
    corner.faaso(&["reconcile", "--once"]).success();
    eprintln!("rollout of 2 tasks took {:?}", started.elapsed());
    // Long enough for the proxy to route to the new tasks only.
    std::thread::sleep(Duration::from_secs(5));
    let requests = load.stop();
    let failed: Vec<_> = requests.iter().filter(|r| r.status != Some(200)).collect();
    let versions: std::collections::BTreeSet<_> = ["version one", "version two"]
        .into_iter()
        .filter(|v| requests.iter().any(|r| r.body.contains(v)))
        .collect();
    eprintln!(
        "{} requests through {manager}:8888, versions {versions:?}",
        requests.len()
    );
    assert!(failed.is_empty(), "no request failed: {failed:?}");
    assert!(
        versions.contains("version one") && versions.contains("version two"),
        "both versions answered: {versions:?}"
    );
}

/// Cuts a lab node off (`scripts/swarm-lab cut`) and connects it again when dropped.
struct Cut(u32);

impl Cut {
    fn new(node: u32) -> Self {
        lab(&["cut", &node.to_string()]);
        Self(node)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        lab(&["heal", &self.0.to_string()]);
    }
}

fn lab(args: &[&str]) {
    let status = Command::new(repo_root().join("scripts/swarm-lab"))
        .args(args)
        .status()
        .expect("scripts/swarm-lab runs");
    assert!(status.success(), "scripts/swarm-lab {args:?}");
}

#[test]
#[ignore = "needs the three-node lab: scripts/swarm-lab up (scripts/test runs it)"]
fn a_node_cut_off_has_its_tasks_run_elsewhere_and_requests_go_on() {
    let corner = Corner::new();
    corner.copy_example("hello-python");
    let spec = corner.funkos().join("hello-python/funko.yml");
    write(&spec, "name: hello-python\nruntime: python\nscale: 3\n");
    corner.faaso(&["reconcile", "--once"]).success();
    corner.faaso_with(&["proxy", "up"], &[]).success();
    let service = corner.service("hello-python");
    let running = || {
        corner.lines(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
            &service,
        ])
    };
    let holding_task = |n: &u32| {
        let prefix = format!("faaso-lab-{n} Running");
        running().iter().any(|l| l.starts_with(&prefix))
    };
    // Through the proxy of the manager's node, which stays: ~20 requests a second, each on a
    // connection of its own, as clients send them.
    let manager = lab_nodes()[0].clone();
    let load = Load::start(manager.clone(), "/funko/hello-python/");
    std::thread::sleep(Duration::from_secs(5));
    // Two cuts: the second one after the first node is back, when the proxy has kept
    // connections to tasks that moved and to the new ones.
    let mut cuts = Vec::new();
    for round in 1..=2 {
        let victim = (2..=3).find(holding_task).expect("a worker holds a task");
        let cut = Cut::new(victim);
        let cut_at = Instant::now();
        let elsewhere = loop {
            let now = running();
            let moved = now.iter().filter(|l| l.contains("Running")).count() == 3
                && !now
                    .iter()
                    .any(|l| l.starts_with(&format!("faaso-lab-{victim}")));
            if moved || cut_at.elapsed() > Duration::from_secs(60) {
                break cut_at.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        eprintln!("cut {round}: node {victim}'s task ran elsewhere after {elsewhere:?}");
        assert!(
            elsewhere < Duration::from_secs(30),
            "rescheduled within 30 s"
        );
        std::thread::sleep(Duration::from_secs(3));
        drop(cut);
        cuts.push(cut_at);
        if round == 1 {
            let ready = || corner.lines(&["node", "ls", "--format", "{{.Status}}"]);
            let deadline = Instant::now() + Duration::from_secs(60);
            while ready().iter().any(|s| s != "Ready") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    let requests = load.stop();
    let failed: Vec<_> = requests.iter().filter(|r| r.status != Some(200)).collect();
    eprintln!(
        "{} requests through {manager}:8888, failed: {failed:?} (the cuts at {:?})",
        requests.len(),
        cuts.iter()
            .map(|c| c.duration_since(requests[0].sent))
            .collect::<Vec<_>>()
    );
    // Each failure is a request in flight at a cut, or sent within 2 s of one.
    for r in &failed {
        let explained = cuts.iter().any(|&cut_at| {
            let in_flight = r.sent < cut_at && r.answered >= cut_at;
            in_flight || (r.sent >= cut_at && r.sent < cut_at + Duration::from_secs(2))
        });
        assert!(
            explained,
            "a request neither in flight at a cut nor sent within 2 s of one failed: {r:?}"
        );
    }
    let after = |cut_at: Instant| {
        requests
            .iter()
            .any(|r| r.sent > cut_at + Duration::from_secs(2) && r.status == Some(200))
    };
    assert!(
        cuts.iter().all(|&c| after(c)),
        "requests went on after each cut"
    );
}

/// One request of [`Load`]: when it was sent and answered, its status (`None`: no answer) and
/// its answer's body.
#[derive(Debug)]
struct Sent {
    sent: Instant,
    answered: Instant,
    status: Option<u16>,
    body: String,
}

/// Requests at ~20 a second to port 8888 of a node, each on its own connection and thread,
/// so a hanging one does not hold the others back.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sender: std::thread::JoinHandle<Vec<std::thread::JoinHandle<Sent>>>,
}

impl Load {
    fn start(host: String, path: &'static str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let sender = std::thread::spawn(move || {
            let mut requests = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                let host = host.clone();
                requests.push(std::thread::spawn(move || {
                    let sent = Instant::now();
                    let request = format!("GET {path}");
                    let answer = try_http(&host, 8888, &request, "", Duration::from_secs(10));
                    let (status, body) = match answer {
                        Some((status, answer)) => {
                            let body = answer.split_once("\r\n\r\n").map(|(_, body)| body);
                            (Some(status), body.unwrap_or_default().to_owned())
                        }
                        None => (None, String::new()),
                    };
                    Sent {
                        sent,
                        answered: Instant::now(),
                        status,
                        body,
                    }
                }));
                std::thread::sleep(Duration::from_millis(50));
            }
            requests
        });
        Self { stop, sender }
    }

    /// Stops sending and waits for every answer.
    fn stop(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        let requests = self.sender.join().unwrap();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    }
}

/// `faaso server --backend swarm` of a test, on 127.0.0.1:`port`; stopped by pid when dropped.
struct Server {
    /// The process, stopped when this is dropped.
    _running: Running,
    port: u16,
    admin_port: u16,
}

impl Server {
    const TOKEN: &str = "swarm-server-test-token-0123456789";

    fn start(corner: &Corner) -> Self {
        let (port, admin_port) = (free_port(), free_port());
        let funkos = corner.funkos();
        let listen = format!("127.0.0.1:{port}");
        let admin_listen = format!("127.0.0.1:{admin_port}");
        let mut env: Vec<(&str, &str)> = corner
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("FAASO_TOKEN", Self::TOKEN));
        let running = Running::start(
            corner.dir.path(),
            &[
                "server",
                arg(&funkos),
                "--listen",
                &listen,
                "--admin-listen",
                &admin_listen,
            ],
            &env,
        );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server never listened\n{}",
                running.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            _running: running,
            port,
            admin_port,
        }
    }

    /// The admin listener's URL (what `faaso login` takes).
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// `<method> <path>` with the admin token, on the admin listener.
    fn admin(&self, request: &str) -> (u16, String) {
        let bearer = format!("Authorization: Bearer {}\r\n", Self::TOKEN);
        http("127.0.0.1", self.admin_port, request, &bearer)
    }
}

/// Retries `check` for up to `patience`; whether it came true.
fn eventually(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs the three-node lab: scripts/swarm-lab up (scripts/test runs it)"]
fn a_server_on_swarm_deploys_shows_logs_and_status_and_removes_a_funko() {
    let corner = Corner::new();
    let server = Server::start(&corner);
    // The client's own config folder: the login is kept there.
    let config = corner.dir.path().join("config");
    let client = [("XDG_CONFIG_HOME", arg(&config))];
    corner
        .faaso_with(&["login", &server.url(), "--token", Server::TOKEN], &client)
        .success();

    // The example prints nothing of its own; this copy says when its handler is loaded.
    let src = corner.dir.path().join("src/hello-python");
    std::fs::create_dir_all(&src).unwrap();
    let example = repo_root().join("funkos/hello-python");
    std::fs::copy(example.join("funko.yml"), src.join("funko.yml")).unwrap();
    let handler = std::fs::read_to_string(example.join("handler.py")).unwrap();
    let marker = "hello-python: handler loaded";
    let handler = format!("{handler}\nprint({marker:?}, flush=True)\n");
    write(&src.join("handler.py"), &handler);
    let deployed = corner.faaso_with(&["deploy", arg(&src)], &client).success();
    assert!(
        deployed.stdout.contains(
            "hello-python: serving at /funko/hello-python/ on port 8888 of every Swarm node"
        ),
        "{deployed}"
    );
    assert!(!corner.tasks("hello-python").is_empty(), "a task runs");
    let image = corner.image("hello-python");
    assert!(corner.answers_everywhere(&image, &["hello-python"]));
    let (status, answer) = http("127.0.0.1", server.port, "GET /funko/hello-python/", "");
    assert_eq!(status, 421, "the server routes no funko on Swarm: {answer}");
    assert!(answer.contains("8888"), "{answer}");
    // The admin answers on its own listener only, as on one engine.
    let bearer = format!("Authorization: Bearer {}\r\n", Server::TOKEN);
    let (status, _) = http("127.0.0.1", server.port, "GET /admin/funkos", &bearer);
    assert_eq!(status, 404, "the admin is not on the funko listener");

    // logs: through the server and from the manager here, each line by its task.
    let instance = format!("{}.1 | {marker}", corner.service("hello-python"));
    for (how, args) in [
        ("through the server", vec!["logs", "hello-python"]),
        ("locally", vec!["logs", "hello-python", "--local"]),
    ] {
        let mut last = None;
        let shown = eventually(Duration::from_secs(20), || {
            let run = corner.faaso_with(&args, &client);
            let found = run.code == Some(0) && run.stdout.contains(&instance);
            last = Some(run);
            found
        });
        assert!(shown, "{how}: no line {instance:?}\n{}", last.unwrap());
    }

    let status = corner.faaso_with(&["status"], &client).success();
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("hello-python "))
        .unwrap_or_else(|| panic!("no row for hello-python\n{status}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..3], ["hello-python", "1", "1"], "{status}");

    // Deleted through the admin API: the server removes its service.
    let (deleted, answer) = server.admin("DELETE /admin/funkos/hello-python");
    assert!((200..300).contains(&deleted), "{answer}");
    assert!(
        eventually(Duration::from_secs(60), || corner.services().is_empty()),
        "the service went: {:?}",
        corner.services()
    );
}
