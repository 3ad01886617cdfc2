//! The admin API against its OpenAPI description, fuzzed: Schemathesis (`scripts/schemathesis`,
//! pinned, installed under target/ at first use) generates requests from `admin/openapi.json`,
//! valid and invalid, sends them to a live `faaso server` on the real engine (its own prefix,
//! labels and network) and checks every answer against the description: status, content type,
//! headers, body schema (the event stream's events too), that invalid input is refused and valid
//! input accepted, and that the token is never ignored.
//!
//! A short run (a few cases per operation, about a minute) is part of the suite;
//! `FAASO_FUZZ=long` runs many more cases for `FAASO_FUZZ_SECONDS` (default 600). The seed is
//! printed; `FAASO_FUZZ_SEED` replays one.

mod common;
mod served;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{repo_root, write_funko};
use served::Served;

/// A funko whose build fails at once (no base image, a step that fails) and is not tried again
/// until its files change: whatever scale the fuzzer sets, no container starts.
const HELLO: &[(&str, &str)] = &[
    ("funko.yml", "name: hello\nscale: 0\n"),
    ("Dockerfile", "FROM scratch\nRUN false\n"),
];

/// The keys of an OpenAPI path item that are operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_answers_as_its_openapi_description_says_under_fuzzing() {
    let server = Served::start().await;
    // A funko to aim at: the description's example name.
    // Put back whenever the fuzzer deletes it, so later cases reach more than a 404.
    let funkos = server.funkos();
    let staging = server.tmp.path().join("staging");
    let done = Arc::new(AtomicBool::new(false));
    let keeper = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if !funkos.join("hello/funko.yml").is_file() {
                    // Written aside and renamed in, so a request never meets a half-written
                    // folder (one without its funko.yml is rightly refused with a 422).
                    let staged = write_funko(&staging, "hello", HELLO);
                    if std::fs::rename(&staged, funkos.join("hello")).is_err() {
                        // Something else is there: complete it in place.
                        let _ = std::fs::remove_dir_all(&staged);
                        write_funko(&funkos, "hello", HELLO);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let long = std::env::var("FAASO_FUZZ").is_ok_and(|v| v == "long");
    let mut command = Command::new(repo_root().join("scripts/schemathesis"));
    let spec = repo_root().join("admin/openapi.json");
    command
        .arg("run")
        .arg(&spec)
        .args(["--url", &server.admin_base()])
        .args(["-H", &format!("Authorization: Bearer {}", server.token)])
        .args(["--checks", "all"])
        // A delete is asynchronous (202): `GET /admin/funkos/{name}` answers from the last pass's
        // board, which keeps a funko whose folder is gone while its instances drain (its status
        // says so), and `hello` is put back when deleted. A 200 after a delete is right here.
        .args(["--exclude-checks", "use_after_free"])
        .args(["--workers", "2"])
        // The event stream never ends: it is read for this long, its events checked.
        .args(["--request-timeout", "3"])
        .args(["--suppress-health-check", "too_slow"])
        .current_dir(server.tmp.path())
        .env("NO_COLOR", "1");
    if long {
        let seconds = std::env::var("FAASO_FUZZ_SECONDS").unwrap_or_else(|_| "600".into());
        command.args(["--max-examples", "1000", "--max-time", &seconds]);
    } else {
        command.args(["--max-examples", "20"]);
    }
    if let Ok(seed) = std::env::var("FAASO_FUZZ_SEED") {
        command.args(["--seed", &seed]);
    }
    let output = command.output();
    done.store(true, Ordering::Relaxed);
    keeper.join().unwrap();
    let output = output.expect("scripts/schemathesis should start");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the fuzzer found disagreements between the admin API and admin/openapi.json\n{stdout}\n{stderr}\n--- server log\n{}",
        server.log()
    );
    // It ran every documented operation (a filter or a broken description would skip some).
    let description: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    let operations: usize = description["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().keys())
        .filter(|key| METHODS.contains(&key.as_str()))
        .count();
    assert!(
        stdout.contains(&format!("{operations} selected"))
            || stdout.contains(&format!("{operations} total")),
        "expected {operations} operations tested\n{stdout}"
    );
}
