//! The framework runtimes as the quick start serves them: `faaso server` builds the flask and
//! express examples, runs them hardened (read-only root, no capabilities, uid 10001) and routes
//! `/funko/<name>/` to them through its proxy, whose forwarded headers the frameworks honour.
//! Needs a Docker engine and the base images from `scripts/base-images`.

mod common;
mod served;

use std::time::Duration;

use served::{Served, http};

/// The framework examples, each served by its runtime's local base image.
const EXAMPLES: [&str; 2] = ["hello-flask", "hello-express"];

#[tokio::test(flavor = "multi_thread")]
async fn the_server_serves_the_flask_and_express_examples() {
    let server = Served::start_with(&EXAMPLES).await;
    for image in ["faaso-base/flask:bookworm", "faaso-base/express:bookworm"] {
        assert!(
            server.docker.inspect_image(image).await.is_ok(),
            "base image {image} is missing: run scripts/base-images first"
        );
    }
    server
        .eventually(Duration::from_secs(240), "both examples ready", || async {
            let mut ready = true;
            for funko in EXAMPLES {
                let status = server.status(funko).await;
                ready &= status.is_some_and(|s| s["ready"] == 1);
            }
            ready
        })
        .await;
    let client = http();
    let get = |path: &str| client.get(server.url(path)).send();

    let hello = get("/funko/hello-flask/?name=you").await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.unwrap(), "Hello, you!\n");
    // url_for() sees the proxy's X-Forwarded-Prefix.
    let links: serde_json::Value = get("/funko/hello-flask/links")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        links,
        serde_json::json!({"hello": "/funko/hello-flask/", "echo": "/funko/hello-flask/echo"})
    );

    let hello = get("/funko/hello-express/?name=you").await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.unwrap(), "Hello, you!\n");
    let user: serde_json::Value = get("/funko/hello-express/users/7")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user, serde_json::json!({"id": "7"}));
    // A path the router does not know is Express's own 404, not the runtime's /ping or a 5xx.
    let missing = get("/funko/hello-express/nowhere").await.unwrap();
    assert_eq!(missing.status(), 404);

    for funko in EXAMPLES {
        let echo = client
            .post(server.url(&format!("/funko/{funko}/echo")))
            .json(&serde_json::json!({"n": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(echo.status(), 200, "{funko}");
        let body: serde_json::Value = echo.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"you_sent": {"n": 1}}), "{funko}");
    }
}
