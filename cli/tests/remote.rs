//! The remote CLI against a real `faaso server` on the real engine: log in, deploy a funko,
//! reach it through the server's proxy, scale it, give it a secret, stop it; and the admin API's
//! refusal of every call without the right token. Needs a Docker engine and the base images
//! from `scripts/base-images`.

mod common;
mod served;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::write_funko;
use served::{Served, http};

/// A python funko that tells whether its secret file is there (and what it holds).
const HANDLER: &str = r#"
def handle(request):
    try:
        with open("/secrets/api-key") as f:
            return "key: " + f.read()
    except FileNotFoundError:
        return "key: missing"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_funko_deployed_from_the_cli_is_served_scaled_given_a_secret_and_stopped() {
    let server = Served::start().await;
    let secret = "s3cr3t-value-7f3a";

    // login: checked against the server, kept private.
    server
        .cli(
            &["login", &server.admin_base(), "--token", &server.token],
            &[],
            "",
        )
        .success();
    let config = server.config_home().join("faaso/config.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().unwrap()), 0o700);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["server"], server.admin_base());

    // deploy: uploaded, built and rolled out by the server; the CLI waits for it.
    let dir = write_funko(
        server.tmp.path(),
        "src/web",
        &[
            (
                "funko.yml",
                "name: web\nruntime: python\nsecrets: [api-key]\n",
            ),
            ("handler.py", HANDLER),
        ],
    );
    let deployed = server
        .cli(&["deploy", common::arg(&dir)], &[], "")
        .success();
    assert!(deployed.stdout.contains("web: serving at"), "{deployed}");
    let answer = http().get(server.url("/funko/web/")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "key: missing");

    let status = server.cli(&["status"], &[], "").success();
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("no row for web\n{status}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..3], ["web", "1", "1"], "{status}");

    // scale: two instances, both ready when the command returns.
    server.cli(&["scale", "web", "2"], &[], "").success();
    assert_eq!(server.running("web").await.len(), 2);

    // secret: from stdin, never echoed; the instances roll and read it from /secrets/<key>.
    let before: Vec<String> = server
        .running("web")
        .await
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let set = server
        .cli(
            &["secret", "set", "web", "api-key"],
            &[],
            &format!("{secret}\n"),
        )
        .success();
    assert!(
        !set.stdout.contains(secret) && !set.stderr.contains(secret),
        "{set}"
    );
    server
        .eventually(
            Duration::from_secs(180),
            "web serving its secret",
            || async {
                let answer = http().get(server.url("/funko/web/")).send().await;
                match answer {
                    Ok(answer) => {
                        answer.text().await.unwrap_or_default() == format!("key: {secret}")
                    }
                    Err(_) => false,
                }
            },
        )
        .await;
    server
        .eventually(
            Duration::from_secs(120),
            "two new instances of web",
            || async {
                let running = server.running("web").await;
                running.len() == 2
                    && running
                        .iter()
                        .all(|c| !before.contains(c.id.as_ref().unwrap()))
            },
        )
        .await;
    for container in server.running("web").await {
        let inspect = server
            .docker
            .inspect_container(container.id.as_deref().unwrap(), None)
            .await
            .unwrap();
        let text = serde_json::to_string(&inspect).unwrap();
        assert!(
            !text.contains(secret),
            "the secret value shows in docker inspect"
        );
        let env = inspect.config.unwrap().env.unwrap_or_default();
        assert!(env.iter().all(|e| !e.contains(secret)));
    }
    let listed = server.cli(&["secret", "ls"], &[], "").success();
    assert!(
        listed.stdout.contains("web") && listed.stdout.contains("api-key"),
        "{listed}"
    );
    assert!(!listed.stdout.contains(secret), "{listed}");

    // logs: every instance's lines, prefixed by the instance.
    let logs = server
        .cli(&["logs", "web", "--tail", "20"], &[], "")
        .success();
    assert!(!logs.stdout.contains(secret), "{logs}");

    // down: scale 0, no instance left.
    server.cli(&["down", "web"], &[], "").success();
    assert!(server.running("web").await.is_empty());
    let status = server.cli(&["status", "--json"], &[], "").success();
    let statuses: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(statuses[0]["desired"], 0, "{status}");

    // purge: scale 0 (already), then its images go; the folder stays.
    let images = |server: &Served| {
        let output = std::process::Command::new("docker")
            .args(["images", "-q", "--filter"])
            .arg(format!("label={}.funko=web", server.id))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    assert!(images(&server) > 0, "web has an image before the purge");
    let purged = server.cli(&["purge", "web"], &[], "").success();
    assert!(purged.stdout.contains("web: purged"), "{purged}");
    assert_eq!(images(&server), 0, "{purged}");
    assert!(server.funkos().join("web/funko.yml").is_file());
    let scale = server.cli(&["scale", "web"], &[], "").success();
    assert_eq!(scale.stdout, "web: scale 0\n", "{scale}");

    server.cli(&["logout"], &[], "").success();
    assert!(!config.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_from_one_client_are_slowed_and_its_guesses_not_looked_at() {
    let server = Served::start().await;
    let client = http();
    let ask = |token: String| {
        client
            .get(server.admin_url("/admin/funkos"))
            .bearer_auth(token)
            .send()
    };
    for guess in 0..5 {
        let answer = ask(format!("wrong-token-{guess:020}")).await.unwrap();
        assert_eq!(answer.status(), 401, "free guess {guess}");
    }
    assert_eq!(ask("wrong-token-sixth".into()).await.unwrap().status(), 401);
    // Now even the right token waits: no request of this client is looked at.
    let held = ask(server.token.clone()).await.unwrap();
    assert_eq!(held.status(), 429);
    let wait: u64 = held.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // After the wait the right token is let in, and the client starts afresh.
    assert_eq!(ask(server.token.clone()).await.unwrap().status(), 200);
    assert_eq!(ask("wrong-token-again".into()).await.unwrap().status(), 401);
    assert_eq!(ask(server.token.clone()).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_route_refuses_a_missing_or_wrong_token() {
    let server = Served::start().await;
    let routes = [
        ("GET", "/admin/funkos"),
        ("GET", "/admin/funkos/web"),
        ("PUT", "/admin/funkos/web"),
        ("DELETE", "/admin/funkos/web"),
        ("POST", "/admin/funkos/web/scale"),
        ("GET", "/admin/funkos/web/logs?follow=1"),
        ("DELETE", "/admin/funkos/web/images"),
        ("GET", "/admin/version"),
        ("GET", "/admin/events"),
        ("GET", "/admin/secrets"),
        ("PUT", "/admin/secrets/web/api-key"),
        ("DELETE", "/admin/secrets/web/api-key"),
    ];
    let client = http();
    let wrong = [
        None,
        Some("Bearer wrong-token-0123456789abcdef".to_owned()),
        Some(format!("Bearer {}x", server.token)),
        Some(format!("Basic {}", server.token)),
        Some(server.token.clone()),
    ];
    for (method, path) in routes {
        for authorization in &wrong {
            let mut request = client
                .request(method.parse().unwrap(), server.admin_url(path))
                .body("{\"scale\": 1}");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let answer = request.send().await.unwrap();
            // Refused: 401, or 429 once this client has sent too many wrong tokens.
            match answer.status().as_u16() {
                401 => assert!(
                    answer.headers().contains_key("www-authenticate"),
                    "{method} {path}: no WWW-Authenticate"
                ),
                429 => assert!(
                    answer.headers().contains_key("retry-after"),
                    "{method} {path}: no Retry-After"
                ),
                status => panic!("{method} {path} with {authorization:?}: {status}"),
            }
        }
    }
    // The web UI's page is public and holds no data.
    let page = client
        .get(server.admin_url("/admin/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Admin token"));
}

/// The CLI: a wrong token says to log in; a refused login keeps nothing. (A server of its own:
/// the routes above leave their client slowed for its wrong tokens.)
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_at_the_cli_says_to_log_in_and_a_refused_login_keeps_nothing() {
    let server = Served::start().await;
    let refused = server
        .cli(
            &["--server", &server.admin_base(), "status"],
            &[("FAASO_TOKEN", "wrong-token-0123456789abcdef")],
            "",
        )
        .failure();
    assert!(refused.stderr.contains("faaso login"), "{refused}");
    server
        .cli(
            &["login", &server.admin_base()],
            &[],
            "wrong-token-0123456789abcdef\n",
        )
        .failure();
    assert!(!server.config_home().join("faaso/config.json").exists());
    let ok = server
        .cli(
            &["--server", &server.admin_base(), "status"],
            &[("FAASO_TOKEN", &server.token)],
            "",
        )
        .success();
    assert!(ok.stdout.starts_with("FUNKO"), "{ok}");
}

/// The admin API, web UI, OpenAPI, event stream and metrics answer on the admin listener and
/// nowhere else: on the funkos' port `/admin/…` is an unknown path like any other (a funko's
/// page, served from that origin, cannot reach the admin with the browser's credentials), and a
/// login to that port says where the admin is.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_answers_on_its_own_listener_only() {
    let server = Served::start().await;
    let client = http();
    let admin_paths = [
        "/admin",
        "/admin/",
        "/admin/funkos",
        "/admin/openapi.json",
        "/admin/events",
        "/admin/ui/app.js",
        "/metrics",
    ];
    for path in admin_paths {
        let on_funko_port = client
            .get(server.url(path))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(on_funko_port.status(), 404, "{path} on the funko port");
        let body: serde_json::Value = on_funko_port.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    for (path, kind) in [
        ("/admin/funkos", "application/json"),
        ("/admin/", "text/html"),
        ("/admin/openapi.json", "application/json"),
        ("/metrics", "text/plain"),
        ("/healthz", "application/json"),
    ] {
        let answer = client
            .get(server.admin_url(path))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path} on the admin port");
        let content_type = answer.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    // The event stream answers there (its first bytes are enough).
    let events = client
        .get(server.admin_url("/admin/events"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(events);
    // And no funko is served from the admin's origin.
    let funko = client
        .get(server.admin_url("/funko/web/"))
        .send()
        .await
        .unwrap();
    assert_eq!(funko.status(), 404);

    let wrong_port = server
        .cli(
            &["login", &server.base(), "--token", &server.token],
            &[],
            "",
        )
        .failure();
    assert!(wrong_port.stderr.contains("--admin-listen"), "{wrong_port}");
    assert!(!server.config_home().join("faaso/config.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn version_names_client_and_server_and_a_secret_typed_on_a_terminal_may_span_lines() {
    let server = Served::start().await;
    let base = server.admin_base();
    let env = [
        ("FAASO_SERVER", base.as_str()),
        ("FAASO_TOKEN", &server.token),
    ];
    let ours = env!("CARGO_PKG_VERSION");
    let version = server.cli(&["version"], &env, "").success();
    let expected = format!("client: faaso {ours}\nserver: faaso {ours} at {base}\n");
    assert_eq!(version.stdout, expected, "{version}");
    assert!(!version.stderr.contains("warning"), "{version}");
    // `-l`: the local engine, so no server to ask.
    let local = server.cli(&["-l", "version"], &env, "").success();
    assert_eq!(local.stdout, format!("client: faaso {ours}\n"), "{local}");

    // build: on the server, reported, nothing rolled out; the same files again reuse it.
    let dir = write_funko(
        server.tmp.path(),
        "src/built",
        &[
            ("funko.yml", "name: built\nruntime: python\n"),
            ("handler.py", "def handle(request):\n    return 'built'\n"),
        ],
    );
    let built = server
        .cli(&["build", common::arg(&dir)], &env, "")
        .success();
    let prefix = format!("built: built {}-built:", server.id);
    assert!(built.stdout.starts_with(&prefix), "{built}");
    let image = built.stdout.split_whitespace().nth(2).unwrap().to_owned();
    assert!(server.docker.inspect_image(&image).await.is_ok(), "{built}");
    assert!(
        !server.funkos().join("built").exists(),
        "a build deploys nothing"
    );
    assert!(server.running("built").await.is_empty());
    let again = server
        .cli(&["build", common::arg(&dir)], &env, "")
        .success();
    assert_eq!(
        again.stdout,
        format!("built: {image} is up to date\n"),
        "{again}"
    );

    // Typed on a terminal (`script` gives faaso one): lines until Ctrl-D, none echoed. The input
    // comes a moment after start, as a person types after the prompt.
    let command = format!("{} secret set web multi", env!("CARGO_BIN_EXE_faaso"));
    let mut script = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("FAASO_SERVER", &base)
        .env("FAASO_TOKEN", &server.token)
        .env("XDG_CONFIG_HOME", server.config_home())
        .current_dir(server.tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) should start");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let typed = "first line\nsecond line\n\u{4}";
    std::io::Write::write_all(script.stdin.as_mut().unwrap(), typed.as_bytes()).unwrap();
    let output = script.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("end with Ctrl-D"), "{shown}");
    assert!(shown.contains("secret `multi` set"), "{shown}");
    assert!(!shown.contains("first line"), "echoed: {shown}");
    let stored = server.tmp.path().join("state/secrets/web/multi");
    let stored = std::fs::read_to_string(stored).unwrap();
    assert_eq!(stored, "first line\nsecond line");

    // An empty value is refused by the CLI before it reaches the server.
    let empty = server
        .cli(&["secret", "set", "web", "blank"], &env, "")
        .failure();
    assert!(empty.stderr.contains("is empty"), "{empty}");
}
