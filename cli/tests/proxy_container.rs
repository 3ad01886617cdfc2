//! `faaso proxy up|down` and the proxy's Docker discovery, against the real engine.
//!
//! The proxy container's own image (the `faaso` binary, FROM scratch) doubles as the funko: a
//! second `faaso proxy` listening on 3000 answers `GET /healthz`, which the containers name as
//! their health path. Everything carries this test's own prefix, labels and network, and is
//! removed at the end, also when the test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes what the test made: containers (by label), the network and the proxy image.
struct Cleanup {
    tag: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for label in [
            format!("faaso-test={}", self.tag),
            format!("{}.role=proxy", self.tag),
        ] {
            let filter = format!("label={label}");
            let ids = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for id in ids.lines() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
            let images = Command::new("docker")
                .args(["images", "-q", "--filter", &filter])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for id in images.lines() {
                let _ = Command::new("docker").args(["rmi", "-f", id]).output();
            }
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &format!("{}-net", self.tag)])
            .output();
    }
}

/// `GET path` on 127.0.0.1:port: the status code, or None when nothing answered.
fn get(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.get(9..12)?.parse().ok()
}

fn wait_for(port: u16, path: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = get(port, path);
        if last == Some(status) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("GET {path} answered {last:?}, not {status}, within {within:?}");
}

/// The global flags that keep a test's containers, labels and network its own.
fn isolated<'a>(tag: &'a str, network: &'a str) -> [&'a str; 6] {
    ["--network", network, "--prefix", tag, "--labels", tag]
}

/// Runs faaso with `args`; it must succeed.
fn run_faaso(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_faaso"))
        .args(args)
        .output()
        .expect("running faaso");
    assert!(
        output.status.success(),
        "faaso {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn proxy_up_routes_discovered_containers_and_down_removes_it() {
    let tag = format!("fpx{}", std::process::id());
    let _cleanup = Cleanup { tag: tag.clone() };
    let network = format!("{tag}-net");
    let port = free_port();
    let faaso = |args: &[&str]| run_faaso(&[&isolated(&tag, &network)[..], args].concat());
    let port_arg = port.to_string();
    // No periodic resync within the test: whatever is routed was found through an event.
    faaso(&[
        "proxy",
        "--no-access-log",
        "--resync",
        "1h",
        "up",
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
    ]);
    let proxy = format!("{tag}-proxy");
    let image = docker(&["inspect", "-f", "{{.Config.Image}}", &proxy]);
    assert_eq!(get(port, "/healthz"), Some(200));

    let test_label = format!("faaso-test={tag}");
    let health = format!("{tag}.health-path=/healthz");
    let funko_container = |name: &str, labels: &[String]| {
        let mut args = vec![
            "run".to_owned(),
            "-d".to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            "--network".to_owned(),
            network.clone(),
            "--label".to_owned(),
            test_label.clone(),
            "--label".to_owned(),
            health.clone(),
        ];
        for label in labels {
            args.extend(["--label".to_owned(), label.clone()]);
        }
        args.extend([
            image.clone(),
            "proxy".into(),
            "--listen".into(),
            "0.0.0.0:3000".into(),
        ]);
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Managed: found by its labels, whatever its name.
    let managed = funko_container(
        &format!("{tag}-anything"),
        &[format!("{tag}.managed=true"), format!("{tag}.funko=echo")],
    );
    // Not managed, named <prefix>-<x>: routed as funko <x> ("zero magic").
    funko_container(&format!("{tag}-magic"), &[]);

    wait_for(port, "/funko/echo/healthz", 200, Duration::from_secs(15));
    wait_for(port, "/funko/magic/healthz", 200, Duration::from_secs(15));
    // The proxy's own container is named like a funko but is none.
    assert_eq!(get(port, "/funko/proxy/healthz"), Some(404));

    // A stopped container leaves the table on its event, not at the next resync.
    docker(&["stop", "-t", "1", &managed]);
    wait_for(port, "/funko/echo/healthz", 404, Duration::from_secs(5));

    // A zero-magic container started alone is routed on its own event too: the managed
    // containers' events say nothing of it, and the resync is an hour away.
    funko_container(&format!("{tag}-late"), &[]);
    wait_for(port, "/funko/late/healthz", 200, Duration::from_secs(5));

    faaso(&["proxy", "down"]);
    let left = docker(&["ps", "-aq", "--filter", &format!("label={tag}.role=proxy")]);
    assert!(left.is_empty(), "the proxy container is still there");
    assert_eq!(get(port, "/healthz"), None);
}

/// Output of `docker logs` on the container's standard output only.
fn stdout_logs(container: &str) -> String {
    let output = Command::new("docker")
        .args(["logs", container])
        .output()
        .expect("running docker logs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `faaso proxy up` with no flags logs each request to the container's standard output
/// (`docker logs`); with `--access-log file` the lines go to `access.log` in the mounted state
/// folder, and a SIGHUP after logrotate moved the file makes the proxy open a new one.
#[test]
fn proxy_up_logs_requests_to_docker_logs_or_a_file_reopened_on_sighup() {
    let tag = format!("fpl{}", std::process::id());
    let _cleanup = Cleanup { tag: tag.clone() };
    let network = format!("{tag}-net");
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_owned();
    let port = free_port();
    let port_arg = port.to_string();
    let faaso = |args: &[&str]| {
        let state = ["--state-dir", state_dir.as_str()];
        run_faaso(&[&isolated(&tag, &network)[..], &state[..], args].concat());
    };
    let up = ["up", "--port", &port_arg, "--bind", "127.0.0.1"];
    let proxy = format!("{tag}-proxy");

    // Defaults: the log is on, to standard output.
    faaso(&[&["proxy"][..], &up[..]].concat());
    assert_eq!(get(port, "/funko/nobody/by-default"), Some(404));
    wait_until("the line in docker logs", Duration::from_secs(5), || {
        stdout_logs(&proxy).contains("uri=/funko/nobody/by-default")
    });
    let logs = stdout_logs(&proxy);
    let line = logs
        .lines()
        .find(|l| l.contains("uri=/funko/nobody/by-default"))
        .unwrap();
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("funko=nobody status=404"), "{line}");

    // A file in the state folder, JSON lines, reopened on SIGHUP.
    faaso(
        &[
            &[
                "proxy",
                "--access-log",
                "file",
                "--access-log-format",
                "json",
            ][..],
            &up[..],
        ]
        .concat(),
    );
    let file = state.path().join("access.log");
    let rotated = state.path().join("access.log.1");
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(get(port, "/funko/nobody/before-rotation"), Some(404));
    wait_until("the line in access.log", Duration::from_secs(5), || {
        read(&file).contains("\"uri\":\"/funko/nobody/before-rotation\"")
    });
    std::fs::rename(&file, &rotated).unwrap();
    docker(&["kill", "--signal", "HUP", &proxy]);
    wait_until("a new access.log", Duration::from_secs(5), || file.exists());
    assert_eq!(get(port, "/funko/nobody/after-rotation"), Some(404));
    wait_until(
        "the line in the new access.log",
        Duration::from_secs(5),
        || read(&file).contains("\"uri\":\"/funko/nobody/after-rotation\""),
    );
    assert!(!read(&rotated).contains("after-rotation"));
    let line = read(&file);
    assert!(line.contains("\"status\":404"), "{line}");
    // The proxy is still serving after the signal.
    assert_eq!(get(port, "/healthz"), Some(200));
    faaso(&["proxy", "down"]);
}
