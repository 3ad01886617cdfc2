//! Forwarding one request to a ready instance of its funko, and the answers when that fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use tracing::{info, warn};

use crate::access_log::{AccessLog, Entry};
use crate::answer;
use crate::body::{BodyTooLarge, Lease, Outgoing, ProxyBody, UpstreamBody, discard};
use crate::client::ClientConnection;
use crate::config::ProxyConfig;
use crate::cors;
use crate::deadline;
use crate::hold::{self, Refusal};
use crate::hop;
use crate::metrics::Metrics;
use crate::pool::{self, Dialing, SendError, Sender};
use crate::prefix;
use crate::request_id;
use crate::route_table::{FunkoRoute, InFlight, Instance, Routes};
use crate::upgrade;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Sends requests to instances over their pooled keep-alive connections.
pub(crate) struct Forwarder {
    routes: Routes,
    dialing: Dialing,
    config: ProxyConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) access_log: Option<AccessLog>,
}

/// Why no response came from any instance.
enum Failure {
    /// No instance could be connected to; nothing was sent.
    Connect(std::io::Error),
    /// An instance was reached, then the exchange broke.
    Exchange(hyper::Error),
}

impl Forwarder {
    /// A forwarder over `routes`, logging each request to `access_log` if there is one.
    pub(crate) fn new(
        routes: Routes,
        config: ProxyConfig,
        metrics: Arc<Metrics>,
        access_log: Option<AccessLog>,
    ) -> Self {
        let dialing = Dialing {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.upstream_idle_timeout,
        };
        Self {
            routes,
            dialing,
            config,
            metrics,
            access_log,
        }
    }

    /// Answers a request for `/funko/...` (or any path that is not the proxy's own).
    pub(crate) async fn forward(
        &self,
        req: Request<Incoming>,
        client: &ClientConnection,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        // The request moves on; a copy of its URI (a shared buffer, not a copy of the bytes)
        // keeps the funko's name at hand without allocating it.
        let uri = req.uri().clone();
        let Some((funko, rest)) = prefix::split(uri.path()) else {
            return self.not_found(
                &req,
                "",
                "no funko at this path; funkos are served under /funko/<name>/",
                started,
            );
        };
        let Some(route) = self.routes.load().get(funko).cloned() else {
            return self.not_found(&req, funko, &format!("unknown funko '{funko}'"), started);
        };
        let method = self.access_log.is_some().then(|| req.method().clone());
        let cors = route.settings().cors.as_deref();
        let preflight = cors.filter(|_| cors::is_preflight(req.method(), req.headers()));
        let allowed = cors
            .filter(|_| preflight.is_none())
            .and_then(|cors| cors.allowed(req.headers()));
        let (mut response, instance) = match preflight {
            // A browser's preflight is the proxy's to answer: no instance needs to wake for it.
            Some(cors) => (cors.preflight(req.headers()), None),
            None => {
                let path_and_query = prefix::upstream_path_and_query(rest, uri.query());
                self.to_route(route.clone(), funko, path_and_query, req, client, started)
                    .await
            }
        };
        if let (Some(cors), Some(origin)) = (cors, allowed) {
            cors.decorate(origin, response.headers_mut());
        }
        // One reading of the clock serves the metrics and the log line.
        let (status, elapsed) = (response.status().as_u16(), started.elapsed());
        route.stats.observe(status, elapsed);
        if let (Some(log), Some(method)) = (&self.access_log, method) {
            log.record(&Entry {
                method: &method,
                uri: &uri,
                funko,
                status,
                micros: elapsed.as_micros() as u64,
                instance,
                request_id: response
                    .headers()
                    .get(X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            });
        }
        response
    }

    /// Sends the request to one of the route's instances (a second one if the first could
    /// not be connected to) and returns the answer and the instance that gave it. The funko's
    /// request timeout counts from `started`, when the request reached the forwarder.
    async fn to_route(
        &self,
        route: Arc<FunkoRoute>,
        funko: &str,
        path_and_query: String,
        mut req: Request<Incoming>,
        client: &ClientConnection,
        started: Instant,
    ) -> (Response<ProxyBody>, Option<SocketAddr>) {
        let request_id = match req.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => request_id::next(),
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
        let timeout = route.settings().request_timeout;
        let cap = hold::HeldCap {
            held: &self.metrics.held,
            max: self.config.max_held,
        };
        let deadline = deadline::later(started, timeout);
        let (route, first) =
            match hold::take_or_hold(&self.routes, funko, route, deadline, &cap).await {
                Ok(taken) => taken,
                Err(refusal) => {
                    route_refused(&self.routes, funko, &refusal);
                    return (with_id(refused(funko, refusal, timeout)), None);
                }
            };
        let route = route.as_ref();
        let client_upgrade = req
            .headers()
            .contains_key(header::UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        if let Some(protocol) = hop::strip(&mut headers) {
            hop::ask_upgrade(&mut headers, protocol);
        }
        add_forwarding_headers(
            &mut headers,
            &parts.uri,
            client.peer_ip.clone(),
            client.tls,
            route,
            &request_id,
            first.instance(),
        );
        let upstream = Uri::try_from(path_and_query).map_err(hyper::http::Error::from);
        let upstream = match upstream {
            Ok(uri) => uri,
            Err(err) => {
                warn!(%funko, ?err, "A request path could not be forwarded.");
                let response = answer::error(
                    StatusCode::BAD_REQUEST,
                    "the request path cannot be forwarded",
                );
                return (with_id(response), None);
            }
        };
        let mut request = Request::new(Outgoing::new(body, limit));
        *request.method_mut() = parts.method;
        *request.uri_mut() = upstream;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;

        self.metrics.add_in_flight(1);
        route.stats.add_in_flight(1);
        // Boxed: the exchange's future is large, and each enclosing future would otherwise
        // carry (and copy) it.
        let attempts = Box::pin(self.attempts(route, funko, first, request));
        let result = deadline::timeout_at(deadline::later(started, timeout), attempts).await;
        let response = match result {
            Some(Ok((response, sender, slot))) => {
                let addr = slot.instance().addr();
                let lease = Lease {
                    metrics: self.metrics.clone(),
                    stats: route.stats.clone(),
                    instance: slot.instance().clone(),
                    _in_flight: slot,
                    sender: Some(sender),
                };
                return (
                    with_id(relay(response, lease, client_upgrade, funko, client)),
                    Some(addr),
                );
            }
            Some(Err((failure, instance))) => {
                let response = match failure {
                    Failure::Exchange(err) if BodyTooLarge::caused(&err) => too_large(limit),
                    // The client's own body failed (bad chunked encoding, cut short): its fault,
                    // not the instance's.
                    Failure::Exchange(err) if err.is_user() => {
                        info!(%funko, ?err, "The client's request body was malformed or cut short.");
                        answer::error(
                            StatusCode::BAD_REQUEST,
                            "the request body was malformed or cut short",
                        )
                    }
                    Failure::Connect(err) => {
                        warn!(%funko, instance = %instance.addr(), ?err, "No instance could be connected to.");
                        answer::error(
                            StatusCode::BAD_GATEWAY,
                            &format!("could not connect to an instance of funko '{funko}'"),
                        )
                    }
                    Failure::Exchange(err) => {
                        warn!(%funko, instance = %instance.addr(), ?err, "The instance broke off the exchange.");
                        // Gone or unwell: its health probe brings it back if it answers again.
                        self.eject(funko, &instance);
                        answer::error(
                            StatusCode::BAD_GATEWAY,
                            &format!("the instance of funko '{funko}' broke off the exchange"),
                        )
                    }
                };
                (response, Some(instance.addr()))
            }
            None => {
                let response = answer::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("funko '{funko}' did not answer within {timeout:?}"),
                );
                (response, None)
            }
        };
        self.metrics.add_in_flight(-1);
        route.stats.add_in_flight(-1);
        (with_id(response.0), response.1)
    }

    /// Sends the request, starting with `first` (a slot taken on the first instance): while
    /// connects fail, on to another instance of the table as it is then, at most once per
    /// instance the route had (a failed connect sends nothing, so any method and body may go
    /// again; during a rollout several old instances refuse at once). The answer comes with the
    /// slot it used.
    async fn attempts(
        &self,
        route: &FunkoRoute,
        funko: &str,
        first: InFlight,
        mut request: Request<Outgoing>,
    ) -> Result<(Response<Incoming>, Sender, InFlight), (Failure, Arc<Instance>)> {
        let mut slot = first;
        let mut tries_left = route.instances().len().max(2);
        loop {
            let error = match pool::send(slot.instance(), request, self.dialing).await {
                Ok((response, sender)) => return Ok((response, sender, slot)),
                Err(SendError::Exchange(err)) => {
                    return Err((Failure::Exchange(err), slot.instance().clone()));
                }
                Err(SendError::Connect {
                    error,
                    request: unsent,
                }) => {
                    request = *unsent;
                    error
                }
            };
            let failed = slot.instance().clone();
            // Ejected first, so the table loaded next no longer offers it.
            self.eject(funko, &failed);
            tries_left -= 1;
            let next = (tries_left > 0)
                .then(|| self.routes.load().get(funko)?.take(Some(failed.id())))
                .flatten();
            let Some(next) = next else {
                return Err((Failure::Connect(error), failed));
            };
            slot = next;
            warn!(%funko, failed = %failed.addr(), retry = %slot.instance().addr(), ?error, "Retrying on another instance after a failed connect.");
        }
    }

    /// Takes an instance that refused a connection or broke off an exchange out of rotation,
    /// its idle connections with it; its health probe brings it back once it answers again.
    fn eject(&self, funko: &str, instance: &Instance) {
        if self.routes.remove_instance(funko, instance.id()) {
            warn!(%funko, instance = %instance.id(), addr = %instance.addr(), "Ejected an instance that failed a connect or an exchange.");
        }
    }

    /// The 404 of a request that reaches no route, counted and logged as such.
    fn not_found(
        &self,
        req: &Request<Incoming>,
        funko: &str,
        message: &str,
        started: Instant,
    ) -> Response<ProxyBody> {
        let response = answer::error(StatusCode::NOT_FOUND, message);
        let elapsed = started.elapsed();
        self.metrics.unrouted.observe(404, elapsed);
        if let Some(log) = &self.access_log {
            log.record(&Entry {
                method: req.method(),
                uri: req.uri(),
                funko,
                status: 404,
                micros: elapsed.as_micros() as u64,
                instance: None,
                request_id: "",
            });
        }
        response
    }
}

/// The response header that lets a service worker control paths above its script's folder.
const SERVICE_WORKER_ALLOWED: header::HeaderName =
    header::HeaderName::from_static("service-worker-allowed");

/// Turns the instance's response into the client's: hop-by-hop headers dropped, the body
/// streamed, an accepted upgrade tunnelled.
fn relay(
    mut response: Response<Incoming>,
    mut lease: Lease,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    funko: &str,
    connection: &ClientConnection,
) -> Response<ProxyBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let instance_upgrade = switching.then(|| hyper::upgrade::on(&mut response));
    if switching {
        // The connection now belongs to the tunnel.
        lease.sender = None;
    }
    let (mut parts, body) = response.into_parts();
    let protocol = hop::strip(&mut parts.headers);
    // Every funko shares the edge's origin under `/funko/<name>/`: a service worker's scope
    // must stay inside its own prefix (the browser's default), never widen to another's.
    parts.headers.remove(SERVICE_WORKER_ALLOWED);
    if let (Some(client), Some(instance), Some(protocol)) =
        (client_upgrade, instance_upgrade, protocol)
    {
        hop::ask_upgrade(&mut parts.headers, protocol);
        tokio::spawn(upgrade::tunnel(
            client,
            instance,
            funko.to_owned(),
            connection.open.another(),
        ));
    }
    let body = UpstreamBody::new(body, lease).boxed_unsync();
    Response::from_parts(parts, body)
}

/// Sets the headers DESIGN.md promises an instance.
fn add_forwarding_headers(
    headers: &mut HeaderMap,
    uri: &Uri,
    peer_ip: HeaderValue,
    tls: bool,
    route: &FunkoRoute,
    request_id: &HeaderValue,
    instance: &Instance,
) {
    // Room for the six headers below at once, instead of growing the map for each.
    headers.reserve(6);
    // HTTP/2 clients send the host as the URI's authority; HTTP/1.0 ones may send none.
    if !headers.contains_key(header::HOST) {
        let host = uri.authority().unwrap_or(instance.authority()).as_str();
        if let Ok(host) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, host);
        }
    }
    // The client's own X-Forwarded-For is not trusted: the peer is the only thing we know.
    headers.insert(X_FORWARDED_FOR, peer_ip);
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(prefix) = route.prefix() {
        headers.insert(X_FORWARDED_PREFIX, prefix.clone());
    }
    headers.insert(X_REQUEST_ID, request_id.clone());
}

/// The answer to a request that got no instance.
fn refused(funko: &str, refusal: Refusal, timeout: std::time::Duration) -> Response<ProxyBody> {
    match refusal {
        Refusal::NoInstance => answer::no_ready_instance(funko),
        Refusal::QueueFull(capacity) => answer::retry_soon(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("funko '{funko}' already holds {capacity} waiting requests; try again"),
        ),
        Refusal::ProxyFull(capacity) => answer::retry_soon(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "the proxy already holds {capacity} waiting requests across funkos; try again"
            ),
        ),
        Refusal::WakeFailed(reason) => answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("funko '{funko}' could not start: {reason}"),
        ),
        Refusal::Gone => answer::error(
            StatusCode::NOT_FOUND,
            &format!("funko '{funko}' was removed while the request waited"),
        ),
        Refusal::TimedOut => answer::error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("funko '{funko}' had no instance free within {timeout:?}"),
        ),
    }
}

/// Counts a refusal by its reason (a funko removed meanwhile has no route to count it on).
fn route_refused(routes: &Routes, funko: &str, refusal: &Refusal) {
    if let Some(route) = routes.load().get(funko) {
        route.stats.refused(refusal.as_str());
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(limit: u64) -> Response<ProxyBody> {
    answer::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than the limit of {limit} bytes"),
    )
}
