//! `faaso server`: the reconciler (watching), the proxy and the admin API in one process,
//! sharing one route table: an instance gets traffic the moment it is ready and none from the
//! moment before it is stopped. On Swarm it is the control plane only (`swarm.rs`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use faaso_admin::{
    AdminEvent, AdminState, Engine, SecretStore, StatusBoard, Token, Traffic, TrafficReading,
    UploadLimits,
};
use faaso_proxy::{FunkoSettings, HealthChecker, InstanceId};
use faaso_reconciler::{
    Demand, DockerEngine, Listener, PassReport, Started, StepInfo, Triggers, WatchTiming,
};
use tokio_util::sync::CancellationToken;

mod swarm;

use super::proxy::ProxyArgs;
use super::proxy::container::{self, Launch};
use super::{BackendKind, FunkosDir, Global};
use crate::discovery::{candidates, settings};
use crate::scaler::{Scaler, Scaling};

/// Arguments of `faaso server`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct ServerArgs {
    /// Run as the `faaso-proxy` container instead of in the foreground.
    #[command(subcommand)]
    pub action: Option<ServerAction>,
    #[command(flatten)]
    pub funkos: FunkosDir,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Where the admin API, the web UI and `/metrics` listen: apart from the funkos' port, so a
    /// funko's page never shares a browser origin with the admin. With `up`, the host address
    /// the container's admin port is published on.
    #[arg(long, env = "FAASO_ADMIN_LISTEN", default_value = "127.0.0.1:8889")]
    pub admin_listen: std::net::SocketAddr,
    /// The admin API's bearer token; without it one is made at first start and kept in the
    /// state directory (0600).
    #[arg(long, env = "FAASO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What `faaso server` does besides running in the foreground.
#[derive(Debug, clap::Subcommand)]
pub enum ServerAction {
    /// Run the server as the `faaso-proxy` container (funkos and state folders mounted at the
    /// same paths, the Docker socket mounted), publishing its port on the host.
    Up(super::proxy::UpArgs),
    /// Stop and remove that container; the funko containers keep running.
    Down,
}

/// Runs `faaso server`, `faaso server up` or `faaso server down`.
pub async fn run_command(global: &Global, args: ServerArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        None => run(global, args).await,
        Some(_) if global.backend == BackendKind::Swarm => anyhow::bail!(
            "`faaso server up` and `down` run the server as a container on one Docker engine, not \
             on --backend swarm (FAASO_BACKEND=swarm): run `faaso server --backend swarm` where it \
             reaches the manager (a systemd unit on a manager node, say), and `faaso proxy up \
             --backend swarm` for port 8888 on every node"
        ),
        Some(ServerAction::Up(up)) => {
            let launch =
                launch(global, &args)?.with_tls(&args.proxy, &global.state_dir, up.port)?;
            container::up_with(
                &global.namespace(),
                &launch,
                args.proxy.shutdown_grace,
                up.bind,
                up.port,
            )
            .await
        }
        Some(ServerAction::Down) => container::down(&global.namespace()).await,
    }
}

/// The server as a container runs: the funkos and state folders are mounted at the same absolute
/// paths, so the secret files it bind-mounts into instances are the host's.
fn launch(global: &Global, args: &ServerArgs) -> anyhow::Result<Launch> {
    let absolute = |path: &std::path::Path| -> anyhow::Result<String> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(std::fs::canonicalize(path)?.display().to_string())
    };
    let funkos = absolute(&args.funkos.dir)?;
    let state = absolute(&global.state_dir)?;
    let mut command = vec![
        "--state-dir".to_owned(),
        state.clone(),
        "--base-images".to_owned(),
        format!("{:?}", global.base_images).to_lowercase(),
        "server".to_owned(),
        funkos.clone(),
        "--listen".to_owned(),
        format!("0.0.0.0:{}", container::INNER_PORT),
        "--admin-listen".to_owned(),
        format!("0.0.0.0:{}", container::INNER_ADMIN_PORT),
    ];
    command.extend(args.proxy.passed_on());
    // A given token goes into the state folder (0600), not the container's environment, where
    // `docker inspect` would show it.
    if let Some(token) = &args.token {
        let token = Token::new(token)?;
        token.store(&global.state_dir)?;
    }
    Ok(Launch {
        args: command,
        binds: vec![format!("{funkos}:{funkos}"), format!("{state}:{state}")],
        env: Vec::new(),
        what: "faaso server",
        tls: false,
        redirect: None,
        admin: Some(args.admin_listen),
        // A secret file is handed to the funkos' uid (CHOWN), after which the server, root
        // without DAC_OVERRIDE, reads it back for its version only through DAC_READ_SEARCH;
        // with neither, funkos got no secrets under `server up`.
        caps: vec!["CHOWN".to_owned(), "DAC_READ_SEARCH".to_owned()],
    })
}

/// Runs until SIGINT or SIGTERM; the funko containers keep running after it stops.
pub async fn run(global: &Global, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let funkos_dir = &args.funkos.dir;
    std::fs::create_dir_all(funkos_dir)
        .with_context(|| format!("creating the funkos folder {}", funkos_dir.display()))?;
    sweep_staging(funkos_dir);
    if global.backend == BackendKind::Swarm {
        return swarm::run(global, args).await;
    }
    let mut reconciler = global.reconciler(funkos_dir).await?;
    let routes = faaso_proxy::Routes::new();
    let health = HealthChecker::new(routes.clone(), args.proxy.probe_config());
    let board = StatusBoard::with_progress({
        let in_flight = reconciler.in_flight();
        Arc::new(move |funko: &str| in_flight.get(funko))
    });
    let triggers = Triggers::new();
    let traffic = {
        let routes = routes.clone();
        Traffic::new(Arc::new(move || readings(&routes)), TRAFFIC_SAMPLE_EVERY)
    };
    traffic.spawn_sampler();
    let engine = reconciler.backend();
    let admin = admin_state(
        global,
        &args,
        &board,
        &triggers,
        Arc::new(engine.clone()),
        engine.clone(),
        traffic,
    )?;
    // Autoscaled funkos: the proxy's first held request wakes one; the scaler decides counts.
    let demand = Demand::default();
    reconciler.follow_demand(demand.clone());
    let scaling = Scaling::default();
    let (wakes, woken) = tokio::sync::mpsc::unbounded_channel();
    routes.on_demand(move |funko| {
        let _ = wakes.send(funko.to_owned());
    });
    let scaler = Scaler {
        backend: reconciler.backend().clone(),
        routes: routes.clone(),
        health: health.clone(),
        demand,
        passes: triggers.sender(),
        scaling: scaling.clone(),
    };
    let proxy = super::proxy::bind(proxy_config(global, &args)?, routes)
        .await?
        .with_admin(faaso_admin::router(admin))?;
    let listener = ServerListener {
        health,
        board,
        default_timeout: args.proxy.request_timeout,
        scaling,
    };
    let stop = CancellationToken::new();
    let scaling = scaler.run(woken, stop.clone());
    let watched = faaso_reconciler::watch(
        &mut reconciler,
        Arc::new(listener),
        WatchTiming::default(),
        triggers,
        stop.clone(),
    );
    let reconciling = async { tokio::join!(watched, scaling).0 };
    serve_until_signal(proxy, reconciling, stop, "the funko containers").await?;
    Ok(ExitCode::SUCCESS)
}

/// The proxy's settings: the funkos' listener from the proxy flags, the admin one beside it.
fn proxy_config(global: &Global, args: &ServerArgs) -> anyhow::Result<faaso_proxy::ProxyConfig> {
    Ok(faaso_proxy::ProxyConfig {
        admin_listen: Some(args.admin_listen),
        ..args.proxy.proxy_config(&global.state_dir)?
    })
}

/// Serves `proxy` and runs `reconciling` (which ends once `stop` is cancelled) until SIGINT or
/// SIGTERM; `left_running` names what goes on without the server.
async fn serve_until_signal<E: std::error::Error + Send + Sync + 'static>(
    proxy: faaso_proxy::Proxy,
    reconciling: impl Future<Output = Result<(), E>>,
    stop: CancellationToken,
    left_running: &str,
) -> anyhow::Result<()> {
    let serving = proxy.serve(stop.clone().cancelled_owned());
    let signalled = async {
        super::shutdown_signal().await;
        tracing::info!("stopping; {left_running} keep running");
        stop.cancel();
    };
    let (served, reconciled, ()) = tokio::join!(serving, reconciling, signalled);
    served.context("serving")?;
    reconciled.context("watching the funkos folder")?;
    Ok(())
}

/// The admin API's state: `engine` runs the instances, `builder` builds the images. The token is
/// the one given, or the one kept in the state directory (made and printed at first start).
fn admin_state(
    global: &Global,
    args: &ServerArgs,
    board: &StatusBoard,
    triggers: &Triggers,
    engine: Arc<dyn Engine>,
    builder: DockerEngine,
    traffic: Traffic,
) -> anyhow::Result<Arc<AdminState>> {
    let token = match &args.token {
        Some(token) => Token::new(token)?,
        None => {
            let (token, created) = Token::load_or_create(&global.state_dir)?;
            if created {
                // Printed this once only; afterwards it is in the state directory.
                println!(
                    "admin token (kept in {}/token): {}",
                    global.state_dir.display(),
                    token.reveal()
                );
            }
            token
        }
    };
    let settings = crate::backend::settings(global, &args.funkos.dir);
    Ok(Arc::new(AdminState {
        funkos_dir: settings.funkos_dir,
        secrets: SecretStore::new(settings.secrets_dir),
        token,
        board: board.clone(),
        trigger: triggers.sender(),
        engine,
        builder,
        traffic,
        namespace: settings.namespace,
        limits: UploadLimits::default(),
        base_policy: settings.base_policy,
        backend: match global.backend {
            super::BackendKind::Docker => "docker",
            super::BackendKind::Swarm => "swarm",
        },
    }))
}

/// Logs a step's end, as a server's log shows every step.
fn log_step<S: StepInfo>(step: &S, error: Option<&str>) {
    let (funko, action, detail) = super::plan::describe(step);
    match error {
        None => tracing::info!(%funko, action, %detail, "done"),
        Some(error) => tracing::warn!(%funko, action, %detail, %error, "failed"),
    }
}

/// How often the web UI's traffic charts get a point.
const TRAFFIC_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Every routed funko's request counters and ready instances, for the admin's traffic history.
fn readings(routes: &faaso_proxy::Routes) -> Vec<TrafficReading> {
    let table = routes.load();
    table
        .iter()
        .map(|(funko, route)| {
            let counts = route.counts();
            TrafficReading {
                funko: funko.to_owned(),
                requests: counts.requests,
                server_errors: counts.server_errors,
                latency: counts.latency,
                ready: route
                    .instances()
                    .iter()
                    .map(|i| i.id().as_str().to_owned())
                    .collect(),
            }
        })
        .collect()
}

/// Removes what an upload or delete interrupted by a crash left in the funkos folder: hidden
/// `.upload-*` and `.deleted-*` folders (the reconciler never reads hidden folders).
fn sweep_staging(funkos_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(funkos_dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".upload-") || name.starts_with(".deleted-") {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!(folder = %name, "removed an interrupted upload or delete"),
                Err(error) => {
                    tracing::warn!(folder = %name, %error, "cannot remove a stale staging folder")
                }
            }
        }
    }
}

/// Keeps the proxy's route table, the scaler and the admin board in step with the reconciler.
struct ServerListener {
    health: HealthChecker,
    board: StatusBoard,
    default_timeout: Duration,
    scaling: Scaling,
}

impl ServerListener {
    /// A funko's proxy settings: its timeout and CORS, and for an autoscaled funko how many
    /// requests are held while it wakes and how many one instance serves at once.
    fn settings(
        &self,
        funko: &str,
        timeout: Duration,
        cors: Option<&faaso_schema::Cors>,
    ) -> FunkoSettings {
        let mut settings = settings(timeout, cors);
        if let Some((queue, limit)) = self.scaling.holding(funko) {
            settings.queue = queue;
            settings.limit = limit;
        }
        settings
    }
}

impl<S: StepInfo> Listener<S> for ServerListener {
    fn step_finished(&self, step: &S, error: Option<&str>) {
        log_step(step, error);
    }

    fn instance_ready(&self, funko: &str, instance: &Started) {
        let routes = self.health.routes();
        // The ready instance carries its funko's current settings (timeout, CORS): a funko made
        // known while at work had only defaults.
        let settings = self.settings(funko, instance.request_timeout, instance.cors.as_ref());
        routes.set_funko(funko, settings);
        routes.insert_ready(funko, InstanceId::new(instance.id.as_str()), instance.addr);
        self.scaling.instance_ready(funko, routes);
        tracing::info!(%funko, instance = %instance.name, "routed");
        self.board.publish(AdminEvent::InstanceReady {
            funko: funko.to_owned(),
            instance: instance.name.clone(),
        });
    }

    fn instance_leaving(&self, funko: &str, id: &str) {
        self.health.remove_instance(funko, &InstanceId::new(id));
        self.board.publish(AdminEvent::InstanceLeaving {
            funko: funko.to_owned(),
            instance: id.to_owned(),
        });
    }

    fn pass_finished(&self, report: &PassReport<S>) {
        self.scaling.pass_finished(report);
        let mut funkos = candidates(&report.observed.instances, self.default_timeout);
        for (name, (settings, candidates)) in &mut funkos {
            // An instance the scaler is parking may still be listed running.
            candidates.retain(|c| !self.scaling.is_idle(name, c.id.as_str()));
            if let Some((queue, limit)) = self.scaling.holding(name) {
                settings.queue = queue;
                settings.limit = limit;
            }
        }
        // A funko with no instance is still known: its requests get 503 (or are held while
        // it wakes), not 404.
        for funko in report.funkos.iter().filter(|f| f.desired.is_some()) {
            let timeout = report
                .desired
                .funkos
                .get(&funko.name)
                .and_then(|d| d.autoscaled.as_ref())
                .map_or(self.default_timeout, |a| a.timeout);
            funkos
                .entry(funko.name.clone())
                .or_insert_with(|| (self.settings(&funko.name, timeout, None), Vec::new()));
        }
        // A funko at work may have moved on from what this pass saw (an instance it routed or
        // took out since): its work keeps its instances' routes, not this view. It is known all
        // the same (its requests are held or get 503, not 404); one whose folder went is not.
        let at_work =
            |name: &str| report.busy.contains(name) && report.desired.funkos.contains_key(name);
        let routes = self.health.routes();
        for (name, (settings, _)) in funkos.iter().filter(|(name, _)| at_work(name)) {
            if routes.load().get(name).is_none() {
                routes.set_funko(name, settings.clone());
            }
        }
        self.health.sync_except(funkos, at_work);
        routes.retain_scaled(|name| self.scaling.holding(name).is_some());
        // A funko that cannot start answers its held requests now, with the reason.
        for funko in &report.funkos {
            if let Some(error) = &funko.error
                && routes.load().get(&funko.name).is_some_and(|r| r.held() > 0)
            {
                routes.wake_failed(&funko.name, error);
            }
        }
        let mut statuses = report.funkos.clone();
        for status in &mut statuses {
            status.last_decision = self.scaling.last_decision(&status.name);
        }
        self.board.pass_finished(statuses, report.plan.len());
    }
}
