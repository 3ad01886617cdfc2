//! Scale to zero against the real engine: a real `faaso server`, real containers paused,
//! stopped and woken, real HTTP through its proxy.

mod common;
mod served;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::future::join_all;
use served::{Served, http};

/// A python funko that answers with its container's hostname (the short container id), so a
/// test sees which instance served it.
fn write_funko(served: &Served, name: &str, spec_tail: &str, handler: &str) {
    let dir = served.funkos().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("handler.py"), handler).unwrap();
    std::fs::write(
        dir.join("funko.yml"),
        format!("name: {name}\nruntime: python\n{spec_tail}"),
    )
    .unwrap();
}

const WHOAMI: &str =
    "import os\n\ndef handle(request):\n    return os.environ.get('HOSTNAME', '')\n";

/// `(id, state)` of every instance of `funko`, running or not.
async fn instances(served: &Served, funko: &str) -> Vec<(String, String)> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("{}.instance", served.id),
            format!("{}.funko={funko}", served.id),
        ],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    served
        .docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.id.unwrap_or_default(),
                c.state.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Whether the funko's image is built (an autoscaled funko's is, even at zero).
async fn built(served: &Served, funko: &str) -> bool {
    served
        .status(funko)
        .await
        .is_some_and(|s| s["image_created"].is_number())
}

async fn get(served: &Served, path: &str) -> (u16, String) {
    let response = http().get(served.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn states(served: &Served, funko: &str) -> Vec<String> {
    instances(served, funko)
        .await
        .into_iter()
        .map(|(_, state)| state)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_funko_is_paused_then_stopped_and_each_wake_reuses_its_instance() {
    let served = Served::start().await;
    write_funko(
        &served,
        "sleepy",
        "scale:\n  min: 0\n  max: 2\nidle:\n  pause_after: 2s\n  stop_after: 3s\n",
        WHOAMI,
    );
    served
        .eventually(Duration::from_secs(120), "sleepy known at zero", || async {
            built(&served, "sleepy").await
        })
        .await;
    assert!(
        instances(&served, "sleepy").await.is_empty(),
        "min 0 starts nothing"
    );

    // The first request is held while an instance is created, then served.
    let (status, host) = get(&served, "/funko/sleepy/").await;
    assert_eq!(status, 200, "{host}\n{}", served.log());
    let all = instances(&served, "sleepy").await;
    assert_eq!(all.len(), 1);
    let id = all[0].0.clone();
    assert!(id.starts_with(host.trim()), "{id} served {host}");

    served
        .eventually(Duration::from_secs(20), "paused when idle", || async {
            states(&served, "sleepy").await == ["paused"]
        })
        .await;
    let woke = Instant::now();
    let (status, host) = get(&served, "/funko/sleepy/").await;
    assert_eq!(status, 200);
    assert!(
        id.starts_with(host.trim()),
        "the paused instance is woken, not replaced"
    );
    eprintln!("wake from paused through faaso: {:?}", woke.elapsed());

    served
        .eventually(Duration::from_secs(30), "stopped after a pause", || async {
            states(&served, "sleepy").await == ["exited"]
        })
        .await;
    let (status, host) = get(&served, "/funko/sleepy/").await;
    assert_eq!(status, 200);
    assert!(
        id.starts_with(host.trim()),
        "the stopped instance is started, not replaced"
    );
    assert_eq!(instances(&served, "sleepy").await.len(), 1);

    // On the admin listener, with the rest of what is not a funko's.
    let metrics = http()
        .get(served.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for tier in ["created", "paused", "stopped"] {
        assert!(
            metrics.contains(&format!(
                "faaso_wake_duration_seconds_count{{funko=\"sleepy\",tier=\"{tier}\"}} 1"
            )),
            "{tier} wake counted:\n{metrics}"
        );
    }
    let status = served.status("sleepy").await.unwrap();
    assert_eq!(status["autoscaled"]["min"], 0);
    assert_eq!(status["autoscaled"]["max"], 2);
    assert!(status["last_decision"]["reason"].is_string(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_keeps_paused_instances_and_wakes_them() {
    let mut served = Served::start().await;
    write_funko(
        &served,
        "nap",
        "scale:\n  min: 0\n  max: 2\nidle:\n  pause_after: 2s\n  stop_after: 15m\n",
        WHOAMI,
    );
    served
        .eventually(Duration::from_secs(120), "nap known", || async {
            built(&served, "nap").await
        })
        .await;
    assert_eq!(get(&served, "/funko/nap/").await.0, 200, "{}", served.log());
    served
        .eventually(Duration::from_secs(20), "paused", || async {
            states(&served, "nap").await == ["paused"]
        })
        .await;
    let before = instances(&served, "nap").await;

    served.kill_and_restart().await;
    served
        .eventually(
            Duration::from_secs(30),
            "a pass after the restart",
            || async { served.board().await["pass"].as_u64().unwrap_or(0) >= 1 },
        )
        .await;
    assert_eq!(
        instances(&served, "nap").await,
        before,
        "kept, still paused"
    );
    let (status, host) = get(&served, "/funko/nap/").await;
    assert_eq!(status, 200, "{}", served.log());
    assert!(
        before[0].0.starts_with(host.trim()),
        "the same instance woke"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_at_zero_holds_up_to_the_queue_and_refuses_exactly_the_overflow() {
    let served = Served::start().await;
    write_funko(
        &served,
        "burst",
        "scale:\n  min: 0\n  max: 3\n  queue: 100\n",
        WHOAMI,
    );
    served
        .eventually(Duration::from_secs(120), "burst known", || async {
            built(&served, "burst").await
        })
        .await;
    let client = http();
    let url = served.url("/funko/burst/");
    let started = Instant::now();
    let answers = join_all((0..500).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client.get(&url).send().await.unwrap();
            let retry = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry, started.elapsed())
        }
    }))
    .await;
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(ok + refused.len(), 500, "only 200 or 503: {answers:?}");
    assert_eq!(refused.len(), 400, "exactly the overflow of a queue of 100");
    assert!(refused.iter().all(|a| a.1), "503s say when to retry");
    // Refused at once, not after the wake.
    let slowest_refusal = refused.iter().map(|a| a.2).max().unwrap();
    let fastest_success = answers
        .iter()
        .filter(|a| a.0 == 200)
        .map(|a| a.2)
        .min()
        .unwrap();
    assert!(
        slowest_refusal < fastest_success,
        "{slowest_refusal:?} vs {fastest_success:?}"
    );
    let created = instances(&served, "burst").await.len();
    assert!(
        (1..=3).contains(&created),
        "{created} instances: never one per request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_funko_that_cannot_start_answers_held_requests_with_the_reason() {
    let served = Served::start().await;
    write_funko(
        &served,
        "broken",
        "scale:\n  min: 0\n  max: 2\ntimeout: 120s\n",
        "import no_such_module\n\ndef handle(request):\n    return 'never'\n",
    );
    served
        .eventually(Duration::from_secs(120), "broken known", || async {
            built(&served, "broken").await
        })
        .await;
    let started = Instant::now();
    let (status, body) = get(&served, "/funko/broken/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("could not start"), "{body}");
    // Told when the start failed, long before the funko's two-minute timeout.
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_instance_that_cannot_be_woken_is_replaced_and_the_request_served() {
    let served = Served::start().await;
    write_funko(
        &served,
        "fragile",
        "scale:\n  min: 0\n  max: 2\nidle:\n  pause_after: 2s\n",
        WHOAMI,
    );
    served
        .eventually(Duration::from_secs(120), "fragile known", || async {
            built(&served, "fragile").await
        })
        .await;
    assert_eq!(get(&served, "/funko/fragile/").await.0, 200);
    served
        .eventually(Duration::from_secs(20), "paused", || async {
            states(&served, "fragile").await == ["paused"]
        })
        .await;
    // The paused container disappears behind faaso's back: the unpause fails.
    let (old, _) = instances(&served, "fragile").await.remove(0);
    served
        .docker
        .remove_container(
            &old,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    let (status, host) = get(&served, "/funko/fragile/").await;
    assert_eq!(status, 200, "{host}\n{}", served.log());
    assert!(!old.starts_with(host.trim()), "a new instance served");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_funko_removed_while_requests_wait_answers_them() {
    let served = Served::start().await;
    write_funko(
        &served,
        "gone",
        "scale:\n  min: 0\n  max: 2\ntimeout: 120s\n",
        "import time\ntime.sleep(5)\n\ndef handle(request):\n    return 'late'\n",
    );
    served
        .eventually(Duration::from_secs(120), "gone known", || async {
            built(&served, "gone").await
        })
        .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(150))
        .build()
        .unwrap();
    let url = served.url("/funko/gone/");
    let waiting = tokio::spawn(async move { client.get(&url).send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_dir_all(served.funkos().join("gone")).unwrap();
    let status = waiting.await.unwrap().as_u16();
    // Either it was answered by the instance that was starting, or told the funko went: it is
    // never left hanging until the timeout.
    assert!([200, 404].contains(&status), "{status}");
    served
        .eventually(Duration::from_secs(60), "its instances removed", || async {
            instances(&served, "gone").await.is_empty()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_while_it_wakes_does_not_fail_the_held_request() {
    let served = Served::start().await;
    write_funko(
        &served,
        "killed",
        "scale:\n  min: 0\n  max: 2\nidle:\n  pause_after: 2s\n  stop_after: 0s\ntimeout: 120s\n",
        "import time\ntime.sleep(2)\n\ndef handle(request):\n    return 'up'\n",
    );
    served
        .eventually(Duration::from_secs(120), "killed built", || async {
            built(&served, "killed").await
        })
        .await;
    assert_eq!(
        get(&served, "/funko/killed/").await.0,
        200,
        "{}",
        served.log()
    );
    served
        .eventually(Duration::from_secs(30), "stopped when idle", || async {
            states(&served, "killed").await == ["exited"]
        })
        .await;
    let (id, _) = instances(&served, "killed").await.remove(0);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(150))
        .build()
        .unwrap();
    let url = served.url("/funko/killed/");
    let waiting = tokio::spawn(async move { client.get(&url).send().await.unwrap().status() });
    // Its start takes two seconds (the handler's import): kill it in the middle.
    served
        .eventually(Duration::from_secs(30), "started again", || async {
            states(&served, "killed")
                .await
                .contains(&"running".to_owned())
        })
        .await;
    served.docker.kill_container(&id, None).await.unwrap();
    assert_eq!(waiting.await.unwrap().as_u16(), 200, "{}", served.log());
}
