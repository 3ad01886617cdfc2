//! One funko never stalls another: a real `faaso server`, the real engine, real HTTP. A funko
//! whose instance is not ready for an hour, or whose build hangs, is worked on while the others
//! heal, roll out and are removed; a hung build ends at its timeout, and a build cut short (its
//! timeout, its funko removed, the server stopped) leaves no build container running.

mod common;
mod served;

use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::{KillContainerOptions, ListContainersOptionsBuilder};
use served::{Served, http};

/// Writes a Python funko answering `body` on every path, with extra funko.yml `yaml`.
fn python_funko(funkos: &Path, name: &str, body: &str, yaml: &str) {
    let dir = funkos.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let handler = format!("def handle(request):\n    return {body:?}\n");
    write_atomically(&dir.join("handler.py"), &handler);
    write_atomically(
        &dir.join("funko.yml"),
        &format!("name: {name}\nruntime: python\n{yaml}"),
    );
}

/// A funko of its own Dockerfile whose build runs a step that never ends; `marker` names the
/// step so the test finds its build container, `yaml` is added to funko.yml.
fn hanging_funko(funkos: &Path, name: &str, marker: &str, yaml: &str) {
    let dir = funkos.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let dockerfile = format!(
        "FROM faaso-base/python:bookworm\nRUN sleep 3600 || echo {marker}\nCMD [\"python3\", \"-m\", \"http.server\", \"3000\"]\n"
    );
    write_atomically(&dir.join("Dockerfile"), &dockerfile);
    write_atomically(&dir.join("funko.yml"), &format!("name: {name}\n{yaml}"));
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The containers (any state) whose command carries `marker`: a build's running step.
async fn build_containers(served: &Served, marker: &str) -> Vec<String> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    let all = served.docker.list_containers(Some(options)).await.unwrap();
    all.into_iter()
        .filter(|c| c.command.as_deref().is_some_and(|c| c.contains(marker)))
        .filter_map(|c| c.id)
        .collect()
}

/// Waits until the build step marked `marker` runs.
async fn hung_build_runs(served: &Served, marker: &str) {
    served
        .eventually(Duration::from_secs(120), "the hung build runs", || async {
            !build_containers(served, marker).await.is_empty()
        })
        .await;
}

/// What `/funko/<funko>/` answers now (status and body), or why nothing did.
async fn answer(served: &Served, funko: &str) -> (u16, String) {
    match http()
        .get(served.url(&format!("/funko/{funko}/")))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Waits until `/funko/<funko>/` answers 200 with `body`.
async fn serves(served: &Served, funko: &str, body: &str, limit: Duration) {
    served
        .eventually(limit, &format!("{funko} answers {body:?}"), || async {
            answer(served, funko).await == (200, body.to_owned())
        })
        .await;
}

/// A funko's entry on the admin board, once it has one.
async fn converging_step(served: &Served, funko: &str) -> Option<String> {
    let status = served.status(funko).await?;
    status["converging"]["step"].as_str().map(str::to_owned)
}

fn marker() -> String {
    format!("hung-build-{}", common::process::unique_id())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_funko_not_ready_for_an_hour_never_delays_another_funkos_healing() {
    let served = Served::start().await;
    python_funko(&served.funkos(), "steady", "steady v1", "");
    serves(&served, "steady", "steady v1", Duration::from_secs(180)).await;
    // Its readiness path fails, and it is given an hour to pass it (a model loading, say).
    python_funko(
        &served.funkos(),
        "slow",
        "slow",
        "healthcheck: {path: /ready, start_period: 1h}\n",
    );
    let slow_handler = "def handle(request):\n    raise RuntimeError('still loading')\n";
    write_atomically(&served.funkos().join("slow/handler.py"), slow_handler);
    served
        .eventually(
            Duration::from_secs(180),
            "slow waits for readiness",
            || async {
                converging_step(&served, "slow")
                    .await
                    .is_some_and(|step| step.starts_with("start"))
            },
        )
        .await;
    let victim = served.running("steady").await[0].id.clone().unwrap();
    served
        .docker
        .kill_container(&victim, None::<KillContainerOptions>)
        .await
        .unwrap();
    served
        .eventually(
            Duration::from_secs(60),
            "steady replaced and answering",
            || async {
                let running = served.running("steady").await;
                running.len() == 1
                    && running[0].id.as_deref() != Some(victim.as_str())
                    && answer(&served, "steady").await == (200, "steady v1".to_owned())
            },
        )
        .await;
    // Meanwhile the slow funko still waits, and says so.
    let step = converging_step(&served, "slow").await;
    assert!(
        step.as_deref().is_some_and(|s| s.starts_with("start")),
        "slow is no longer waiting: {step:?}\n{}",
        served.log()
    );
    // `faaso status` through the server names it, how long and where.
    let base = served.admin_base();
    let env = [
        ("FAASO_SERVER", base.as_str()),
        ("FAASO_TOKEN", served.token.as_str()),
    ];
    let status = served.cli(&["status"], &env, "").success();
    assert!(
        status.stdout.contains("slow: converging for") && status.stdout.contains("at: start"),
        "{}",
        status.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_funko_removed_while_its_build_hangs_leaves_no_build_container() {
    let served = Served::start().await;
    let marker = marker();
    hanging_funko(&served.funkos(), "hangs", &marker, "");
    hung_build_runs(&served, &marker).await;
    served
        .eventually(Duration::from_secs(10), "hangs shown building", || async {
            converging_step(&served, "hangs")
                .await
                .is_some_and(|s| s.starts_with("build"))
        })
        .await;
    std::fs::remove_dir_all(served.funkos().join("hangs")).unwrap();
    served
        .eventually(
            Duration::from_secs(30),
            "the build container is gone",
            || async { build_containers(&served, &marker).await.is_empty() },
        )
        .await;
    served
        .eventually(
            Duration::from_secs(30),
            "the funko is forgotten",
            || async { served.status("hangs").await.is_none() },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stopped_during_a_hung_build_leaves_no_build_container() {
    let served = Served::start().await;
    let marker = marker();
    hanging_funko(&served.funkos(), "hangs", &marker, "");
    hung_build_runs(&served, &marker).await;
    let docker = served.docker.clone();
    // Dropping it sends SIGTERM and waits for the server to exit (SIGKILL after 10 s).
    drop(served);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let left: Vec<_> = docker
            .list_containers(Some(options))
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.command.as_deref().is_some_and(|c| c.contains(&marker)))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server left its build running: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_one_funkos_work_fails_that_funko_and_the_server_serves_the_others() {
    let served = Served::start_with_env(&[], &[("FAASO_TEST_PANIC_FUNKO", "boom")]).await;
    python_funko(&served.funkos(), "fine", "fine", "");
    python_funko(&served.funkos(), "boom", "boom", "");
    serves(&served, "fine", "fine", Duration::from_secs(180)).await;
    served
        .eventually(
            Duration::from_secs(60),
            "boom failed with the panic",
            || async {
                served.status("boom").await.is_some_and(|s| {
                    s["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("forced by FAASO_TEST_PANIC_FUNKO"))
                })
            },
        )
        .await;
    // The server is up and still converges the others: a new one is served.
    python_funko(&served.funkos(), "later", "later", "");
    serves(&served, "later", "later", Duration::from_secs(180)).await;
    assert_eq!(answer(&served, "fine").await, (200, "fine".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_build_never_delays_another_funkos_rollout_and_ends_at_its_timeout() {
    let served = Served::start().await;
    python_funko(&served.funkos(), "quick", "quick v1", "");
    serves(&served, "quick", "quick v1", Duration::from_secs(180)).await;
    let marker = marker();
    hanging_funko(
        &served.funkos(),
        "hangs",
        &marker,
        "build: {timeout: 40s}\n",
    );
    hung_build_runs(&served, &marker).await;
    // A code change to the other funko is built and rolled out while the build hangs.
    python_funko(&served.funkos(), "quick", "quick v2", "");
    serves(&served, "quick", "quick v2", Duration::from_secs(120)).await;
    assert!(
        !build_containers(&served, &marker).await.is_empty(),
        "the hung build ended before the rollout was done: this test proves nothing\n{}",
        served.log()
    );
    // The hung build ends at its timeout, with the reason shown, and leaves nothing running.
    served
        .eventually(Duration::from_secs(90), "the build timed out", || async {
            served.status("hangs").await.is_some_and(|s| {
                s["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("took longer than 40s"))
            })
        })
        .await;
    served
        .eventually(
            Duration::from_secs(15),
            "the build container is gone",
            || async { build_containers(&served, &marker).await.is_empty() },
        )
        .await;
}
