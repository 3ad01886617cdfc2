//! Forwarding one request to a ready instance of its funko, and the answers when that fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tracing::{info, warn};

use crate::answer;
use crate::body::{Guarded, Outgoing, ProxyBody, Reclaim, RequestBody};
use crate::config::ProxyConfig;
use crate::hop;
use crate::metrics::{FunkoStats, Metrics};
use crate::prefix;
use crate::request_id;
use crate::route_table::{FunkoRoute, InFlight, Instance, Routes};
use crate::upgrade;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Sends requests to instances over pooled keep-alive connections.
pub(crate) struct Forwarder {
    routes: Routes,
    client: Client<HttpConnector, Outgoing>,
    config: ProxyConfig,
    pub(crate) metrics: Arc<Metrics>,
}

/// Keeps the in-flight gauges raised while a response is being streamed.
struct Busy {
    metrics: Arc<Metrics>,
    stats: Arc<FunkoStats>,
    _instance: InFlight,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one attempt at an instance came to.
enum Failure {
    /// Nothing reached the instance; the request may go elsewhere.
    Connect(hyper_util::client::legacy::Error),
    /// The instance was reached, then the exchange broke.
    Exchange(hyper_util::client::legacy::Error),
    /// The request's path cannot be sent on (the client's URI parsed, so this is rare).
    Uri(hyper::http::Error),
}

/// The parts of a request that every attempt needs.
struct Outbound {
    method: hyper::Method,
    path_and_query: String,
    headers: HeaderMap,
}

impl Forwarder {
    /// A forwarder over `routes` with its own connection pool.
    pub(crate) fn new(routes: Routes, config: ProxyConfig, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.upstream_idle_timeout)
            .build(connector);
        Self {
            routes,
            client,
            config,
            metrics,
        }
    }

    /// Answers a request for `/funko/...` (or any path that is not the proxy's own).
    pub(crate) async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let Some((funko, rest)) = prefix::split(req.uri().path()) else {
            let response = answer::error(
                StatusCode::NOT_FOUND,
                "no funko at this path; funkos are served under /funko/<name>/",
            );
            self.metrics.unrouted.observe(404, started.elapsed());
            self.log(&req, "", &response, None, started);
            return response;
        };
        let funko = funko.to_owned();
        let path_and_query = prefix::upstream_path_and_query(rest, req.uri().query());
        let Some(route) = self.routes.load().get(&funko).cloned() else {
            let response =
                answer::error(StatusCode::NOT_FOUND, &format!("unknown funko '{funko}'"));
            self.metrics.unrouted.observe(404, started.elapsed());
            self.log(&req, &funko, &response, None, started);
            return response;
        };
        let method = req.method().clone();
        let uri = self.config.access_log.then(|| req.uri().clone());
        let (response, instance) = self
            .to_route(&route, &funko, path_and_query, req, peer)
            .await;
        route
            .stats
            .observe(response.status().as_u16(), started.elapsed());
        if let Some(uri) = uri {
            info!(
                target: "faaso_proxy::access",
                %method,
                %uri,
                %funko,
                status = response.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                instance = instance.map(|a| a.to_string()).unwrap_or_default(),
                request_id = response.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or(""),
                "Request answered."
            );
        }
        response
    }

    /// Sends the request to one of the route's instances (a second one if the first could
    /// not be connected to) and returns the answer and the instance that gave it.
    async fn to_route(
        &self,
        route: &FunkoRoute,
        funko: &str,
        path_and_query: String,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> (Response<ProxyBody>, Option<SocketAddr>) {
        let request_id = match req.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                HeaderValue::from_str(&request_id::next()).unwrap_or(HeaderValue::from_static("-"))
            }
        };
        let with_id = |mut response: Response<ProxyBody>| {
            response
                .headers_mut()
                .insert(X_REQUEST_ID, request_id.clone());
            response
        };
        let limit = self.config.max_body_bytes;
        if let Some(len) = content_length(req.headers()).filter(|len| *len > limit) {
            tokio::spawn(discard(req.into_body(), len.min(limit.saturating_mul(2))));
            return (with_id(too_large(limit)), None);
        }
        let Some(first) = route.pick(None) else {
            return (with_id(answer::no_ready_instance(funko)), None);
        };
        let client_upgrade = req
            .headers()
            .contains_key(header::UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        let protocol = hop::strip(&mut headers);
        if let Some(protocol) = protocol {
            hop::ask_upgrade(&mut headers, protocol);
        }
        add_forwarding_headers(&mut headers, &parts.uri, peer, funko, &request_id);
        let (body, reclaim) = if body.is_end_stream() {
            (Outgoing::Empty, None)
        } else {
            let (body, reclaim) = RequestBody::new(body, limit);
            (Outgoing::Client(body), Some(reclaim))
        };
        let outbound = Outbound {
            method: parts.method,
            path_and_query,
            headers,
        };

        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        route.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let timeout = route.settings().request_timeout;
        let attempts = self.attempts(route, funko, first, outbound, body, reclaim.as_ref());
        let result = tokio::time::timeout(timeout, attempts).await;
        let busy = |instance: &Arc<Instance>| Busy {
            metrics: self.metrics.clone(),
            stats: route.stats.clone(),
            _instance: instance.start_request(),
        };
        let (response, served_by) = match result {
            Ok(Ok((response, instance))) => {
                let addr = instance.addr();
                (
                    self.relay(response, busy(&instance), client_upgrade, funko),
                    Some(addr),
                )
            }
            Ok(Err((failure, instance))) => {
                self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
                route.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                let response = match failure {
                    _ if reclaim.as_ref().is_some_and(Reclaim::was_too_large) => too_large(limit),
                    Failure::Connect(err) => {
                        warn!(%funko, instance = %instance.addr(), ?err, "No instance could be connected to.");
                        answer::error(
                            StatusCode::BAD_GATEWAY,
                            &format!("could not connect to an instance of funko '{funko}'"),
                        )
                    }
                    Failure::Uri(err) => {
                        warn!(%funko, ?err, "A request path could not be forwarded.");
                        answer::error(
                            StatusCode::BAD_REQUEST,
                            "the request path cannot be forwarded",
                        )
                    }
                    Failure::Exchange(err) => {
                        warn!(%funko, instance = %instance.addr(), ?err, "The instance broke off the exchange.");
                        answer::error(
                            StatusCode::BAD_GATEWAY,
                            &format!("the instance of funko '{funko}' broke off the exchange"),
                        )
                    }
                };
                (response, Some(instance.addr()))
            }
            Err(_elapsed) => {
                self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
                route.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                let response = answer::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("funko '{funko}' did not answer within {timeout:?}"),
                );
                (response, None)
            }
        };
        (with_id(response), served_by)
    }

    /// One attempt, and a second on another instance when the first could not connect.
    async fn attempts(
        &self,
        route: &FunkoRoute,
        funko: &str,
        first: Arc<Instance>,
        outbound: Outbound,
        body: Outgoing,
        reclaim: Option<&Reclaim>,
    ) -> Result<(Response<Incoming>, Arc<Instance>), (Failure, Arc<Instance>)> {
        // Cloning the head costs a little; only pay for it when a retry is possible.
        let mut outbound = outbound;
        let head = if route.instances().len() > 1 {
            outbound.headers.clone()
        } else {
            std::mem::take(&mut outbound.headers)
        };
        let err = match self.send(&first, &outbound, head, body).await {
            Ok(response) => return Ok((response, first)),
            Err(Failure::Connect(err)) => err,
            Err(other) => return Err((other, first)),
        };
        self.eject(funko, &first);
        let retry_body = match reclaim {
            None => Some(Outgoing::Empty),
            Some(reclaim) => reclaim.take().map(Outgoing::Client),
        };
        let (Some(second), Some(body)) = (route.pick(Some(first.id())), retry_body) else {
            return Err((Failure::Connect(err), first));
        };
        warn!(%funko, failed = %first.addr(), retry = %second.addr(), "Retrying on another instance after a failed connect.");
        let head = std::mem::take(&mut outbound.headers);
        match self.send(&second, &outbound, head, body).await {
            Ok(response) => Ok((response, second)),
            Err(failure) => {
                if matches!(failure, Failure::Connect(_)) {
                    self.eject(funko, &second);
                }
                Err((failure, second))
            }
        }
    }

    async fn send(
        &self,
        instance: &Arc<Instance>,
        outbound: &Outbound,
        headers: HeaderMap,
        body: Outgoing,
    ) -> Result<Response<Incoming>, Failure> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(instance.authority().clone())
            .path_and_query(outbound.path_and_query.as_str())
            .build()
            .map_err(Failure::Uri)?;
        let mut request = Request::new(body);
        *request.method_mut() = outbound.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;
        let _counted = instance.start_request();
        self.client.request(request).await.map_err(|err| {
            if err.is_connect() {
                Failure::Connect(err)
            } else {
                Failure::Exchange(err)
            }
        })
    }

    /// Takes an instance that refused a connection out of rotation; its health probe brings
    /// it back once it answers again.
    fn eject(&self, funko: &str, instance: &Instance) {
        if self.routes.remove_instance(funko, instance.id()) {
            warn!(%funko, instance = %instance.id(), addr = %instance.addr(), "Ejected an instance that could not be connected to.");
        }
    }

    /// Turns the instance's response into the client's: hop-by-hop headers dropped, the body
    /// streamed, an accepted upgrade tunnelled.
    fn relay(
        &self,
        mut response: Response<Incoming>,
        busy: Busy,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        funko: &str,
    ) -> Response<ProxyBody> {
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let instance_upgrade = switching.then(|| hyper::upgrade::on(&mut response));
        let (mut parts, body) = response.into_parts();
        let protocol = hop::strip(&mut parts.headers);
        if let (Some(client), Some(instance), Some(protocol)) =
            (client_upgrade, instance_upgrade, protocol)
        {
            hop::ask_upgrade(&mut parts.headers, protocol);
            tokio::spawn(upgrade::tunnel(client, instance, funko.to_owned()));
        }
        let body = Guarded::new(body, busy).map_err(Into::into).boxed_unsync();
        Response::from_parts(parts, body)
    }

    /// Logs one access-log line for a request answered without reaching a route.
    fn log(
        &self,
        req: &Request<Incoming>,
        funko: &str,
        response: &Response<ProxyBody>,
        instance: Option<SocketAddr>,
        started: Instant,
    ) {
        if self.config.access_log {
            info!(
                target: "faaso_proxy::access",
                method = %req.method(),
                uri = %req.uri(),
                %funko,
                status = response.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                instance = instance.map(|a| a.to_string()).unwrap_or_default(),
                "Request answered."
            );
        }
    }
}

/// Sets the headers DESIGN.md promises an instance.
fn add_forwarding_headers(
    headers: &mut HeaderMap,
    uri: &Uri,
    peer: SocketAddr,
    funko: &str,
    request_id: &HeaderValue,
) {
    // HTTP/2 clients send the host as the URI's authority, not as a header.
    if !headers.contains_key(header::HOST)
        && let Some(host) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(header::HOST, host);
    }
    let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or(HeaderValue::from_static("unknown"));
    // The client's own X-Forwarded-For is not trusted: the peer is the only thing we know.
    headers.insert(X_FORWARDED_FOR, peer_ip);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Ok(prefix) = HeaderValue::from_str(&format!("/funko/{funko}")) {
        headers.insert(X_FORWARDED_PREFIX, prefix);
    }
    headers.insert(X_REQUEST_ID, request_id.clone());
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads and drops (up to `cap` bytes of) a refused body, so that the client can finish sending
/// and then read the 413, instead of failing on a connection closed under its upload.
async fn discard(mut body: Incoming, cap: u64) {
    let mut seen = 0u64;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen >= cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
}

fn too_large(limit: u64) -> Response<ProxyBody> {
    answer::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than the limit of {limit} bytes"),
    )
}
