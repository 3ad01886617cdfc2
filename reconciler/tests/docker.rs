//! The reconciler against the real Docker engine: converging, and each fault of the issue.

mod common;

use std::time::Duration;

use bollard::query_parameters::{CreateContainerOptionsBuilder, KillContainerOptionsBuilder};
use common::{Env, get};
use faaso_reconciler::{InstanceState, Quiet, Step, StepInfo, WatchTiming};

/// A healthcheck that gives up quickly, for funkos that are meant never to become ready.
const IMPATIENT: &str =
    "healthcheck: {start_period: 0s, interval: 1s, retries: 2, timeout: 500ms}\n";

#[tokio::test(flavor = "multi_thread")]
async fn converges_serves_and_then_has_nothing_to_do() {
    let env = Env::new().await;
    env.python_funko("alpha", "alpha v1", "scale: 2\nenv: {GREETING: hi}\n");
    env.python_funko("beta", "beta v1", "");
    let mut reconciler = env.reconciler().await;
    let report = reconciler.pass(&Quiet).await.unwrap();
    assert!(report.converged(), "{report:#?}");
    let alpha = env.running("alpha").await;
    assert_eq!(alpha.len(), 2);
    for instance in &alpha {
        assert_eq!(get(instance, "/").await, Some((200, "alpha v1".into())));
        assert_eq!(get(instance, "/ping").await.map(|r| r.0), Some(200));
    }
    let (_, _, steps) = reconciler.plan().await.unwrap();
    assert_eq!(steps, vec![], "a converged environment plans nothing");
    let again = reconciler.pass(&Quiet).await.unwrap();
    assert!(again.plan.is_empty() && again.converged());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_funko_is_reported_and_its_instances_left_alone() {
    let env = Env::new().await;
    let dir = env.python_funko("keep", "keep v1", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let before = env.running("keep").await;
    std::fs::write(
        dir.join("funko.yml"),
        "name: keep\nruntime: python\nscael: 2\n",
    )
    .unwrap();
    env.python_funko("other", "other v1", "");
    let report = reconciler.pass(&Quiet).await.unwrap();
    let keep = report.funkos.iter().find(|f| f.name == "keep").unwrap();
    let error = keep.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("funko.yml:3:1") && error.contains("did you mean `scale`"),
        "{error}"
    );
    assert_eq!(
        env.running("keep").await,
        before,
        "the invalid funko's instance must stay"
    );
    assert_eq!(
        env.running("other").await.len(),
        1,
        "a bad funko holds no other back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_keeps_the_old_version_serving_and_waits_for_a_change() {
    let env = Env::new().await;
    let dir = env.python_funko("svc", "svc v1", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let before = env.running("svc").await;
    // v2 cannot build: the funko now brings a Dockerfile whose RUN fails.
    common::write(
        &dir.join("Dockerfile"),
        "FROM faaso-base/python:bookworm\nRUN false\n",
    );
    std::fs::write(dir.join("funko.yml"), "name: svc\n").unwrap();
    let report = reconciler.pass(&Quiet).await.unwrap();
    assert!(!report.converged());
    let svc = report.funkos.iter().find(|f| f.name == "svc").unwrap();
    assert!(
        svc.error
            .as_deref()
            .unwrap_or_default()
            .contains("building image"),
        "{svc:?}"
    );
    let after = env.running("svc").await;
    assert_eq!(after, before, "the old instance keeps serving");
    assert_eq!(get(&after[0], "/").await, Some((200, "svc v1".into())));
    // The same content is not built again…
    let held = reconciler.pass(&Quiet).await.unwrap();
    assert!(
        held.plan.is_empty(),
        "failed content must wait for a change: {:?}",
        held.plan
    );
    // …until it changes.
    common::write(
        &dir.join("Dockerfile"),
        "FROM faaso-base/python:bookworm\nCOPY . /app\nUSER 10001:10001\nCMD [\"python3\", \"/app/serve.py\"]\n",
    );
    common::write(
        &dir.join("serve.py"),
        "import http.server as h, signal, sys\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n\
         class H(h.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'svc v3')\n\
         h.ThreadingHTTPServer(('', 3000), H).serve_forever()\n",
    );
    let fixed = reconciler.pass(&Quiet).await.unwrap();
    assert!(fixed.converged(), "{fixed:#?}");
    let now = env.running("svc").await;
    assert_eq!(get(&now[0], "/").await, Some((200, "svc v3".into())));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_never_becomes_ready_leaves_the_old_one_serving() {
    let env = Env::new().await;
    let dir = env.python_funko("slowpoke", "v1", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let before = env.running("slowpoke").await;
    std::fs::write(
        dir.join("funko.yml"),
        format!("name: slowpoke\nruntime: python\n{IMPATIENT}")
            .replace("healthcheck: {", "healthcheck: {path: /health, "),
    )
    .unwrap();
    std::fs::write(
        dir.join("handler.py"),
        "def handle(request):\n    return (503, 'not today')\n",
    )
    .unwrap();
    let report = reconciler.pass(&Quiet).await.unwrap();
    let status = report.funkos.iter().find(|f| f.name == "slowpoke").unwrap();
    assert!(
        status
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("never became ready"),
        "{status:?}"
    );
    assert_eq!(
        env.running("slowpoke").await,
        before,
        "old instance serves on"
    );
    let all = env.instances_of("slowpoke").await;
    assert_eq!(
        all.len(),
        1,
        "the instance that never became ready is removed: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_faaso_did_not_create_is_left_alone() {
    let env = Env::new().await;
    use faaso_reconciler::Containers;
    env.engine().await.ensure_network().await.unwrap();
    let name = format!("{}-x", env.namespace.prefix);
    let config = bollard::models::ContainerCreateBody {
        image: Some("faaso-base/python:bookworm".into()),
        cmd: Some(vec![
            "python3".into(),
            "-c".into(),
            "import time; time.sleep(600)".into(),
        ]),
        host_config: Some(bollard::models::HostConfig {
            network_mode: Some(env.namespace.network.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let created = env
        .docker
        .create_container(Some(options), config)
        .await
        .unwrap();
    env.docker.start_container(&created.id, None).await.unwrap();
    env.python_funko("x", "managed x", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    // Someone runs faaso's image by hand: the container inherits the image's labels, yet faaso
    // did not create it.
    let image = env.running("x").await[0].image.clone();
    let by_hand = bollard::models::ContainerCreateBody {
        image: Some(image),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&format!("by-hand-{}", env.namespace.prefix))
        .build();
    let by_hand = env
        .docker
        .create_container(Some(options), by_hand)
        .await
        .unwrap();
    env.docker.start_container(&by_hand.id, None).await.unwrap();
    assert_eq!(reconciler.pass(&Quiet).await.unwrap().plan, vec![]);
    std::fs::remove_dir_all(env.funkos().join("x")).unwrap();
    reconciler.pass(&Quiet).await.unwrap();
    let left: Vec<_> = env.instances().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        left[0].id, created.id,
        "the unmanaged faaso-x stays; the managed x is gone"
    );
    assert!(!left[0].managed);
    let still = env
        .docker
        .inspect_container(&by_hand.id, None)
        .await
        .unwrap();
    assert_eq!(
        still.state.and_then(|s| s.running),
        Some(true),
        "the hand-made container stays"
    );
    let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
        .force(true)
        .build();
    env.docker
        .remove_container(&by_hand.id, Some(remove))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_adds_and_removes_instances_without_recreating_the_rest() {
    let env = Env::new().await;
    let dir = env.python_funko("elastic", "e", "scale: 1\n");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let first = env.running("elastic").await;
    std::fs::write(
        dir.join("funko.yml"),
        "name: elastic\nruntime: python\nscale: 3\n",
    )
    .unwrap();
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let three = env.running("elastic").await;
    assert_eq!(three.len(), 3);
    assert!(
        three.iter().any(|i| i.id == first[0].id),
        "instance 1 is kept"
    );
    std::fs::write(
        dir.join("funko.yml"),
        "name: elastic\nruntime: python\nscale: 0\n",
    )
    .unwrap();
    let report = reconciler.pass(&Quiet).await.unwrap();
    assert!(report.converged() && env.running("elastic").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_rollout_converges_with_no_duplicates_or_leaks() {
    let env = Env::new().await;
    let dir = env.python_funko("roll", "v1", "scale: 2\n");
    assert!(
        env.reconciler()
            .await
            .pass(&Quiet)
            .await
            .unwrap()
            .converged()
    );
    std::fs::write(
        dir.join("handler.py"),
        "def handle(request):\n    return 'v2'\n",
    )
    .unwrap();
    // Stop the pass as soon as the first v2 instance exists, mid-rollout.
    let mut interrupted = env.reconciler().await;
    let pass = interrupted.pass(&Quiet);
    let watcher = async {
        env.eventually(
            Duration::from_secs(60),
            "a v2 instance to start",
            || async {
                let all = env.running("roll").await;
                all.len() > 2
            },
        )
        .await;
    };
    tokio::select! {
        _ = pass => {}
        _ = watcher => {}
    }
    drop(interrupted);
    let mut fresh = env.reconciler().await;
    let report = fresh.pass(&Quiet).await.unwrap();
    assert!(report.converged(), "{report:#?}");
    let all = env.instances_of("roll").await;
    assert_eq!(
        all.len(),
        2,
        "exactly the desired instances remain: {all:?}"
    );
    let mut numbers: Vec<u32> = all.iter().map(|i| i.number).collect();
    numbers.sort();
    assert_eq!(numbers, vec![1, 2]);
    for instance in &all {
        assert_eq!(get(instance, "/").await, Some((200, "v2".into())));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_funko_folder_takes_its_instances_away() {
    let env = Env::new().await;
    env.python_funko("gone", "g", "scale: 2\n");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    std::fs::remove_dir_all(env.funkos().join("gone")).unwrap();
    let report = reconciler.pass(&Quiet).await.unwrap();
    let removes = report
        .plan
        .iter()
        .filter(|s| matches!(s, Step::Remove { .. }))
        .count();
    assert_eq!(removes, 2);
    assert!(env.instances().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_mode_replaces_a_killed_instance_and_picks_up_a_dropped_folder() {
    let env = Env::new().await;
    env.python_funko("victim", "still here", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let timing = WatchTiming {
        resync: Duration::from_secs(300),
        ..WatchTiming::default()
    };
    let watching = common::Watching::start(reconciler, timing);
    let victim = env.running("victim").await.remove(0);
    let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    env.docker
        .kill_container(&victim.id, Some(kill))
        .await
        .unwrap();
    env.eventually(
        Duration::from_secs(30),
        "the killed instance to be replaced and serve",
        || env.serves("victim", "still here", Some(&victim.id)),
    )
    .await;
    // A folder dropped in while watching is built and started without any command.
    env.python_funko("newcomer", "hello from the new one", "");
    env.eventually(
        Duration::from_secs(60),
        "the dropped funko to serve",
        || env.serves("newcomer", "hello from the new one", None),
    )
    .await;
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_mode_survives_losing_the_engine_and_converges_when_it_returns() {
    let env = Env::new().await;
    env.python_funko("sturdy", "sturdy", "");
    let relay = common::relay::Relay::start(&env.dir.path().join("docker.sock"));
    let mut reconciler = env.reconciler_at(relay.path()).await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let timing = WatchTiming {
        resync: Duration::from_secs(300),
        max_backoff: Duration::from_secs(1),
        ..WatchTiming::default()
    };
    let watching = common::Watching::start(reconciler, timing);
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.cut();
    // While faaso cannot see the engine, its instance dies.
    let victim = env.running("sturdy").await.remove(0);
    let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    env.docker
        .kill_container(&victim.id, Some(kill))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.restore();
    env.eventually(
        Duration::from_secs(30),
        "faaso to reconnect and replace the instance",
        || env.serves("sturdy", "sturdy", Some(&victim.id)),
    )
    .await;
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_funko_fails_fast_and_holds_no_other_back() {
    let env = Env::new().await;
    env.python_funko("healthy", "fine", "");
    // The handler module dies on import: the process exits, Docker restarts it, again and again.
    let crashy = env.python_funko("crashy", "never", "");
    std::fs::write(crashy.join("handler.py"), "import sys\nsys.exit(3)\n").unwrap();
    let mut reconciler = env.reconciler().await;
    let started = std::time::Instant::now();
    let report = reconciler.pass(&Quiet).await.unwrap();
    let healthy = report.funkos.iter().find(|f| f.name == "healthy").unwrap();
    assert!(healthy.converged(), "{healthy:?}");
    let crashy = report.funkos.iter().find(|f| f.name == "crashy").unwrap();
    let error = crashy.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("never became ready") && error.contains("exit code"),
        "{error}"
    );
    // Seen as a crash within seconds, not after the whole readiness budget (60 s by default).
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    let leftovers = env.instances_of("crashy").await;
    assert!(
        leftovers.is_empty(),
        "the crashing container is removed: {leftovers:?}"
    );
    // The same content is not retried in a loop.
    let again = reconciler.pass(&Quiet).await.unwrap();
    assert!(
        again.plan.iter().all(|s| s.funko() != "crashy"),
        "{:?}",
        again.plan
    );
    assert_eq!(
        get(&env.running("healthy").await[0], "/").await,
        Some((200, "fine".into()))
    );
}

/// The exit code of `faaso-probe <url>` run inside `container`, as Swarm's healthcheck runs it.
async fn probe_inside(env: &Env, container: &str, url: &str) -> i64 {
    use futures_util::StreamExt;
    let exec = env
        .docker
        .create_exec(
            container,
            bollard::models::ExecConfig {
                cmd: Some(vec![
                    faaso_schema::PROBE_PATH.to_owned(),
                    url.to_owned(),
                    "2000".to_owned(),
                ]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        env.docker.start_exec(&exec.id, None).await.unwrap()
    {
        while output.next().await.is_some() {}
    }
    let inspect = env.docker.inspect_exec(&exec.id).await.unwrap();
    inspect.exit_code.expect("the probe has exited")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_image_carries_a_probe_that_passes_only_on_2xx() {
    let env = Env::new().await;
    // A static executable in a FROM scratch image: no shell, no interpreter, only the probe.
    let binary = env.funkos().join("hello-binary");
    std::fs::create_dir_all(&binary).unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../funkos/hello-binary");
    for file in ["funko.yml", "main.rs", "build.sh"] {
        std::fs::copy(example.join(file), binary.join(file)).unwrap();
    }
    let built = std::process::Command::new("bash")
        .arg(binary.join("build.sh"))
        .status()
        .unwrap();
    assert!(built.success(), "hello-binary's build.sh failed");
    let python = env.python_funko("py", "ok", "");
    common::write(
        &python.join("handler.py"),
        "def handle(request):\n    return (404, 'no') if request.path == '/missing' else 'ok'\n",
    );
    let mut reconciler = env.reconciler().await;
    let report = reconciler.pass(&Quiet).await.unwrap();
    assert!(report.converged(), "{report:#?}");
    for funko in ["hello-binary", "py"] {
        let instance = env.running(funko).await.remove(0);
        let name = &instance.name;
        assert_eq!(
            probe_inside(&env, name, "http://127.0.0.1:3000/ping").await,
            0,
            "{funko}"
        );
        assert_eq!(
            probe_inside(&env, name, "http://127.0.0.1:3001/ping").await,
            1,
            "{funko}"
        );
    }
    let py = env.running("py").await.remove(0);
    assert_eq!(
        probe_inside(&env, &py.name, "http://127.0.0.1:3000/missing").await,
        1
    );
}

/// A server killed between creating an instance's container and starting it leaves the
/// container behind (Docker finishes the request): the step planned again adopts it, as its
/// name and labels say it is that very instance, instead of failing on the taken name.
#[tokio::test(flavor = "multi_thread")]
async fn a_replacement_left_created_by_a_killed_run_is_adopted() {
    use faaso_reconciler::Backend;
    let env = Env::new().await;
    env.python_funko("alpha", "alpha v1", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    env.python_funko("alpha", "alpha v2", "");
    let (state, _, steps) = reconciler.plan().await.unwrap();
    let replace = steps
        .iter()
        .find(|s| matches!(s, Step::Replace { .. }))
        .unwrap_or_else(|| panic!("the rollout replaces the instance: {steps:?}"))
        .clone();
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let v2 = env.running("alpha").await[0].id.clone();
    // As the killed run left it: created (here: stopped again), not running.
    env.docker.stop_container(&v2, None).await.unwrap();
    reconciler
        .backend()
        .execute(&replace, state.prepared.get("alpha"), &Quiet)
        .await
        .unwrap_or_else(|e| panic!("the replacement adopts the container: {e:?}"));
    let alpha = env.instances_of("alpha").await;
    assert_eq!(
        alpha.len(),
        1,
        "one instance, nothing duplicated: {alpha:?}"
    );
    assert_eq!(alpha[0].id, v2, "the container left behind, adopted");
    assert_eq!(alpha[0].state, InstanceState::Running);
}

/// A pass's view can be stale: an instance seen stopped and started again since (a restart
/// from the admin API) is not removed by the step planned from that view.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_restarted_after_it_was_seen_stopped_stays() {
    use faaso_reconciler::{Backend, RemoveReason};
    let env = Env::new().await;
    env.python_funko("alpha", "alpha v1", "");
    let mut reconciler = env.reconciler().await;
    assert!(reconciler.pass(&Quiet).await.unwrap().converged());
    let id = env.running("alpha").await[0].id.clone();
    env.docker.stop_container(&id, None).await.unwrap();
    let (_, _, steps) = reconciler.plan().await.unwrap();
    let removal = steps
        .iter()
        .find(|s| {
            matches!(
                s,
                Step::Remove {
                    reason: RemoveReason::Stopped,
                    ..
                }
            )
        })
        .unwrap_or_else(|| panic!("the stopped instance is planned away: {steps:?}"))
        .clone();
    env.docker.start_container(&id, None).await.unwrap();
    reconciler
        .backend()
        .execute(&removal, None, &Quiet)
        .await
        .unwrap();
    let running = env.running("alpha").await;
    assert!(
        running.iter().any(|i| i.id == id),
        "the restarted instance still runs: {running:?}"
    );
    // One still stopped goes.
    env.docker.stop_container(&id, None).await.unwrap();
    reconciler
        .backend()
        .execute(&removal, None, &Quiet)
        .await
        .unwrap();
    assert!(
        env.docker.inspect_container(&id, None).await.is_err(),
        "the stopped instance was removed"
    );
}
