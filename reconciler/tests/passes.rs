//! Whole passes of `Reconciler<Twin>`: the same reading of the funkos folder, planner,
//! executor, failure holds and listener calls as on Docker, on the in-memory twin with
//! scripted faults. Properties over random folders and faults; the Docker backend's own
//! behaviour is tested against the real engine in `docker.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use faaso_reconciler::twin::{Event, Fault, Twin};
use faaso_reconciler::{
    BasePolicy, InstanceState, Listener, Namespace, Quiet, Reconciler, Settings, Started, Step,
    Triggers, WatchTiming, watch,
};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// Each funko's scale and content version.
type Folder = BTreeMap<&'static str, (u32, u8)>;

/// Writes the funkos folder: a funko per entry (its version in its Dockerfile, so a new
/// version is a new image), and nothing else.
fn write(dir: &Path, folder: &Folder) {
    for name in NAMES {
        let path = dir.join(name);
        match folder.get(name) {
            Some((scale, version)) => {
                std::fs::create_dir_all(&path).unwrap();
                std::fs::write(
                    path.join("funko.yml"),
                    format!("name: {name}\nscale: {scale}\n"),
                )
                .unwrap();
                std::fs::write(
                    path.join("Dockerfile"),
                    format!("FROM scratch\n# v{version}\n"),
                )
                .unwrap();
            }
            None => {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}

fn reconciler(twin: &Twin, dir: &Path) -> Reconciler<Twin> {
    let settings = Settings {
        funkos_dir: dir.to_owned(),
        namespace: Namespace::default(),
        base_policy: BasePolicy::Local,
        secrets_dir: dir.join(".secrets"),
        state_dir: None,
        concurrency: 4,
    };
    Reconciler::new(twin.clone(), settings)
}

fn folder_strategy() -> impl Strategy<Value = Folder> {
    proptest::collection::btree_map(0..4usize, (0..4u32, 0..3u8), 0..=4)
        .prop_map(|m| m.into_iter().map(|(i, v)| (NAMES[i], v)).collect())
}

fn faults_strategy() -> impl Strategy<Value = BTreeSet<(usize, u8)>> {
    proptest::collection::btree_set((0..4usize, 0..3u8), 0..3)
}

fn fault(kind: u8) -> Fault {
    [Fault::Build, Fault::NeverReady, Fault::Start][kind as usize]
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The running managed instances of `funko`, by number.
fn running(twin: &Twin, funko: &str) -> Vec<(u32, String)> {
    let mut numbers: Vec<(u32, String)> = twin
        .instances()
        .into_iter()
        .filter(|i| i.managed && i.funko == funko && i.state == InstanceState::Running)
        .map(|i| (i.number, i.config_hash))
        .collect();
    numbers.sort();
    numbers
}

/// Records what the listener hears into the twin's journal, after what the twin did.
struct Recorder(Twin);

impl Listener<Step> for Recorder {
    fn instance_ready(&self, _funko: &str, instance: &Started) {
        self.0.record(Event::Routed(instance.id.clone()));
    }

    fn instance_leaving(&self, _funko: &str, id: &str) {
        self.0.record(Event::Leaving(id.to_owned()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_pass_converges_and_the_next_one_does_nothing(
        first in folder_strategy(), second in folder_strategy()
    ) {
        let dir = tempfile::tempdir().unwrap();
        let twin = Twin::default();
        let mut reconciler = reconciler(&twin, dir.path());
        block_on(async {
            for folder in [&first, &second] {
                write(dir.path(), folder);
                reconciler.pass(&Quiet).await.unwrap();
                let again = reconciler.pass(&Quiet).await.unwrap();
                prop_assert_eq!(again.plan, vec![]);
                for name in NAMES {
                    let scale = folder.get(name).map_or(0, |f| f.0);
                    let numbers: Vec<u32> = running(&twin, name).into_iter().map(|r| r.0).collect();
                    prop_assert_eq!(numbers, (1..=scale).collect::<Vec<_>>(), "funko {}", name);
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn a_failing_funko_never_holds_back_another(
        first in folder_strategy(), second in folder_strategy(), faults in faults_strategy()
    ) {
        let dir = tempfile::tempdir().unwrap();
        let twin = Twin::default();
        let mut reconciler = reconciler(&twin, dir.path());
        block_on(async {
            write(dir.path(), &first);
            reconciler.pass(&Quiet).await.unwrap();
            let before: BTreeMap<&str, Vec<(u32, String)>> =
                NAMES.iter().map(|n| (*n, running(&twin, n))).collect();
            let failing: BTreeSet<&str> = faults.iter().map(|(f, _)| NAMES[*f]).collect();
            for (funko, kind) in &faults {
                twin.fail(NAMES[*funko], fault(*kind));
            }
            write(dir.path(), &second);
            let report = reconciler.pass(&Quiet).await.unwrap();
            for name in NAMES {
                let now = running(&twin, name);
                if failing.contains(name) && second.contains_key(name) {
                    // Whatever failed, every number it served before and should still serve
                    // is served: by the old instance, or by its finished replacement.
                    let scale = second[name].0;
                    for (number, _) in before[name].iter().filter(|(n, _)| *n <= scale) {
                        prop_assert!(now.iter().any(|(n, _)| n == number),
                            "funko {}: before {:?}, now {:?}", name, before[name], now);
                    }
                } else {
                    let scale = second.get(name).map_or(0, |f| f.0);
                    let numbers: Vec<u32> = now.iter().map(|r| r.0).collect();
                    prop_assert_eq!(numbers, (1..=scale).collect::<Vec<_>>(), "funko {}", name);
                    let status = report.funkos.iter().find(|f| f.name == name);
                    prop_assert!(status.is_none_or(|s| s.error.is_none() || !second.contains_key(name)),
                        "funko {} got another's error: {:?}", name, status);
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn a_replacement_is_routed_before_the_instance_it_replaces_leaves(
        scales in proptest::collection::vec(1..4u32, 1..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let twin = Twin::default();
        let mut reconciler = reconciler(&twin, dir.path());
        block_on(async {
            let v1: Folder = scales.iter().enumerate().map(|(i, s)| (NAMES[i], (*s, 1))).collect();
            write(dir.path(), &v1);
            reconciler.pass(&Quiet).await.unwrap();
            let old: BTreeSet<String> = twin.instances().into_iter().map(|i| i.id).collect();
            let v2: Folder = v1.iter().map(|(n, (s, _))| (*n, (*s, 2))).collect();
            write(dir.path(), &v2);
            let skip = twin.journal().len();
            reconciler.pass(&Recorder(twin.clone())).await.unwrap();
            let journal = &twin.journal()[skip..];
            for instance in twin.instances() {
                prop_assert!(!old.contains(&instance.id), "every old instance was replaced");
            }
            for (n, event) in journal.iter().enumerate() {
                if let Event::Removed(id) = event {
                    // Told to leave just before going; and before that, its replacement was
                    // started, answered and routed, in that order.
                    prop_assert_eq!(&journal[n - 1], &Event::Leaving(id.clone()));
                    let Event::Routed(new) = &journal[n - 2] else {
                        return Err(TestCaseError::fail(format!("{journal:?}")));
                    };
                    prop_assert_eq!(&journal[n - 3], &Event::Ready(new.clone()));
                    let started = matches!(&journal[n - 4], Event::Started { id, .. } if id == new);
                    prop_assert!(started, "{:?}", journal);
                }
            }
            prop_assert_eq!(
                journal.iter().filter(|e| matches!(e, Event::Removed(_))).count(),
                old.len()
            );
            Ok(())
        })?;
    }
}

#[test]
fn a_failure_hold_is_released_by_a_content_change_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    block_on(async {
        let mut folder = Folder::from([("a", (1, 1)), ("b", (1, 1))]);
        write(dir.path(), &folder);
        twin.fail("a", Fault::Build);
        let report = reconciler.pass(&Quiet).await.unwrap();
        let a = report.funkos.iter().find(|f| f.name == "a").unwrap();
        assert!(a.error.as_deref().unwrap().contains("scripted"), "{a:?}");
        assert_eq!(running(&twin, "b").len(), 1);

        // The fault is gone, but the same content is not tried again: not by a pass, not by
        // another funko's change.
        twin.clear_faults();
        assert!(reconciler.pass(&Quiet).await.unwrap().plan.is_empty());
        folder.insert("b", (2, 1));
        write(dir.path(), &folder);
        let report = reconciler.pass(&Quiet).await.unwrap();
        assert!(
            report
                .plan
                .iter()
                .all(|s| !matches!(s, Step::Build { funko, .. } if funko == "a"))
        );
        assert!(running(&twin, "a").is_empty());

        // Its content changes: it is tried at once, and the error is gone.
        folder.insert("a", (1, 2));
        write(dir.path(), &folder);
        let report = reconciler.pass(&Quiet).await.unwrap();
        assert_eq!(running(&twin, "a").len(), 1);
        let a = report.funkos.iter().find(|f| f.name == "a").unwrap();
        assert_eq!(a.error, None);
    });
}

#[test]
fn images_nothing_needs_are_pruned_but_the_one_before_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    block_on(async {
        for version in 1..=3 {
            write(dir.path(), &Folder::from([("a", (1, version))]));
            twin.advance(Duration::from_secs(60));
            reconciler.pass(&Quiet).await.unwrap();
        }
        let images = twin.images();
        assert_eq!(
            images.len(),
            2,
            "the current image and the one before: {images:?}"
        );
        assert!(twin.journal().iter().any(|e| matches!(e, Event::Pruned(_))));
        let current = &twin.instances()[0].image;
        assert!(images.contains(current));
    });
}

#[tokio::test]
async fn watch_mode_replaces_an_instance_the_engine_reports_dead() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &Folder::from([("a", (2, 1))]));
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    reconciler.pass(&Quiet).await.unwrap();
    let victim = twin.instances()[0].clone();
    let stop = CancellationToken::new();
    let watch = watching(reconciler, &stop);
    // The watcher subscribes to changes as it starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    twin.kill(&victim.id);
    let replaced = async {
        loop {
            let now = running(&twin, "a");
            if now.len() == 2 && twin.instances().iter().all(|i| i.id != victim.id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), replaced)
        .await
        .expect("the dead instance is replaced without waiting for the resync");
    stop.cancel();
    watch.await.unwrap().unwrap();
}

/// An autoscaled funko `a` between 0 and 3, its image built.
fn autoscaled_folder(dir: &Path) {
    let path = dir.join("a");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(
        path.join("funko.yml"),
        "name: a\nscale:\n  min: 0\n  max: 3\n",
    )
    .unwrap();
    std::fs::write(path.join("Dockerfile"), "FROM scratch\n").unwrap();
}

fn states(twin: &Twin) -> Vec<(u32, InstanceState)> {
    let mut states: Vec<_> = twin
        .instances()
        .iter()
        .map(|i| (i.number, i.state))
        .collect();
    states.sort();
    states
}

#[test]
fn without_a_server_an_autoscaled_funko_runs_one_instance_and_wakes_it_rather_than_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    autoscaled_folder(dir.path());
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    block_on(async {
        reconciler.pass(&Quiet).await.unwrap();
        assert_eq!(states(&twin), [(1, InstanceState::Running)]);
        let id = twin.instances()[0].id.clone();
        faaso_reconciler::Backend::pause(&twin, &id).await.unwrap();
        let report = reconciler.pass(&Quiet).await.unwrap();
        assert!(
            matches!(report.plan.as_slice(), [Step::Resume { paused: true, .. }]),
            "{:?}",
            report.plan
        );
        assert_eq!(twin.instances()[0].id, id, "the same instance, woken");
        assert_eq!(states(&twin), [(1, InstanceState::Running)]);
    });
}

#[test]
fn with_a_server_the_count_is_its_demand_and_idle_instances_are_left_to_it() {
    let dir = tempfile::tempdir().unwrap();
    autoscaled_folder(dir.path());
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    let demand = faaso_reconciler::Demand::default();
    reconciler.follow_demand(demand.clone());
    block_on(async {
        // min 0 and no demand: the image is built, nothing runs.
        let report = reconciler.pass(&Quiet).await.unwrap();
        assert!(
            matches!(report.plan.as_slice(), [Step::Build { .. }]),
            "{:?}",
            report.plan
        );
        assert!(twin.instances().is_empty());
        demand.set("a", 2);
        reconciler.pass(&Quiet).await.unwrap();
        assert_eq!(
            states(&twin),
            [(1, InstanceState::Running), (2, InstanceState::Running)]
        );
        // The server parks one and wants fewer: nothing is removed or woken by a pass.
        let id = twin.instances()[1].id.clone();
        faaso_reconciler::Backend::stop(&twin, &id).await.unwrap();
        demand.set("a", 1);
        let report = reconciler.pass(&Quiet).await.unwrap();
        assert!(report.plan.is_empty(), "{:?}", report.plan);
        assert_eq!(
            states(&twin),
            [(1, InstanceState::Running), (2, InstanceState::Exited)]
        );
        // Above what exists: one more is created, the stopped one is not replaced.
        demand.set("a", 3);
        reconciler.pass(&Quiet).await.unwrap();
        assert_eq!(
            states(&twin),
            [
                (1, InstanceState::Running),
                (2, InstanceState::Exited),
                (3, InstanceState::Running)
            ]
        );
    });
}

/// Watch mode on `reconciler` in the background until `stop`.
fn watching(
    mut reconciler: Reconciler<Twin>,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), notify::Error>> {
    let stop = stop.clone();
    tokio::spawn(async move {
        let timing = WatchTiming {
            resync: Duration::from_secs(600),
            ..WatchTiming::default()
        };
        watch(
            &mut reconciler,
            std::sync::Arc::new(Quiet),
            timing,
            Triggers::new(),
            stop,
        )
        .await
    })
}

/// Kills `a`'s instance while `b`'s work hangs in `fault`, and expects `a` healed meanwhile.
async fn heals_beside(fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &Folder::from([("a", (1, 1)), ("b", (1, 1))]));
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    reconciler.pass(&Quiet).await.unwrap();
    let b_v1 = running(&twin, "b");
    // b's next version hangs: in its build, or in its new instance's readiness wait.
    twin.fail("b", fault);
    write(dir.path(), &Folder::from([("a", (1, 1)), ("b", (1, 2))]));
    let stop = CancellationToken::new();
    let watch = watching(reconciler, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = twin
        .instances()
        .into_iter()
        .find(|i| i.funko == "a")
        .unwrap();
    twin.kill(&victim.id);
    let healed = async {
        while running(&twin, "a").len() != 1 || twin.instances().iter().any(|i| i.id == victim.id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), healed)
        .await
        .unwrap_or_else(|_| panic!("a was not healed while b hung ({fault:?})"));
    // b still hangs: its old instance is the only one ready.
    let ready: Vec<_> = twin
        .journal()
        .into_iter()
        .filter(
            |e| matches!(e, Event::Ready(id) if id.starts_with("twin-") && b_instance(&twin, id)),
        )
        .collect();
    assert_eq!(ready.len(), 1, "b's hung work finished: {ready:?}");
    assert_eq!(running(&twin, "b")[0], b_v1[0]);
    stop.cancel();
    watch.await.unwrap().unwrap();
}

fn b_instance(twin: &Twin, id: &str) -> bool {
    twin.instances()
        .iter()
        .any(|i| i.id == id && i.funko == "b")
}

#[tokio::test]
async fn a_hung_build_never_delays_another_funkos_healing() {
    heals_beside(Fault::HangBuild).await;
}

#[tokio::test]
async fn a_readiness_wait_of_an_hour_never_delays_another_funkos_healing() {
    heals_beside(Fault::HangReady).await;
}

#[tokio::test]
async fn a_panic_in_one_funkos_work_fails_that_funko_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &Folder::from([("a", (1, 1)), ("b", (1, 1))]));
    let twin = Twin::default();
    twin.fail("b", Fault::Panic);
    let mut reconciler = reconciler(&twin, dir.path());
    let report = reconciler.pass(&Quiet).await.unwrap();
    let status = |name: &str| report.funkos.iter().find(|f| f.name == name).unwrap();
    assert_eq!(running(&twin, "a").len(), 1);
    assert_eq!(status("a").error, None);
    let error = status("b").error.clone().expect("b failed");
    assert!(error.contains("scripted panic starting `b`"), "{error}");
    // Held until its files change, like any failure: the next pass does not panic again.
    assert!(reconciler.pass(&Quiet).await.unwrap().plan.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hung_build_ends_at_its_timeout_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &Folder::from([("a", (1, 1))]));
    let twin = Twin::default();
    twin.fail("a", Fault::HangBuild);
    let mut reconciler = reconciler(&twin, dir.path());
    let report = reconciler.pass(&Quiet).await.unwrap();
    let error = report.funkos[0].error.clone().expect("a failed");
    assert!(error.contains("took longer than 30m"), "{error}");
    assert!(running(&twin, "a").is_empty());
}

#[tokio::test]
async fn a_funko_changed_while_its_work_hangs_starts_over_with_the_new_content() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &Folder::from([("a", (1, 1))]));
    let twin = Twin::default();
    let mut reconciler = reconciler(&twin, dir.path());
    reconciler.pass(&Quiet).await.unwrap();
    twin.fail("a", Fault::HangReady);
    write(dir.path(), &Folder::from([("a", (1, 2))]));
    let stop = CancellationToken::new();
    let watch = watching(reconciler, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The fix: version 3, and it no longer hangs.
    twin.clear_faults();
    write(dir.path(), &Folder::from([("a", (1, 3))]));
    let v3 = async {
        loop {
            let now = running(&twin, "a");
            let built: Vec<_> = twin
                .images()
                .into_iter()
                .filter(|i| i.contains("faaso-a"))
                .collect();
            if now.len() == 1
                && built.len() >= 2
                && twin
                    .journal()
                    .iter()
                    .filter(|e| matches!(e, Event::Ready(_)))
                    .count()
                    >= 2
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), v3)
        .await
        .is_err()
    {
        panic!(
            "the change did not replace the hung work: {:#?}",
            twin.journal()
        );
    }
    stop.cancel();
    watch.await.unwrap().unwrap();
}
