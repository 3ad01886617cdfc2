//! The listening side: accepting clients (HTTP/1.1 with keep-alive, or h2c; HTTP/2 or HTTP/1.1
//! over TLS when given a certificate), the proxy's own endpoints, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::access_log::{AccessLog, AccessLogDestination, Output};
use crate::answer;
use crate::body::ProxyBody;
use crate::client::{ClientConnection, OpenConnection};
use crate::config::ProxyConfig;
use crate::deadline::{self, LoopTimer};
use crate::error::ProxyError;
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::route_table::Routes;
use crate::shutdown::Stop;
use crate::tls::Edge;

/// hyper refuses read buffers smaller than this.
const MIN_HEADER_BUFFER: usize = 8192;

/// How many headers hyper accepts in a request when not told otherwise.
const HYPER_MAX_HEADERS: usize = 100;

/// A bound proxy, ready to serve its route table.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ProxyConfig,
    routes: Routes,
    local: Option<Local>,
    /// The access log's destination, opened at bind so that a bad one stops the start.
    access_log: Option<Output>,
    /// TLS, loaded at bind so that a bad certificate stops the start.
    edge: Option<Edge>,
    /// The plain-HTTP listener that redirects to HTTPS.
    redirect: Option<TcpListener>,
    /// The admin listener, when `config.admin_listen` names one.
    admin: Option<AdminListener>,
}

/// The listener of the embedding process's own API and the metrics, apart from the funkos'.
#[derive(Debug)]
struct AdminListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// What answers there besides `/metrics` and `/healthz`.
    handler: Option<Local>,
}

/// Requests under a path prefix that the embedding process answers itself (`faaso server`'s
/// admin API), instead of forwarding them.
#[derive(Clone)]
struct Local {
    prefix: Arc<str>,
    handler: LocalHandler,
}

type LocalHandler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>
        + Send
        + Sync,
>;

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Binds `config.listen`; requests are routed by whatever `routes` holds at the time.
    pub async fn bind(config: ProxyConfig, routes: Routes) -> Result<Self, ProxyError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(ProxyError::LocalAddr)?;
        let access_log = config
            .access_log
            .then(|| {
                let destination = &config.access_log_destination;
                Output::open(destination).map_err(|source| access_log_error(destination, source))
            })
            .transpose()?;
        let edge = config.tls.clone().map(Edge::new).transpose()?;
        let admin = match config.admin_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| ProxyError::Bind { addr, source })?;
                let local_addr = listener.local_addr().map_err(ProxyError::LocalAddr)?;
                Some(AdminListener {
                    listener,
                    local_addr,
                    handler: None,
                })
            }
            None => None,
        };
        let redirect = match config.tls.as_ref().and_then(|t| t.redirect_listen) {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ProxyError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            config,
            routes,
            local: None,
            access_log,
            edge,
            redirect,
            admin,
        })
    }

    /// Answers requests whose path is `prefix` or starts with `prefix/` with `service` (a tower
    /// service such as an axum `Router`) instead of forwarding them.
    pub fn with_local<S, B>(mut self, prefix: &str, service: S) -> Self
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<crate::body::BoxError>,
    {
        self.local = Some(Local {
            prefix: prefix.trim_end_matches('/').into(),
            handler: local_handler(service),
        });
        self
    }

    /// Answers every request on the admin listener (`config.admin_listen`) with `service`,
    /// except `GET /metrics` and `GET /healthz`, which the proxy answers there itself. Each
    /// request carries the client's address as a `std::net::IpAddr` extension. Without
    /// an admin listener configured this is an error: the service would never be reached.
    pub fn with_admin<S, B>(mut self, service: S) -> Result<Self, ProxyError>
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<crate::body::BoxError>,
    {
        let admin = self.admin.as_mut().ok_or(ProxyError::NoAdminListener)?;
        admin.handler = Some(Local {
            prefix: "".into(),
            handler: local_handler(service),
        });
        Ok(self)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address actually bound, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr)
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish for up to the configured grace period.
    ///
    /// Clients are served by `config.event_loops` threads, each running a single-threaded
    /// runtime; the caller's runtime keeps the local handler's work (the admin API), so that
    /// can use whatever the caller set up.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let Self {
            listener,
            local_addr,
            config,
            routes,
            local,
            access_log,
            edge,
            redirect,
            admin,
        } = self;
        let metrics = Arc::new(Metrics::default());
        let destination = &config.access_log_destination;
        let (access_log, writer) = match access_log {
            Some(output) => {
                let (log, writer) = AccessLog::start(config.access_log_format, output)
                    .map_err(|source| access_log_error(destination, source))?;
                (Some(log), Some(writer))
            }
            None => (None, None),
        };
        let reopen_on_hangup = match (&access_log, destination) {
            (Some(log), AccessLogDestination::File(_)) => {
                Some(tokio::spawn(reopen_on_hangup(log.clone())))
            }
            _ => None,
        };
        let reload = edge.clone().map(|edge| tokio::spawn(edge.keep_fresh()));
        let (stop_redirect, redirect_stopped) = oneshot::channel::<()>();
        let redirecting = match (redirect, &config.tls, &edge) {
            (Some(listener), Some(tls), Some(edge)) => Some(tokio::spawn(crate::redirect::serve(
                listener,
                tls.https_port,
                crate::redirect::served_by(edge.clone(), config.listen.ip()),
                config.header_read_timeout,
                async {
                    let _ = redirect_stopped.await;
                },
            ))),
            _ => None,
        };
        let hsts = config
            .tls
            .as_ref()
            .and_then(|t| t.hsts)
            .and_then(|age| HeaderValue::try_from(format!("max-age={}", age.as_secs())).ok());
        let shared = |role: Role, local: Option<Local>| {
            // A copy per loop: each request clones it, and a count that two cores write
            // moves between them on every request.
            Arc::new(Shared {
                forwarder: Forwarder::new(
                    routes.clone(),
                    config.clone(),
                    metrics.clone(),
                    access_log.clone(),
                ),
                routes: routes.clone(),
                local,
                role,
                http1: http1_builder(&config),
                http2: http2_builder(&config),
                caller: tokio::runtime::Handle::current(),
                config: config.clone(),
                edge: edge.clone(),
                hsts: hsts.clone(),
            })
        };
        let funkos = Role::Funkos {
            metrics: admin.is_none(),
        };
        let mut loops = Vec::new();
        let mut finished = Vec::new();
        for index in 0..config.event_loops.max(1) {
            let (event_loop, ended) = spawn_event_loop(
                format!("faaso-proxy-{index}"),
                index,
                shared(funkos, local.clone()),
            )?;
            loops.push(event_loop);
            finished.push(ended);
        }
        // The admin listener's few clients get a loop of their own: a busy funko never
        // delays them, and they never share a connection or an origin with a funko.
        let stop_admin = tokio_util::sync::CancellationToken::new();
        let admin_accepting = match admin {
            Some(AdminListener {
                listener,
                local_addr,
                handler,
            }) => {
                let (event_loop, ended) = spawn_event_loop(
                    "faaso-admin".to_owned(),
                    loops.len(),
                    shared(Role::Admin, handler),
                )?;
                finished.push(ended);
                info!(%local_addr, tls = edge.is_some(), "The admin listener is listening.");
                let stopped = stop_admin.clone().cancelled_owned();
                let limit = Limit {
                    max: config.max_connections,
                    metrics: metrics.clone(),
                };
                Some(tokio::spawn(async move {
                    accept(&listener, &[event_loop], &limit, stopped).await;
                }))
            }
            None => None,
        };
        let tls = edge.is_some();
        info!(%local_addr, event_loops = loops.len(), tls, "The proxy is listening.");
        let limit = Limit {
            max: config.max_connections,
            metrics: metrics.clone(),
        };
        accept(&listener, &loops, &limit, shutdown).await;
        drop(listener);
        stop_admin.cancel();
        if let Some(task) = admin_accepting {
            // Its loop's inbox closes with the task.
            let _ = task.await;
        }
        drop(stop_redirect);
        info!("The proxy stopped accepting; waiting for in-flight requests.");
        // Closing their inboxes tells the loops to finish their connections and end.
        drop(loops);
        for ended in finished {
            let _ = ended.await;
        }
        if let Some(task) = reopen_on_hangup {
            task.abort();
        }
        if let Some(task) = reload {
            task.abort();
        }
        if let Some(task) = redirecting {
            let _ = task.await;
        }
        if let Some(writer) = writer {
            // Joining the writer blocks for at most one write of what is left.
            let _ = tokio::task::spawn_blocking(move || writer.finish()).await;
        }
        Ok(())
    }
}

/// Starts an event loop's thread, serving what `shared` says; returns where to hand it clients
/// and what tells that it ended.
fn spawn_event_loop(
    name: String,
    index: usize,
    shared: Arc<Shared>,
) -> Result<(EventLoop, oneshot::Receiver<()>), ProxyError> {
    let (clients, inbox) = mpsc::unbounded_channel();
    let (done, ended) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    crate::shard::set_event_loop(index);
                    runtime.block_on(event_loop(inbox, &shared));
                }
                Err(err) => warn!(?err, "An event loop's runtime could not start."),
            }
            drop(done);
        })
        .map_err(ProxyError::Thread)?;
    let event_loop = EventLoop {
        clients,
        open: Arc::new(AtomicUsize::new(0)),
    };
    Ok((event_loop, ended))
}

/// Wraps a tower service (an axum `Router`, say) as a handler of whole requests.
fn local_handler<S, B>(service: S) -> LocalHandler
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            match service.call(request).await {
                Ok(response) => response.map(|body| body.map_err(Into::into).boxed_unsync()),
                Err(never) => match never {},
            }
        })
    })
}

fn access_log_error(destination: &AccessLogDestination, source: std::io::Error) -> ProxyError {
    let destination = match destination {
        AccessLogDestination::Stdout => "standard output".to_owned(),
        AccessLogDestination::File(path) => path.display().to_string(),
    };
    ProxyError::AccessLog {
        destination,
        source,
    }
}

/// Opens the access-log file again on every SIGHUP, as logrotate expects.
async fn reopen_on_hangup(log: AccessLog) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            warn!(
                ?err,
                "SIGHUP cannot be caught; the access log will not be reopened on it."
            );
            return;
        }
    };
    while hangups.recv().await.is_some() {
        info!("SIGHUP: opening the access log again.");
        log.reopen();
    }
}

/// An event loop as the acceptor sees it: where to hand it clients, and how many it serves.
struct EventLoop {
    clients: mpsc::UnboundedSender<Client>,
    open: Arc<AtomicUsize>,
}

/// An accepted client on its way to an event loop.
struct Client {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    open: OpenConnection,
}

/// The next client of `listener`. A failed accept is usually the process out of file
/// descriptors: it pauses instead of spinning. Cancel-safe, so it can race a shutdown.
pub(crate) async fn next_connection(
    listener: &TcpListener,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(err) => {
                warn!(?err, local = ?listener.local_addr().ok(), "Accepting a connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The most connections a listener holds, and where a refusal is counted.
struct Limit {
    max: usize,
    metrics: Arc<Metrics>,
}

/// Accepts clients until `shutdown` completes and hands each to the event loop with the
/// fewest open connections and tunnels. Loops that all took from the listening socket
/// themselves ended up serving twice as many clients as each other (whichever woke first
/// drained the backlog), and the busier one's clients waited longer; a count balances them.
///
/// It runs on the caller's runtime, beside the local handler: that one must not block.
///
/// A client beyond `limit.max` open connections is closed at once: past it, every client's
/// connection costs memory and a file descriptor the ones already served need.
async fn accept(
    listener: &TcpListener,
    loops: &[EventLoop],
    limit: &Limit,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = next_connection(listener) => accepted,
            () = &mut shutdown => return,
        };
        let open: usize = loops.iter().map(|l| l.open.load(Ordering::Relaxed)).sum();
        if open >= limit.max {
            limit
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            debug!(%peer, open, "A client was closed on arrival: the listener holds its most connections.");
            drop(stream);
            continue;
        }
        // A loop whose runtime failed to start, or whose thread panicked, has dropped its
        // inbox: it would look the least busy of all, so it is passed over.
        let target = loops
            .iter()
            .filter(|l| !l.clients.is_closed())
            .min_by_key(|l| l.open.load(Ordering::Relaxed));
        let Some(target) = target else {
            error!("No event loop is left to serve clients; the proxy stops accepting.");
            return;
        };
        match stream.into_std() {
            Ok(stream) => {
                let client = Client {
                    stream,
                    peer,
                    open: OpenConnection::new(&target.open),
                };
                // Only a loop that died since the check above refuses it; the client is
                // closed then.
                let _ = target.clients.send(client);
            }
            Err(err) => debug!(%peer, ?err, "An accepted connection could not be handed over."),
        }
    }
}

/// Which listener a loop serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The funkos' listener; `metrics` when no admin listener serves them.
    Funkos { metrics: bool },
    /// The admin listener: `/metrics`, `/healthz` and the admin handler, never a funko.
    Admin,
}

/// What every event loop shares.
struct Shared {
    forwarder: Forwarder,
    routes: Routes,
    local: Option<Local>,
    role: Role,
    /// Connection settings for clients speaking HTTP/1 and h2c.
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    config: ProxyConfig,
    /// The runtime that called `serve`, where the local handler runs.
    caller: tokio::runtime::Handle,
    /// TLS, when the listener speaks it.
    edge: Option<Edge>,
    /// The `Strict-Transport-Security` value for answers over TLS, when asked for.
    hsts: Option<HeaderValue>,
}

/// Serves the clients handed to this loop until its inbox closes, then lets its connections
/// finish for up to the grace period.
async fn event_loop(mut inbox: mpsc::UnboundedReceiver<Client>, shared: &Arc<Shared>) {
    deadline::start_ticker();
    let stop = Arc::new(Stop::default());
    let connections = TaskTracker::new();
    while let Some(Client { stream, peer, open }) = inbox.recv().await {
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(err) => {
                warn!(%peer, ?err, "An event loop could not take a connection.");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client = Arc::new(ClientConnection {
            peer_ip: HeaderValue::from_str(&peer.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            peer: peer.ip(),
            open,
            tls: shared.edge.is_some(),
        });
        if shared.edge.is_some() {
            connections.spawn(serve_tls(
                stream,
                peer,
                client,
                shared.clone(),
                stop.clone(),
            ));
            continue;
        }
        connections.spawn(serve_client(
            stream,
            peer,
            client,
            shared.clone(),
            stop.clone(),
        ));
    }
    stop.begin();
    connections.close();
    tokio::select! {
        () = connections.wait() => debug!("An event loop's client connections all finished."),
        () = tokio::time::sleep(shared.config.shutdown_grace) => {
            warn!(grace = ?shared.config.shutdown_grace, "Requests still in flight after the grace period were dropped.");
        }
    }
}

/// Serves one client in the protocol its first bytes name, until it leaves or the loop stops.
async fn serve_client(
    stream: TcpStream,
    peer: SocketAddr,
    client: Arc<ClientConnection>,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
) {
    let protocol = tokio::select! {
        protocol = first_request(&stream, shared.config.header_read_timeout) => protocol,
        () = stop.stopped() => return,
    };
    let Some(protocol) = protocol else {
        debug!(%peer, "A client sent no request within the header timeout.");
        return;
    };
    let service = {
        let shared = shared.clone();
        service_fn(move |req| shared.clone().answer(req, client.clone()))
    };
    let io = TokioIo::new(stream);
    let served = match protocol {
        Protocol::Http1 => {
            let connection = shared.http1.serve_connection(io, service).with_upgrades();
            stop.serve(connection, |c| c.graceful_shutdown()).await
        }
        Protocol::H2c => {
            let connection = shared.http2.serve_connection(io, service);
            stop.serve(connection, |c| c.graceful_shutdown()).await
        }
    };
    if let Err(err) = served {
        debug!(%peer, ?err, "A client connection ended with an error.");
    }
}

/// Serves one client over TLS: the handshake, bounded by its timeout, then HTTP/2 or HTTP/1.1 as
/// ALPN chose. A client that fails the handshake (plain HTTP on this port, an unknown name, a
/// certificate it distrusts) is closed and logged at debug level: each is one client's business.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    client: Arc<ClientConnection>,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
) {
    let Some(edge) = shared.edge.as_ref() else {
        return;
    };
    let limit = edge.settings.handshake_timeout;
    let handshake = tokio::time::timeout(limit, edge.acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                debug!(%peer, %err, "A TLS handshake failed.");
                return;
            }
            Err(_) => {
                debug!(%peer, ?limit, "A client did not finish its TLS handshake in time.");
                return;
            }
        },
        () = stop.stopped() => return,
    };
    let alpn = stream.get_ref().1.alpn_protocol();
    if alpn == Some(crate::acme::ACME_TLS_ALPN) {
        // A TLS-ALPN-01 validation ends with its handshake.
        return;
    }
    let h2 = alpn == Some(b"h2".as_slice());
    let service = {
        let shared = shared.clone();
        service_fn(move |req| {
            let answer = shared.clone().answer(req, client.clone());
            let hsts = shared.hsts.clone();
            async move {
                let mut response = answer.await?;
                if let Some(hsts) = hsts {
                    // The edge's value, not a funko's: HSTS covers the whole host, every
                    // funko and the admin, so one funko's `max-age=0` must not switch it off.
                    response
                        .headers_mut()
                        .insert(hyper::header::STRICT_TRANSPORT_SECURITY, hsts);
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let io = TokioIo::new(stream);
    let served = if h2 {
        let connection = shared.http2.serve_connection(io, service);
        stop.serve(connection, |c| c.graceful_shutdown()).await
    } else {
        let connection = shared.http1.serve_connection(io, service).with_upgrades();
        stop.serve(connection, |c| c.graceful_shutdown()).await
    };
    if let Err(err) = served {
        debug!(%peer, ?err, "A TLS client connection ended with an error.");
    }
}

impl Shared {
    /// On the funkos' listener: the local handler's answer for paths under its prefix, the
    /// proxy's own endpoints, and the forwarder's for the rest. On the admin listener: the
    /// proxy's own endpoints and the admin handler's answer for the rest. One flat future:
    /// every nested one would be copied whole on each request.
    async fn answer(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        client: Arc<ClientConnection>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let own = matches!(
            (req.method(), req.uri().path(), self.role),
            (&Method::GET, "/healthz" | "/metrics", Role::Admin)
        );
        if let Some(local) = self
            .local
            .as_ref()
            .filter(|l| !own && is_under(req.uri().path(), &l.prefix))
        {
            // The local handler (the admin) learns who asks: it slows a client's guesses.
            req.extensions_mut().insert(client.peer);
            let answer = self.caller.spawn((local.handler)(req)).await;
            return Ok(answer.unwrap_or_else(|err| {
                warn!(?err, "The local handler failed.");
                answer::error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed")
            }));
        }
        Ok(match (req.method(), req.uri().path(), self.role) {
            (&Method::GET, "/healthz", _) => {
                answer::text("application/json", "{\"status\":\"ok\"}\n".into())
            }
            (&Method::GET, "/metrics", Role::Admin | Role::Funkos { metrics: true }) => {
                let mut text = self.forwarder.metrics.render(
                    &self.routes.load(),
                    self.forwarder
                        .access_log
                        .as_ref()
                        .map_or(0, AccessLog::dropped),
                );
                self.routes.render_scale(&mut text);
                if let Some(edge) = &self.edge {
                    edge.render_metrics(&mut text);
                }
                answer::text("text/plain; version=0.0.4", text)
            }
            (_, _, Role::Admin) => answer::error(StatusCode::NOT_FOUND, "no such path"),
            _ => self.forwarder.forward(req, &client).await,
        })
    }
}

/// The protocol a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// HTTP/2 without TLS, told by its connection preface.
    H2c,
}

/// The protocol of the client's first request, or `None` if it starts none within `limit`.
/// hyper's header timeout only runs once a connection is served, so a client that sends
/// nothing, or a few bytes of the HTTP/2 preface, would otherwise hold its connection (and a
/// file descriptor) forever.
async fn first_request(stream: &TcpStream, limit: Duration) -> Option<Protocol> {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let known = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) if buf[..n] != H2_PREFACE[..n] => return Some(Protocol::Http1),
                Ok(n) if n == buf.len() => return Some(Protocol::H2c),
                // Part of the preface: peek returns at once, so wait before looking again.
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    tokio::time::timeout(limit, known).await.ok().flatten()
}

/// Whether `path` is `prefix` itself or below it (`/admin`, `/admin/…`, not `/administer`).
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// HTTP/1 settings: header limits and the slow-header / idle timeout.
fn http1_builder(config: &ProxyConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // The wait for each request head, on the loop's own deadlines (deadline.rs).
        .timer(LoopTimer)
        .keep_alive(true)
        // Flat writes, as towards instances (pool.rs).
        .writev(false)
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(MIN_HEADER_BUFFER));
    // Any explicit limit, even one equal to hyper's default, makes hyper size its header
    // arrays at run time for every request instead of using fixed ones.
    if config.max_headers != HYPER_MAX_HEADERS {
        builder.max_headers(config.max_headers);
    }
    builder
}

/// h2c settings: the header list limit.
fn http2_builder(config: &ProxyConfig) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(config.h2_max_streams.max(1))
        // Pings find a client that went away without closing (a laptop that slept, a NAT
        // that forgot the flow), whose connection would otherwise stay open for good.
        .keep_alive_interval(config.h2_keep_alive);
    if let Some(every) = config.h2_keep_alive {
        builder.keep_alive_timeout(every);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients go to the loop with the fewest open connections, a loop gets new ones again
    /// once its own have closed, and a loop that died gets none.
    #[tokio::test]
    async fn clients_are_spread_by_open_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut inboxes, loops): (Vec<_>, Vec<_>) = (0..3)
            .map(|_| {
                let (clients, inbox) = mpsc::unbounded_channel();
                let open = Arc::new(AtomicUsize::new(0));
                (inbox, EventLoop { clients, open })
            })
            .unzip();
        let (stop, stopped) = oneshot::channel::<()>();
        let acceptor = tokio::spawn(async move {
            let limit = Limit {
                max: usize::MAX,
                metrics: Arc::new(Metrics::default()),
            };
            accept(&listener, &loops, &limit, async {
                let _ = stopped.await;
            })
            .await;
        });
        let mut connected = Vec::new();
        let mut served: Vec<Vec<Client>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..9 {
            let (index, client) = connect(addr, &mut connected, &mut inboxes).await;
            served[index].push(client);
        }
        assert_eq!(served.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3]);

        // Loop 1's clients leave: the next two clients both go to it.
        served[1].clear();
        for _ in 0..2 {
            let (index, client) = connect(addr, &mut connected, &mut inboxes).await;
            assert_eq!(index, 1);
            served[index].push(client);
        }

        // Loop 2 dies (its inbox closes): though it now serves nobody, it gets no one.
        served[2].clear();
        inboxes[2].close();
        for _ in 0..3 {
            let (index, client) = connect(addr, &mut connected, &mut inboxes).await;
            assert_ne!(index, 2);
            served[index].push(client);
        }
        let _ = stop.send(());
        acceptor.await.unwrap();
    }

    /// Connects one client (kept open in `connected`) and returns the loop it was handed to.
    async fn connect(
        addr: SocketAddr,
        connected: &mut Vec<TcpStream>,
        inboxes: &mut [mpsc::UnboundedReceiver<Client>],
    ) -> (usize, Client) {
        connected.push(TcpStream::connect(addr).await.unwrap());
        wait_for_client(inboxes).await
    }

    async fn wait_for_client(inboxes: &mut [mpsc::UnboundedReceiver<Client>]) -> (usize, Client) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            for (index, inbox) in inboxes.iter_mut().enumerate() {
                if let Ok(client) = inbox.try_recv() {
                    return (index, client);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no client was handed over"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
