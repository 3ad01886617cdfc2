//! The web UI in headless Chromium (Debian's `chromium` and `chromium-driver`), driven over
//! WebDriver against a real `faaso server` serving two example funkos: log in with the token,
//! see the funkos, scale one to 2 and watch the page follow the server until both instances
//! are ready. Needs a Docker engine and the base images from `scripts/base-images`.

mod common;
mod served;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use served::{Served, free_port};

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
    if let Ok(path) = std::env::var("FAASO_UI_SCREENSHOT")
        && let Ok(png) = browser.screenshot().await
    {
        let _ = std::fs::write(path, png);
    }
    let _ = browser.close().await;
    outcome.unwrap();
}

async fn drive(server: &Served, browser: &Client) -> Result<(), String> {
    let fail = |what: &str, e: fantoccini::error::CmdError| format!("{what}: {e}");
    browser
        .goto(&server.url("/admin/"))
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
    Ok(())
}
