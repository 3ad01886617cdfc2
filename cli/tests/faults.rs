//! Faults under load: a real `faaso server`, the real engine, steady traffic through the proxy
//! on 127.0.0.1 while instances are SIGKILLed, the engine connection is cut, a funko crash-loops,
//! and new versions fail to build or never become ready.
//!
//! Each test asserts what a user would notice (replaced, converged, no failed request where
//! none may fail) and prints its figures (`cargo test --test faults -- --nocapture`) for
//! docs/RELIABILITY.md. Timings are printed, never asserted: the machine is shared.
//! `FAASO_SOAK=1` runs longer versions (more kills, longer cuts, longer load).

mod common;
#[path = "../../reconciler/tests/common/relay.rs"]
mod relay;
mod served;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use served::{Served, http};

/// The request rate kept on a funko during every fault.
const RATE: u32 = 50;

/// Whether the long soak variants run.
fn soak() -> bool {
    std::env::var("FAASO_SOAK").is_ok_and(|v| v == "1")
}

/// The environment every server here runs with: no access log (the load would flood it).
const QUIET: (&str, &str) = ("FAASO_NO_ACCESS_LOG", "true");

/// Writes a Python funko answering `body` on every path, with extra funko.yml `yaml`.
fn python_funko(funkos: &Path, name: &str, body: &str, scale: u32, yaml: &str) {
    let handler = format!("def handle(request):\n    return {body:?}\n");
    write_funko(funkos, name, &handler, &format!("scale: {scale}\n{yaml}"));
}

/// Writes `handler.py` and then `funko.yml` (each via a rename, as `git pull` would).
fn write_funko(funkos: &Path, name: &str, handler: &str, yaml: &str) {
    let dir = funkos.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_atomically(&dir.join("handler.py"), handler);
    write_atomically(
        &dir.join("funko.yml"),
        &format!("name: {name}\nruntime: python\n{yaml}"),
    );
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
struct Tally {
    /// Requests sent.
    sent: u32,
    /// Answers by outcome (`200 <body>`, `502 <body>`, `error <reason>`).
    outcomes: BTreeMap<String, u32>,
    /// Successful answers per second of the run.
    ok_per_second: BTreeMap<u64, u32>,
    /// Seconds since the start at which requests failed.
    failed_at: Vec<f64>,
}

impl Tally {
    fn failed(&self) -> u32 {
        self.failed_at.len() as u32
    }
}

/// Sends [`RATE`] GETs per second to one URL until finished, tallying every answer.
struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Load {
    fn start(url: String) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = tokio_util::sync::CancellationToken::new();
        let started = Instant::now();
        let task = {
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(async move {
                let client = http();
                let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
                let mut inflight = tokio::task::JoinSet::new();
                while !stop.is_cancelled() {
                    tick.tick().await;
                    tally.lock().unwrap().sent += 1;
                    let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
                    inflight.spawn(async move {
                        let (ok, outcome) = match client.get(&url).send().await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let body = r.text().await.unwrap_or_default();
                                (status == 200, format!("{status} {body}"))
                            }
                            Err(e) => (false, format!("error {e}")),
                        };
                        let at = started.elapsed();
                        let mut tally = tally.lock().unwrap();
                        *tally.outcomes.entry(outcome).or_default() += 1;
                        if ok {
                            *tally.ok_per_second.entry(at.as_secs()).or_default() += 1;
                        } else {
                            tally.failed_at.push(at.as_secs_f64());
                        }
                    });
                    while inflight.try_join_next().is_some() {}
                }
                while inflight.join_next().await.is_some() {}
            })
        };
        Self {
            tally,
            stop,
            task,
            started,
        }
    }

    /// Seconds since the load started.
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn finish(self) -> Tally {
        self.stop.cancel();
        self.task.await.unwrap();
        Arc::try_unwrap(self.tally).unwrap().into_inner().unwrap()
    }
}

/// The running instance ids of `funko`.
async fn instance_ids(server: &Served, funko: &str) -> BTreeSet<String> {
    server
        .running(funko)
        .await
        .into_iter()
        .filter(|c| c.state.as_ref().is_some_and(|s| s.to_string() == "running"))
        .filter_map(|c| c.id)
        .collect()
}

/// How many instances of `funko` the proxy routes to now (`GET /metrics`).
async fn routed(server: &Served, funko: &str) -> u32 {
    let Ok(answer) = http().get(server.admin_url("/metrics")).send().await else {
        return 0;
    };
    let text = answer.text().await.unwrap_or_default();
    let prefix = format!("faaso_proxy_ready_instances{{funko=\"{funko}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// How often the proxy retried a request on another instance, from the server's log.
fn retries(server: &Served) -> usize {
    std::fs::read_to_string(server.tmp.path().join("server.log"))
        .unwrap_or_default()
        .matches("Retrying on another instance")
        .count()
}

/// Waits until `funko` runs `scale` instances, none of them in `gone`, all routed; returns
/// how long that took from `since`.
async fn replaced(
    server: &Served,
    funko: &str,
    scale: usize,
    gone: &BTreeSet<String>,
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        let ids = instance_ids(server, funko).await;
        if ids.len() == scale
            && ids.is_disjoint(gone)
            && routed(server, funko).await == scale as u32
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "{funko} was not back to {scale} routed instances within {limit:?}: running {ids:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the board shows `funko` converged at `scale` (the whole pass view).
async fn converged(server: &Served, funko: &str, scale: u32, limit: Duration) {
    server
        .eventually(limit, &format!("{funko} converged at {scale}"), || async {
            server
                .status(funko)
                .await
                .is_some_and(|s| s["ready"] == scale && s["desired"] == scale && s["outdated"] == 0)
        })
        .await;
}

async fn docker_kill(server: &Served, id: &str) {
    server
        .docker
        .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
        .await
        .unwrap();
}

/// Keeps the server's log beside the figures when a recovery took more than 5 s, so the
/// slow case can be read after the test's tempdir is gone.
fn keep_log_if_slow(server: &Served, fault: &str, times: &[Duration]) {
    if times.iter().any(|t| *t > Duration::from_secs(5)) {
        let kept = std::env::temp_dir().join(format!("faaso-faults-{}.log", server.id));
        let _ = std::fs::copy(server.tmp.path().join("server.log"), &kept);
        println!(
            "FIGURES {fault}: a recovery took over 5 s; server log kept at {}",
            kept.display()
        );
    }
}

fn report(fault: &str, tally: &Tally, retried: usize, extra: &str) {
    println!(
        "FIGURES {fault}: load {RATE} req/s, sent {}, failed {}, retried by the proxy {retried}; {extra}",
        tally.sent,
        tally.failed()
    );
    if tally.failed() > 0 {
        println!(
            "FIGURES {fault}: failures at {:?} s: {:?}",
            tally.failed_at, tally.outcomes
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_instances_are_replaced_under_load() {
    let server = Served::start_with_env(&[], &[QUIET]).await;
    python_funko(&server.funkos(), "victim", "alive", 2, "");
    converged(&server, "victim", 2, Duration::from_secs(180)).await;
    let load = Load::start(server.url("/funko/victim/"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let kills = std::env::var("FAASO_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if soak() { 20 } else { 3 });
    let mut times = Vec::new();
    for _ in 0..kills {
        let before = instance_ids(&server, "victim").await;
        let victim = before.iter().next().unwrap().clone();
        let at = Instant::now();
        docker_kill(&server, &victim).await;
        let gone = BTreeSet::from([victim]);
        let took = replaced(&server, "victim", 2, &gone, at, Duration::from_secs(60)).await;
        times.push(took);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let tally = load.finish().await;
    let retried = retries(&server);
    keep_log_if_slow(&server, "sigkill", &times);
    report(
        "sigkill",
        &tally,
        retried,
        &format!("{kills} kills, one instance of two each; kill → replacement routed: {times:?}"),
    );
    assert!(
        tally.outcomes.contains_key("200 alive"),
        "the load was served: {:?}",
        tally.outcomes
    );
    // The surviving instance carries the load: at most the requests in flight on the killed
    // one when it died may fail (nothing retries a request that was already sent).
    assert!(
        tally.failed() <= 2 * kills,
        "more failures than in-flight requests at the kills: {:?}",
        tally.outcomes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_connection_is_cut_and_restored() {
    let sock = tempfile::tempdir().unwrap();
    let relay = relay::Relay::start(&sock.path().join("docker.sock"));
    let docker_host = format!("unix://{}", relay.path().display());
    let server = Served::start_with_env(&[], &[QUIET, ("DOCKER_HOST", &docker_host)]).await;
    python_funko(&server.funkos(), "survivor", "alive", 2, "");
    converged(&server, "survivor", 2, Duration::from_secs(180)).await;
    let load = Load::start(server.url("/funko/survivor/"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cut_for = Duration::from_secs(if soak() { 60 } else { 5 });
    let before = instance_ids(&server, "survivor").await;
    let victim = before.iter().next().unwrap().clone();
    let cut_at = load.now();
    relay.cut();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The test's own engine connection does not go through the relay.
    docker_kill(&server, &victim).await;
    let killed_at = load.now();
    tokio::time::sleep(cut_for).await;
    let restored = Instant::now();
    let restored_at = load.now();
    relay.restore();
    let gone = BTreeSet::from([victim]);
    let took = replaced(
        &server,
        "survivor",
        2,
        &gone,
        restored,
        Duration::from_secs(120),
    )
    .await;
    converged(&server, "survivor", 2, Duration::from_secs(60)).await;
    let board_took = restored.elapsed();
    keep_log_if_slow(&server, "engine cut", &[took, board_took]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = load.finish().await;
    let retried = retries(&server);
    report(
        "engine cut",
        &tally,
        retried,
        &format!(
            "cut at {cut_at:.1} s for {cut_for:?}, one instance killed at {killed_at:.1} s; \
             restore → replacement routed {took:?}, → board converged {board_took:?}"
        ),
    );
    // Serving went on through the cut: every whole second of it had successful answers.
    let quiet: Vec<u64> = (cut_at.ceil() as u64..restored_at.floor() as u64)
        .filter(|s| !tally.ok_per_second.contains_key(s))
        .collect();
    assert!(
        quiet.is_empty(),
        "no successful answer during seconds {quiet:?} of the cut: {:?}",
        tally.outcomes
    );
    assert!(
        tally.failed() <= 2,
        "the living instance should have served everything: {:?}",
        tally.outcomes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_funko_leaves_the_others_alone() {
    let server = Served::start_with_env(&[], &[QUIET]).await;
    python_funko(&server.funkos(), "healthy", "fine", 2, "");
    converged(&server, "healthy", 2, Duration::from_secs(180)).await;
    let load = Load::start(server.url("/funko/healthy/"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    write_funko(
        &server.funkos(),
        "crashy",
        "import sys\nsys.exit(3)\n",
        "scale: 2\nhealthcheck: {interval: 500ms, start_period: 1s, retries: 3}\n",
    );
    server
        .eventually(
            Duration::from_secs(180),
            "crashy to report its failure",
            || async {
                server
                    .status("crashy")
                    .await
                    .is_some_and(|s| s["error"].is_string())
            },
        )
        .await;
    let reported = started.elapsed();
    // Watch it for a while: a crash loop must not turn into a restart storm.
    let watch_for = Duration::from_secs(if soak() { 120 } else { 10 });
    let mut seen = BTreeSet::new();
    let watch_start = Instant::now();
    while watch_start.elapsed() < watch_for {
        for c in server.running("crashy").await {
            seen.extend(c.id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = server.status("crashy").await.unwrap();
    let healthy = server.status("healthy").await.unwrap();
    let tally = load.finish().await;
    report(
        "crash loop",
        &tally,
        retries(&server),
        &format!(
            "crashy reported after {reported:?}: {}; crashy containers seen running in the \
             {watch_for:?} after: {}",
            status["error"],
            seen.len()
        ),
    );
    assert_eq!(
        tally.failed(),
        0,
        "the healthy funko failed requests: {:?}",
        tally.outcomes
    );
    assert!(tally.sent > 0 && tally.outcomes.contains_key("200 fine"));
    assert!(
        healthy["error"].is_null() && healthy["ready"] == 2,
        "{healthy}"
    );
    let answer = http()
        .get(server.url("/funko/crashy/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        503,
        "a funko with no ready instance answers 503"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_and_a_never_ready_version_leave_the_old_one_serving() {
    let server = Served::start_with_env(&[], &[QUIET]).await;
    python_funko(&server.funkos(), "keeper", "v1", 2, "");
    converged(&server, "keeper", 2, Duration::from_secs(180)).await;
    let v1 = instance_ids(&server, "keeper").await;
    let load = Load::start(server.url("/funko/keeper/"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // v2: pip cannot install a requirement that no wheel provides, so the build fails.
    let dir = server.funkos().join("keeper");
    std::fs::create_dir_all(dir.join("wheels")).unwrap();
    std::fs::write(dir.join("wheels/README"), "no wheels here\n").unwrap();
    write_atomically(
        &dir.join("requirements.txt"),
        "faaso-no-such-package==1.0\n",
    );
    let started = Instant::now();
    python_funko(&server.funkos(), "keeper", "v2", 2, "");
    server
        .eventually(Duration::from_secs(180), "the build failure", || async {
            server
                .status("keeper")
                .await
                .is_some_and(|s| s["error"].is_string())
        })
        .await;
    let build_reported = started.elapsed();
    let build_error = server.status("keeper").await.unwrap()["error"].clone();
    let cli = server.cli(
        &["status", "--server", &server.admin_base()],
        &[("FAASO_TOKEN", &server.token)],
        "",
    );

    // v3: builds, but its healthcheck path answers 503, so it never becomes ready.
    std::fs::remove_file(dir.join("requirements.txt")).unwrap();
    std::fs::remove_dir_all(dir.join("wheels")).unwrap();
    let started = Instant::now();
    write_funko(
        &server.funkos(),
        "keeper",
        "def handle(request):\n    return 503, \"not yet\"\n",
        "scale: 2\nhealthcheck: {path: /health, interval: 300ms, timeout: 300ms, start_period: 1s, retries: 3}\n",
    );
    server
        .eventually(
            Duration::from_secs(180),
            "the never-ready version's failure",
            || async {
                server
                    .status("keeper")
                    .await
                    .is_some_and(|s| s["error"].is_string() && s["error"] != build_error)
            },
        )
        .await;
    let ready_reported = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = server.status("keeper").await.unwrap();
    let tally = load.finish().await;
    report(
        "bad versions",
        &tally,
        retries(&server),
        &format!(
            "build failure reported after {build_reported:?}: {build_error}; never-ready \
             reported after {ready_reported:?}: {}",
            status["error"]
        ),
    );
    println!(
        "FIGURES bad versions: faaso status said (exit {:?}):\n{}{}",
        cli.code, cli.stdout, cli.stderr
    );
    assert_eq!(
        tally.failed(),
        0,
        "the old version must serve throughout: {:?}",
        tally.outcomes
    );
    assert!(
        tally.outcomes.keys().all(|k| k == "200 v1"),
        "only v1 answered: {:?}",
        tally.outcomes
    );
    assert_eq!(
        instance_ids(&server, "keeper").await,
        v1,
        "the v1 instances still run"
    );
    assert!(
        cli.stdout.contains("keeper") || cli.stderr.contains("keeper"),
        "faaso status names the funko\n{cli}"
    );
}
