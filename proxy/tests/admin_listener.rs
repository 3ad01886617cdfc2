//! The admin listener beside the funkos' one, over real HTTP: the admin handler, `/metrics` and
//! `/healthz` answer there; on the funkos' listener the admin's paths and `/metrics` are
//! unknown (404); both stop on the one shutdown. Needs no Docker engine.

#[allow(dead_code)]
mod support;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use faaso_proxy::{Proxy, ProxyConfig, ProxyError, Routes};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use support::{get, json};

/// An admin that tells which path it was asked for.
#[derive(Clone)]
struct Admin;

impl tower_service::Service<Request<Incoming>> for Admin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let body = format!("admin saw {}", request.uri().path());
        ready(Ok(Response::new(Full::from(body))))
    }
}

fn config() -> ProxyConfig {
    ProxyConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        access_log: false,
        event_loops: 1,
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn the_admin_answers_on_its_listener_and_nowhere_else() {
    let config = ProxyConfig {
        admin_listen: Some(([127, 0, 0, 1], 0).into()),
        ..config()
    };
    let proxy = Proxy::bind(config, Routes::new())
        .await
        .unwrap()
        .with_admin(Admin)
        .unwrap();
    let funkos = format!("http://{}", proxy.local_addr());
    let admin_addr = proxy.admin_addr().unwrap();
    let admin = format!("http://{admin_addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    for path in ["/admin/funkos", "/admin/", "/metrics"] {
        let (status, _, body) = get(&format!("{funkos}{path}")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} on the funkos' listener"
        );
        assert!(json(&body)["error"].is_string(), "{path}");
    }
    let (status, _, _) = get(&format!("{funkos}/healthz")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = get(&format!("{admin}/admin/funkos")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "admin saw /admin/funkos");
    let (status, _, body) = get(&format!("{admin}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    // The funkos' listener's requests are counted there.
    assert!(
        String::from_utf8_lossy(&body)
            .contains("faaso_proxy_requests_total{funko=\"\",code=\"404\"} 3"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = get(&format!("{admin}/healthz")).await;
    assert_eq!(status, StatusCode::OK);

    // One shutdown stops both.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve ends")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(admin_addr).await.is_err());
}

#[tokio::test]
async fn an_admin_handler_without_an_admin_listener_is_refused() {
    let proxy = Proxy::bind(config(), Routes::new()).await.unwrap();
    assert!(proxy.admin_addr().is_none());
    assert!(matches!(
        proxy.with_admin(Admin),
        Err(ProxyError::NoAdminListener)
    ));
}
