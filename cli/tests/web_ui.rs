//! The web UI in headless Chromium (Debian's `chromium` and `chromium-driver`), driven over
//! WebDriver against a real `faaso server` serving two example funkos: log in with the token,
//! see the funkos, scale one to 2 and watch the page follow the server until both instances
//! are ready; follow logs; list the instances, read one's own logs and restart it; set, replace
//! and delete a secret; watch the traffic charts follow real requests; deploy a funko by picking
//! its archive (a broken one is refused first). Needs a Docker engine and the base images from
//! `scripts/base-images`.
//!
//! With `FAASO_UI_SCREENSHOTS=<folder>` it also saves the README's screenshots there
//! (`FAASO_UI_SCREENSHOTS=docs cargo test -p faaso --test web_ui`).

mod common;
mod served;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use served::{Served, free_port};
use tokio_util::sync::CancellationToken;

/// A chromedriver process, killed by its pid when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver did not start ({e}): install Debian's `chromium` and `chromium-driver` packages"
                )
            });
        Self { child, port }
    }

    /// A headless Chromium session (retrying while chromedriver starts listening).
    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            }),
        );
        let started = Instant::now();
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(client) => return client,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no Chromium session through chromedriver: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the first element matching `css`, or "" when there is none yet.
async fn text(browser: &Client, css: &str) -> String {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_logs_in_shows_the_funkos_and_scales_one() {
    let server = Served::start_with(&["hello-python", "hello-node"]).await;
    let driver = Driver::start();
    let browser = driver.session().await;
    let outcome = drive(&server, &browser).await;
    let _ = browser.close().await;
    outcome.unwrap();
}

/// A funko's page that hunts for the admin token and uses whatever it finds: what it saw and
/// what each call answered end up in `#result` as JSON. `?admin=<origin>` names the admin's.
const SPY: &str = r#"
PAGE = """<!doctype html><html><body><pre id="result"></pre><script>
(async () => {
  const admin = new URLSearchParams(location.search).get("admin");
  const found = {
    session: Object.keys(sessionStorage).map(k => [k, sessionStorage.getItem(k)]),
    local: Object.keys(localStorage).map(k => [k, localStorage.getItem(k)]),
    cookie: document.cookie,
  };
  const tokens = found.session.concat(found.local).map(([, v]) => v);
  const auth = tokens.length ? {authorization: "Bearer " + tokens[0]} : {};
  const call = async (url, init) => {
    try {
      const r = await fetch(url, Object.assign({credentials: "include"}, init));
      return r.status + " " + (await r.text()).slice(0, 300);
    } catch (e) {
      return "failed: " + e;
    }
  };
  const scale = {method: "POST", body: '{"scale": 0}'};
  found.list = await call("/admin/funkos", {headers: auth});
  found.scale = await call("/admin/funkos/spy/scale",
    Object.assign({headers: Object.assign({"content-type": "application/json"}, auth)}, scale));
  found.cross_list = await call(admin + "/admin/funkos", {headers: auth});
  found.cross_scale = await call(admin + "/admin/funkos/spy/scale",
    Object.assign({mode: "no-cors", headers: {"content-type": "text/plain"}}, scale));
  document.getElementById("result").textContent = JSON.stringify(found);
})();
</script></body></html>"""

def handle(request):
    return (200, {"content-type": "text/html; charset=utf-8"}, PAGE)
"#;

/// A funko's page opened in the same tab right after logging in to the web UI learns nothing
/// and changes nothing: the admin has its own origin, so the page sees none of its storage, its
/// own origin has no `/admin/…`, and the admin's origin neither lets it read an answer nor
/// acts on a call without the token.
#[tokio::test(flavor = "multi_thread")]
async fn a_funko_page_opened_after_logging_in_cannot_reach_the_admin() {
    let server = Served::start().await;
    let spy = server.funkos().join("spy");
    std::fs::create_dir_all(&spy).unwrap();
    std::fs::write(spy.join("handler.py"), SPY).unwrap();
    std::fs::write(spy.join("funko.yml"), "name: spy\nruntime: python\n").unwrap();
    let driver = Driver::start();
    let browser = driver.session().await;
    let outcome = spy_on_the_admin(&server, &browser).await;
    let _ = browser.close().await;
    let found = outcome.unwrap();
    let text = found.to_string();
    assert!(
        !text.contains(&server.token),
        "the page found the token: {text}"
    );
    assert_eq!(found["session"], serde_json::json!([]), "{text}");
    assert_eq!(found["local"], serde_json::json!([]), "{text}");
    assert_eq!(found["cookie"], "", "{text}");
    for call in ["list", "scale"] {
        let answer = found[call].as_str().unwrap();
        assert!(
            answer.starts_with("404 "),
            "{call} on the funko's origin: {answer}"
        );
    }
    let cross = found["cross_list"].as_str().unwrap();
    assert!(
        cross.starts_with("failed"),
        "the admin's answer was readable: {cross}"
    );
    // The blind call reached the admin without a token: refused, so nothing changed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = server.status("spy").await.unwrap();
    assert_eq!(status["desired"], 1, "{status}");
    let spec = std::fs::read_to_string(spy.join("funko.yml")).unwrap();
    assert_eq!(spec, "name: spy\nruntime: python\n");
}

/// Logs in to the web UI, then opens the spy's page in the same tab; what the page found.
async fn spy_on_the_admin(server: &Served, browser: &Client) -> Result<serde_json::Value, String> {
    let fail = |what: &str, e: fantoccini::error::CmdError| format!("{what}: {e}");
    browser
        .goto(&server.admin_url("/admin/"))
        .await
        .map_err(|e| fail("loading /admin/", e))?;
    fill(browser, "#token", &server.token).await?;
    click(browser, "#login-form button[type=submit]").await?;
    server
        .eventually(
            Duration::from_secs(240),
            "spy ready on the page",
            || async { text(browser, "tr[data-funko='spy'] td.ready").await == "1" },
        )
        .await;
    let page = format!("/funko/spy/?admin={}", server.admin_base());
    browser
        .goto(&server.url(&page))
        .await
        .map_err(|e| fail("loading the spy's page", e))?;
    let mut result = String::new();
    let started = Instant::now();
    while result.is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = text(browser, "#result").await;
    }
    serde_json::from_str(&result).map_err(|e| format!("the page's result {result:?}: {e}"))
}

/// Saves the element `css` as `<FAASO_UI_SCREENSHOTS>/<file>` when that variable is set.
async fn screenshot(browser: &Client, css: &str, file: &str) -> Result<(), String> {
    let Ok(folder) = std::env::var("FAASO_UI_SCREENSHOTS") else {
        return Ok(());
    };
    let element = browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css} for {file}: {e}"))?;
    // Scrolled to first and given a moment: a capture taken mid-scroll is offset.
    browser
        .execute(
            "arguments[0].scrollIntoView({block: 'start'})",
            vec![serde_json::to_value(&element).map_err(|e| e.to_string())?],
        )
        .await
        .map_err(|e| format!("scrolling to {css}: {e}"))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = element
        .screenshot()
        .await
        .map_err(|e| format!("screenshot of {css}: {e}"))?;
    let path = std::path::Path::new(&folder).join(file);
    std::fs::write(&path, png).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Clicks the element `css`.
async fn click(browser: &Client, css: &str) -> Result<(), String> {
    // The page redraws its lists when the server's events arrive: an element found just
    // before a redraw is gone by the click, so it is found again (a user clicks what is there).
    for _ in 0..20 {
        let element = browser
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("finding {css}: {e}"))?;
        match element.click().await {
            Err(e) if e.is_stale_element_reference() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            clicked => return clicked.map_err(|e| format!("clicking {css}: {e}")),
        }
    }
    Err(format!("clicking {css}: the page kept redrawing it"))
}

/// Clicks `css` and accepts the confirmation the page asks for.
async fn click_and_confirm(browser: &Client, css: &str) -> Result<(), String> {
    click(browser, css).await?;
    browser
        .accept_alert()
        .await
        .map_err(|e| format!("confirming after {css}: {e}"))
}

/// Replaces the text of the field `css` with `text`.
async fn fill(browser: &Client, css: &str, text: &str) -> Result<(), String> {
    let field = browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("finding {css}: {e}"))?;
    field
        .clear()
        .await
        .map_err(|e| format!("clearing {css}: {e}"))?;
    field
        .send_keys(text)
        .await
        .map_err(|e| format!("typing into {css}: {e}"))
}

/// How many elements match `css`.
async fn count(browser: &Client, css: &str) -> usize {
    browser
        .find_all(Locator::Css(css))
        .await
        .map_or(0, |found| found.len())
}

async fn drive(server: &Served, browser: &Client) -> Result<(), String> {
    let fail = |what: &str, e: fantoccini::error::CmdError| format!("{what}: {e}");
    browser
        .goto(&server.admin_url("/admin/"))
        .await
        .map_err(|e| fail("loading /admin/", e))?;

    // A wrong token is refused on the page.
    let token = browser
        .find(Locator::Css("#token"))
        .await
        .map_err(|e| fail("the token field", e))?;
    token
        .send_keys("wrong-token-0123456789abcdef")
        .await
        .map_err(|e| fail("typing", e))?;
    browser
        .find(Locator::Css("#login-form button[type=submit]"))
        .await
        .map_err(|e| fail("the login button", e))?
        .click()
        .await
        .map_err(|e| fail("clicking log in", e))?;
    server
        .eventually(
            Duration::from_secs(10),
            "the page to refuse a wrong token",
            || async { text(browser, "#login-error").await.contains("refused") },
        )
        .await;

    // The right one shows both funkos, and the page follows them until each is ready.
    token.clear().await.map_err(|e| fail("clearing", e))?;
    token
        .send_keys(&server.token)
        .await
        .map_err(|e| fail("typing", e))?;
    browser
        .find(Locator::Css("#login-form button[type=submit]"))
        .await
        .map_err(|e| fail("the login button", e))?
        .click()
        .await
        .map_err(|e| fail("clicking log in", e))?;
    for funko in ["hello-python", "hello-node"] {
        let ready = format!("tr[data-funko='{funko}'] td.ready");
        let health = format!("tr[data-funko='{funko}'] td.health");
        server
            .eventually(
                Duration::from_secs(240),
                &format!("{funko} ready on the page"),
                || async {
                    text(browser, &ready).await == "1" && text(browser, &health).await == "healthy"
                },
            )
            .await;
        // Built moments ago by this server: the age reads in seconds or minutes.
        let built = text(browser, &format!("tr[data-funko='{funko}'] td.image-age")).await;
        assert!(
            built.ends_with(" ago") && (built.contains("s ago") || built.contains("m ago")),
            "{funko}'s image age on the page: {built:?}"
        );
    }

    // Scale hello-python to 2 with the form; the page shows the server converge.
    let input = browser
        .find(Locator::Css("#scale-hello-python"))
        .await
        .map_err(|e| fail("the scale field", e))?;
    input.clear().await.map_err(|e| fail("clearing", e))?;
    input.send_keys("2").await.map_err(|e| fail("typing", e))?;
    let typed = input
        .prop("value")
        .await
        .map_err(|e| fail("reading the field", e))?;
    if typed.as_deref() != Some("2") {
        return Err(format!("the scale field holds {typed:?} after typing 2"));
    }
    browser
        .find(Locator::Css(
            "tr[data-funko='hello-python'] form button[type=submit]",
        ))
        .await
        .map_err(|e| fail("the scale button", e))?
        .click()
        .await
        .map_err(|e| fail("clicking scale", e))?;
    server
        .eventually(
            Duration::from_secs(120),
            "2 ready instances on the page",
            || async {
                text(browser, "tr[data-funko='hello-python'] td.ready").await == "2"
                    && text(browser, "tr[data-funko='hello-python'] td.desired").await == "2"
            },
        )
        .await;
    assert_eq!(server.running("hello-python").await.len(), 2);
    let events = text(browser, "#events").await;
    if !events.contains("hello-python: scaled to 2") {
        return Err(format!("the event list does not show the scale: {events}"));
    }

    // Live logs: a request that fails leaves a traceback, which the open log view shows.
    browser
        .find(Locator::Css("button[aria-label='Logs of hello-python']"))
        .await
        .map_err(|e| fail("the logs button", e))?
        .click()
        .await
        .map_err(|e| fail("clicking logs", e))?;
    let failing = served::http()
        .post(server.url("/funko/hello-python/"))
        .body("not json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(failing.status(), 500);
    server
        .eventually(
            Duration::from_secs(30),
            "the traceback in the log view",
            || async {
                let logs = text(browser, "#logs-output").await;
                logs.contains("hello-python-") && logs.contains("Traceback")
            },
        )
        .await;

    instances(server, browser).await?;
    secrets(server, browser).await?;
    traffic(server, browser).await?;
    deploy(server, browser).await
}

/// The instances panel: both instances current and ready with an uptime; one's own logs; a
/// restart that Docker sees and the page follows.
async fn instances(server: &Served, browser: &Client) -> Result<(), String> {
    click(browser, "button[aria-label='Instances of hello-python']").await?;
    let rows = "#instance-table tbody tr";
    server
        .eventually(
            Duration::from_secs(30),
            "two ready, current instances in the panel",
            || async {
                count(browser, rows).await == 2
                    && count(browser, &format!("{rows} td.health-ready")).await == 2
                    && text(browser, &format!("{rows}:nth-child(1) td.config")).await == "current"
                    && text(browser, &format!("{rows}:nth-child(2) td.config")).await == "current"
                    && text(browser, &format!("{rows}:nth-child(1) td.state")).await == "running"
            },
        )
        .await;
    let first = text(browser, &format!("{rows}:nth-child(1) th.name")).await;
    let second = text(browser, &format!("{rows}:nth-child(2) th.name")).await;
    let running = server.running("hello-python").await;
    let names: Vec<String> = running
        .iter()
        .filter_map(|c| c.names.as_ref()?.first().map(|n| n[1..].to_owned()))
        .collect();
    if !names.contains(&first) || !names.contains(&second) || first == second {
        return Err(format!(
            "the panel lists {first:?} and {second:?}; Docker runs {names:?}"
        ));
    }
    let uptime = text(browser, &format!("{rows}:nth-child(1) td.uptime")).await;
    if !uptime.ends_with('s') && !uptime.ends_with('m') {
        return Err(format!("{first}'s uptime on the page: {uptime:?}"));
    }
    screenshot(browser, "#instances", "ui-instances.png").await?;

    // Its own logs: only its lines, and (after requests that fail on both) its traceback.
    click(browser, &format!("button[aria-label='Logs of {first}']")).await?;
    for _ in 0..4 {
        let answer = served::http()
            .post(server.url("/funko/hello-python/"))
            .body("not json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(answer.status(), 500);
    }
    server
        .eventually(
            Duration::from_secs(30),
            "the instance's own traceback in the log view",
            || async {
                text(browser, "#logs-funko").await == first
                    && text(browser, "#logs-output").await.contains("Traceback")
            },
        )
        .await;
    let logs = text(browser, "#logs-output").await;
    let prefix = format!("{first} | ");
    if let Some(line) = logs.lines().find(|l| !l.starts_with(&prefix)) {
        return Err(format!(
            "a line of another instance in {first}'s logs: {line:?}"
        ));
    }

    // A restart: Docker starts it anew, and the page shows it ready again with a fresh uptime.
    let started = |inspected: bollard::models::ContainerInspectResponse| {
        inspected
            .state
            .and_then(|s| s.started_at)
            .unwrap_or_default()
    };
    let before = started(
        server
            .docker
            .inspect_container(&first, None)
            .await
            .map_err(|e| format!("inspecting {first}: {e}"))?,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    click_and_confirm(browser, &format!("button[aria-label='Restart {first}']")).await?;
    server
        .eventually(
            Duration::from_secs(30),
            "the page to report the restart",
            || async { text(browser, "#notice").await == format!("{first} restarted.") },
        )
        .await;
    let after = started(
        server
            .docker
            .inspect_container(&first, None)
            .await
            .map_err(|e| format!("inspecting {first}: {e}"))?,
    );
    if after <= before {
        return Err(format!(
            "{first} was not restarted: started at {before}, then {after}"
        ));
    }
    let row = format!("{rows}[data-instance='{first}']");
    server
        .eventually(
            Duration::from_secs(60),
            "the restarted instance ready again, with a fresh uptime",
            || async {
                let uptime = text(browser, &format!("{row} td.uptime")).await;
                let seconds = uptime.strip_suffix('s').and_then(|n| n.parse::<u64>().ok());
                text(browser, &format!("{row} td.health")).await == "ready"
                    && seconds.is_some_and(|n| n < 60)
            },
        )
        .await;
    click(browser, "#instances-close").await?;
    click(browser, "#logs-stop").await
}

/// Secrets from the page: set, listed by key only, replaced, deleted; the value is in the
/// server's store and nowhere on the page.
async fn secrets(server: &Served, browser: &Client) -> Result<(), String> {
    let stored = server.tmp.path().join("state/secrets/hello-python/api-key");
    let row = "tr[data-secret='hello-python/api-key']";
    fill(browser, "#secret-funko", "hello-python").await?;
    fill(browser, "#secret-key", "api-key").await?;
    fill(browser, "#secret-value", "first-value-7f3a").await?;
    click(browser, "#secret-form button[type=submit]").await?;
    server
        .eventually(
            Duration::from_secs(15),
            "the new secret's key listed",
            || async { text(browser, &format!("{row} td.key")).await == "api-key" },
        )
        .await;
    let value = std::fs::read_to_string(&stored).map_err(|e| format!("the stored secret: {e}"))?;
    assert_eq!(value, "first-value-7f3a");
    let page = browser.source().await.map_err(|e| e.to_string())?;
    let field = browser
        .find(Locator::Css("#secret-value"))
        .await
        .map_err(|e| e.to_string())?
        .prop("value")
        .await
        .map_err(|e| e.to_string())?;
    if page.contains("first-value-7f3a") || field.as_deref() != Some("") {
        return Err(format!(
            "the secret's value stayed on the page (field: {field:?})"
        ));
    }
    screenshot(
        browser,
        "section[aria-labelledby='secrets-title']",
        "ui-secrets.png",
    )
    .await?;

    click(browser, "button[aria-label='Replace hello-python/api-key']").await?;
    if text(browser, "#secret-form-title").await != "Replace hello-python/api-key" {
        return Err("Replace does not say which secret the form replaces".into());
    }
    fill(browser, "#secret-value", "second-value-91c2").await?;
    click(browser, "#secret-form button[type=submit]").await?;
    server
        .eventually(
            Duration::from_secs(15),
            "the replaced value stored",
            || async { std::fs::read_to_string(&stored).is_ok_and(|v| v == "second-value-91c2") },
        )
        .await;

    click_and_confirm(browser, "button[aria-label='Delete hello-python/api-key']").await?;
    server
        .eventually(Duration::from_secs(15), "the secret gone", || async {
            count(browser, row).await == 0 && !stored.exists()
        })
        .await;
    if !text(browser, "#no-secrets").await.contains("No secrets") {
        return Err("the page does not say there are no secrets left".into());
    }
    Ok(())
}

/// The charts follow real traffic: steady requests to hello-node, failing ones to hello-python.
async fn traffic(server: &Served, browser: &Client) -> Result<(), String> {
    let stop = CancellationToken::new();
    let load = {
        let (stop, ok, failing) = (
            stop.clone(),
            server.url("/funko/hello-node/"),
            server.url("/funko/hello-python/"),
        );
        tokio::spawn(async move {
            let client = served::http();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for n in 0u64.. {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let _ = client.get(&ok).send().await;
                if n % 4 == 0 {
                    let _ = client.post(&failing).body("not json").send().await;
                }
            }
        })
    };
    let value = |funko: &'static str, metric: &'static str| {
        format!(".chart-row[data-funko='{funko}'] .chart[data-metric='{metric}'] .value")
    };
    let number = |shown: String| {
        let digits: String = shown
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        digits.parse::<f64>().ok()
    };
    server
        .eventually(
            Duration::from_secs(60),
            "charts showing the traffic",
            || async {
                let rps = number(text(browser, &value("hello-node", "rps")).await);
                let latency = text(browser, &value("hello-node", "latency")).await;
                let node_errors = number(text(browser, &value("hello-node", "errors")).await);
                let python_errors = number(text(browser, &value("hello-python", "errors")).await);
                let node_instances = text(browser, &value("hello-node", "instances")).await;
                let python_instances = text(browser, &value("hello-python", "instances")).await;
                rps.is_some_and(|r| r > 1.0)
                    && latency.contains(" ms / ")
                    && node_errors == Some(0.0)
                    && python_errors.is_some_and(|e| e > 0.0)
                    && node_instances == "1"
                    && python_instances == "2"
            },
        )
        .await;
    // For the README, the charts get a minute of history to draw.
    if std::env::var_os("FAASO_UI_SCREENSHOTS").is_some() {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let lines = count(
        browser,
        ".chart-row[data-funko='hello-node'] .chart[data-metric='rps'] polyline",
    )
    .await;
    let dots = count(
        browser,
        ".chart-row[data-funko='hello-node'] .chart[data-metric='rps'] circle",
    )
    .await;
    stop.cancel();
    let _ = load.await;
    if lines + dots == 0 {
        return Err("the requests/s chart draws nothing".into());
    }
    screenshot(browser, "#traffic", "ui-traffic.png").await
}

/// Deploying by picking an archive: a broken one is refused with the server's reason, a real
/// one is built, started and served.
async fn deploy(server: &Served, browser: &Client) -> Result<(), String> {
    let broken = server.tmp.path().join("broken.tar.gz");
    std::fs::write(&broken, "this is not a tarball").map_err(|e| e.to_string())?;
    let file = browser
        .find(Locator::Css("#deploy-file"))
        .await
        .map_err(|e| format!("the file field: {e}"))?;
    file.send_keys(&broken.display().to_string())
        .await
        .map_err(|e| format!("picking the archive: {e}"))?;
    let name = browser
        .find(Locator::Css("#deploy-name"))
        .await
        .map_err(|e| e.to_string())?
        .prop("value")
        .await
        .map_err(|e| e.to_string())?;
    if name.as_deref() != Some("broken") {
        return Err(format!("the name taken from broken.tar.gz: {name:?}"));
    }
    click(browser, "#deploy-form button[type=submit]").await?;
    server
        .eventually(
            Duration::from_secs(15),
            "the broken archive refused with the server's reason",
            || async {
                text(browser, "#deploy-error")
                    .await
                    .contains("not a gzipped tar")
            },
        )
        .await;
    screenshot(browser, "#deploy", "ui-deploy.png").await?;
    if server.funkos().join("broken").exists() {
        return Err("a refused upload left a funko folder".into());
    }

    // A real funko folder, archived as the page tells (`tar czf <name>.tar.gz -C <folder> .`).
    let folder = server.tmp.path().join("web-upload");
    std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
    std::fs::write(
        folder.join("funko.yml"),
        "name: web-upload\nruntime: python\n",
    )
    .map_err(|e| e.to_string())?;
    let handler = common::repo_root().join("funkos/hello-python/handler.py");
    std::fs::copy(handler, folder.join("handler.py")).map_err(|e| e.to_string())?;
    let archive = server.tmp.path().join("web-upload.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(&folder)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !tar.success() {
        return Err(format!("tar czf failed: {tar}"));
    }
    fill(browser, "#deploy-name", "").await?;
    let file = browser
        .find(Locator::Css("#deploy-file"))
        .await
        .map_err(|e| format!("the file field: {e}"))?;
    file.send_keys(&archive.display().to_string())
        .await
        .map_err(|e| format!("picking the archive: {e}"))?;
    click(browser, "#deploy-form button[type=submit]").await?;
    server
        .eventually(
            Duration::from_secs(15),
            "the page to report the upload",
            || async {
                text(browser, "#deploy-status")
                    .await
                    .starts_with("web-upload deployed")
            },
        )
        .await;
    if !text(browser, "#deploy-error").await.is_empty() {
        return Err("the error of the broken upload is still shown".into());
    }
    server
        .eventually(
            Duration::from_secs(240),
            "the uploaded funko healthy on the page",
            || async { text(browser, "tr[data-funko='web-upload'] td.health").await == "healthy" },
        )
        .await;
    let answer = served::http()
        .get(server.url("/funko/web-upload/?name=page"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = answer.text().await.map_err(|e| e.to_string())?;
    if body != "Hello, page!\n" {
        return Err(format!("the uploaded funko answered {body:?}"));
    }
    screenshot(
        browser,
        "section[aria-labelledby='funkos-title']",
        "ui-funkos.png",
    )
    .await
}
