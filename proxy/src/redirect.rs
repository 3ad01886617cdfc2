//! The optional plain-HTTP listener beside a TLS one: it answers every request with a permanent
//! redirect to the same path over HTTPS, and serves nothing else. It redirects only to hosts the
//! edge serves (its ACME names, its certificate's names and addresses, the address it listens
//! on): a `Location` copied from any `Host` would make it an open redirect for whoever can
//! put a name in front of it.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::answer;
use crate::body::ProxyBody;
use crate::server::next_connection;
use crate::tls::Edge;

/// Which hosts a redirect may name.
pub(crate) type Serves = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The hosts `edge` serves, and the address the TLS listener listens on when it is a specific one.
pub(crate) fn served_by(edge: Edge, listen: IpAddr) -> Serves {
    Arc::new(move |host: &str| {
        let listened = !listen.is_unspecified()
            && host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip == listen);
        listened || edge.serves(host)
    })
}

/// Serves redirects on `listener` until `shutdown`; each connection answers one request and
/// closes, within `header_timeout`, so none outlives shutdown by more than that.
pub(crate) async fn serve(
    listener: TcpListener,
    https_port: u16,
    serves: Serves,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = next_connection(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(false)
            .header_read_timeout(header_timeout);
        let serves = serves.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let answer = to_https(&req, https_port, &*serves);
                async move { Ok::<_, Infallible>(answer) }
            });
            let served = tokio::time::timeout(
                header_timeout * 2,
                builder.serve_connection(TokioIo::new(stream), service),
            )
            .await;
            if let Ok(Err(err)) = served {
                debug!(%peer, ?err, "A client of the redirect listener ended with an error.");
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(header_timeout, connections.wait()).await;
}

/// `308` to `https://<host>[:port]<path and query>`; a request without a usable host, or for a
/// host the edge does not serve, is 400.
fn to_https<B>(
    req: &Request<B>,
    https_port: u16,
    serves: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Response<ProxyBody> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .and_then(host_without_port)
        .filter(|h| !h.is_empty());
    let Some(host) = host else {
        return answer::error(StatusCode::BAD_REQUEST, "a Host header is required");
    };
    if !serves(host) {
        return answer::error(
            StatusCode::BAD_REQUEST,
            "this server does not serve that host over https",
        );
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut response = answer::error(
                StatusCode::PERMANENT_REDIRECT,
                "this server is reached over https",
            );
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => answer::error(StatusCode::BAD_REQUEST, "the Host header is not valid"),
    }
}

/// `host` of `host[:port]` or `[v6][:port]`.
fn host_without_port(authority: &str) -> Option<&str> {
    if authority.starts_with('[') {
        return authority.find(']').map(|end| &authority[..=end]);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, uri: &str, port: u16) -> (StatusCode, Option<String>) {
        let mut req = Request::builder().uri(uri);
        if let Some(host) = host {
            req = req.header(header::HOST, host);
        }
        let serves = |host: &str| host != "elsewhere.example";
        let response = to_https(&req.body(()).unwrap(), port, &serves);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[test]
    fn redirects_keep_path_and_query_and_name_the_https_port() {
        assert_eq!(
            location(Some("faaso.example:80"), "/funko/a/b?c=d", 443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://faaso.example/funko/a/b?c=d".into())
            )
        );
        assert_eq!(
            location(Some("[::1]:8080"), "/", 8443).1.as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(location(None, "/x", 443).0, StatusCode::BAD_REQUEST);
        assert_eq!(
            location(Some("elsewhere.example"), "/x", 443),
            (StatusCode::BAD_REQUEST, None)
        );
    }
}
