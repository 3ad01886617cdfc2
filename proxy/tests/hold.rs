//! Held requests against real backend containers and real HTTP: a funko with no free instance
//! holds requests in a bounded queue, raises demand once, and releases them the moment an
//! instance is ready (or answers them at once when the wake fails or the funko goes).
//!
//! Needs a Docker engine; each test runs its own backend on its own network.

#[allow(dead_code)]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faaso_proxy::{FunkoSettings, InstanceId, ProxyConfig};
use futures_util::future::join_all;
use hyper::StatusCode;
use support::{Lab, RunningProxy, get, json};

fn config() -> ProxyConfig {
    ProxyConfig {
        access_log: false,
        ..ProxyConfig::default()
    }
}

fn holding(queue: usize, limit: Option<usize>, timeout: Duration) -> FunkoSettings {
    FunkoSettings {
        request_timeout: timeout,
        queue,
        limit,
        ..FunkoSettings::default()
    }
}

/// A proxy whose demand signals are recorded, with funko `hello` known and at zero.
async fn at_zero(settings: FunkoSettings) -> (RunningProxy, Arc<Mutex<Vec<String>>>) {
    let proxy = RunningProxy::start(config()).await;
    let demands = Arc::new(Mutex::new(Vec::new()));
    let seen = demands.clone();
    proxy
        .routes
        .on_demand(move |funko| seen.lock().unwrap().push(funko.to_owned()));
    proxy.routes.set_funko("hello", settings);
    (proxy, demands)
}

type Answer = (StatusCode, hyper::HeaderMap, bytes::Bytes);

/// `n` concurrent GETs of `url`, sent from a task of their own.
fn fire(url: String, n: usize) -> tokio::task::JoinHandle<Vec<Answer>> {
    tokio::spawn(async move { join_all((0..n).map(|_| get(&url))).await })
}

async fn held(proxy: &RunningProxy, n: usize) {
    for _ in 0..500 {
        if proxy.routes.load().get("hello").map(|r| r.held()) == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {n} held requests");
}

#[tokio::test]
async fn held_requests_raise_demand_once_and_are_released_when_an_instance_is_ready() {
    let lab = Lab::new("hold-release");
    let backend = lab.start("a", &[]);
    let (proxy, demands) = at_zero(holding(100, None, Duration::from_secs(30))).await;
    let url = proxy.url("/funko/hello/hello");
    let requests = fire(url, 20);
    held(&proxy, 20).await;
    assert_eq!(
        *demands.lock().unwrap(),
        ["hello"],
        "one wake for 20 requests"
    );

    let ready = Instant::now();
    proxy
        .routes
        .insert_ready("hello", InstanceId::new(backend.id.as_str()), backend.addr);
    let answers = requests.await.unwrap();
    let released = ready.elapsed();
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| *status == StatusCode::OK)
    );
    assert_eq!(proxy.routes.load().get("hello").unwrap().held(), 0);
    // Generous: the point is that they were released by the change, not by a timeout.
    assert!(released < Duration::from_secs(5), "{released:?}");
}

#[tokio::test]
async fn a_full_queue_refuses_exactly_the_overflow_at_once() {
    let lab = Lab::new("hold-overflow");
    let backend = lab.start("a", &[]);
    let (proxy, _) = at_zero(holding(3, None, Duration::from_secs(30))).await;
    let url = proxy.url("/funko/hello/hello");
    let first = fire(url.clone(), 3);
    held(&proxy, 3).await;

    let overflow = join_all((0..7).map(|_| get(&url))).await;
    for (status, headers, body) in &overflow {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "1");
        assert!(json(body)["error"].as_str().unwrap().contains("3 waiting"));
    }
    proxy
        .routes
        .insert_ready("hello", InstanceId::new(backend.id.as_str()), backend.addr);
    let first = first.await.unwrap();
    assert!(first.iter().all(|(status, _, _)| *status == StatusCode::OK));
    let metrics = get(&proxy.url("/metrics")).await.2;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(
            "faaso_proxy_refused_requests_total{funko=\"hello\",reason=\"queue_full\"} 7"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failed_wake_answers_held_requests_at_once_with_its_reason() {
    let (proxy, _) = at_zero(holding(10, None, Duration::from_secs(30))).await;
    let url = proxy.url("/funko/hello/hello");
    let requests = fire(url, 4);
    held(&proxy, 4).await;
    let failed = Instant::now();
    proxy.routes.wake_failed("hello", "its build failed");
    for (status, _, body) in requests.await.unwrap() {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            json(&body)["error"]
                .as_str()
                .unwrap()
                .contains("its build failed")
        );
    }
    assert!(failed.elapsed() < Duration::from_secs(2));
    // A later request is held again: the failure was for the wake that failed.
    let later = fire(proxy.url("/funko/hello/hello"), 1);
    held(&proxy, 1).await;
    later.abort();
}

#[tokio::test]
async fn a_funko_removed_while_requests_wait_answers_them_404() {
    let (proxy, _) = at_zero(holding(10, None, Duration::from_secs(30))).await;
    let url = proxy.url("/funko/hello/hello");
    let requests = fire(url, 3);
    held(&proxy, 3).await;
    proxy.routes.remove_funko("hello");
    for (status, _, body) in requests.await.unwrap() {
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(json(&body)["error"].as_str().unwrap().contains("removed"));
    }
}

#[tokio::test]
async fn a_held_request_whose_client_leaves_gives_its_place_back() {
    let (proxy, _) = at_zero(holding(1, None, Duration::from_secs(30))).await;
    let url = proxy.url("/funko/hello/hello");
    let gone = fire(url.clone(), 1);
    held(&proxy, 1).await;
    gone.abort();
    held(&proxy, 0).await;
    // Its place is free for the next request.
    let next = fire(url, 1);
    held(&proxy, 1).await;
    next.abort();
}

#[tokio::test]
async fn a_held_request_times_out_with_504_at_the_funkos_timeout() {
    let (proxy, _) = at_zero(holding(10, None, Duration::from_millis(300))).await;
    let started = Instant::now();
    let (status, _, _) = get(&proxy.url("/funko/hello/hello")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_instance_at_its_limit_makes_the_next_request_wait_for_its_slot() {
    let lab = Lab::new("hold-limit");
    let backend = lab.start("a", &[]);
    // Routed by hand, so it must listen first: on a busy machine it once did not yet, and the
    // refused connect failed a request that was never held.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(backend.addr).await.is_err() {
        assert!(Instant::now() < deadline, "the backend never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (proxy, _) = at_zero(holding(10, Some(1), Duration::from_secs(30))).await;
    proxy
        .routes
        .insert_ready("hello", InstanceId::new(backend.id.as_str()), backend.addr);
    let url = proxy.url("/funko/hello/slow?ms=400");
    let started = Instant::now();
    let both = join_all([get(&url), get(&url)]).await;
    assert!(both.iter().all(|(status, _, _)| *status == StatusCode::OK));
    // One after the other, never both at once on the one instance.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );

    // Without holding, a request beyond the limit is refused at once instead.
    proxy
        .routes
        .set_funko("hello", holding(0, Some(1), Duration::from_secs(30)));
    let slow = fire(proxy.url("/funko/hello/slow?ms=600"), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        get(&proxy.url("/funko/hello/hello")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(slow.await.unwrap()[0].0, StatusCode::OK);
}

/// Requests held across every funko are bounded too: with room for two, two requests held for
/// `hello` leave none for `other`, whose request is answered 503 with `Retry-After` at once and
/// counted; once they are gone, `other` holds again.
#[tokio::test]
async fn requests_held_across_funkos_are_capped() {
    let proxy = RunningProxy::start(ProxyConfig {
        max_held: 2,
        ..config()
    })
    .await;
    proxy
        .routes
        .set_funko("hello", holding(10, None, Duration::from_secs(30)));
    proxy
        .routes
        .set_funko("other", holding(10, None, Duration::from_secs(30)));
    let waiting = fire(proxy.url("/funko/hello/hello"), 2);
    held(&proxy, 2).await;
    let started = Instant::now();
    let (status, headers, body) = get(&proxy.url("/funko/other/hello")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("across funkos")
    );
    assert!(started.elapsed() < Duration::from_secs(5), "it waited");
    let (_, _, metrics) = get(&proxy.url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(
            "faaso_proxy_refused_requests_total{funko=\"other\",reason=\"proxy_full\"} 1"
        ),
        "{metrics}"
    );
    waiting.abort();
    held(&proxy, 0).await;
    let again = fire(proxy.url("/funko/other/hello"), 1);
    for _ in 0..500 {
        if proxy.routes.load().get("other").map(|r| r.held()) == Some(1) {
            again.abort();
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("other never held a request again");
}
