//! `faaso`: the command line of faaso, wiring the schema, reconciler and proxy crates together.
#![forbid(unsafe_code)]

mod backend;
mod cmd;
mod discovery;
mod remote;
mod report;
mod scaler;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc: each request through the proxy allocates and frees two
/// 8 KiB read buffers (hyper's), a size glibc serves from its slow path. 5.4 % fewer
/// instructions per request for 2-3 MiB more resident memory (docs/PROXY.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// faaso: self-hosted functions on Docker. Drop a funko folder into funkos/, faaso builds and
/// serves it.
#[derive(Debug, Parser)]
#[command(
    name = "faaso",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new funko from a runtime's template.
    New(cmd::new::NewArgs),
    /// List the built-in runtimes.
    Runtimes,
    /// Check funko folders (or a whole funkos/ folder) and list every problem.
    Validate(cmd::validate::ValidateArgs),
    /// Print the JSON Schema of funko.yml.
    Schema,
    /// Write a funko's complete build context (runtime merged, Dockerfile rendered) to a folder.
    Export(cmd::export::ExportArgs),
    /// Build funko images, reusing an existing tag: on the server when one is configured
    /// (nothing rolls out), else (or with -l) through the local Docker API.
    Build(cmd::build::BuildArgs),
    /// Show what `reconcile` would do, touching nothing.
    Plan(cmd::plan::PlanArgs),
    /// Make Docker match the funkos folder: `--once`, or `--watch` until stopped.
    Reconcile(cmd::reconcile::ReconcileArgs),
    /// Show each funko's desired and ready instances, image and last error.
    Status(cmd::status::StatusArgs),
    /// Show the output of all of a funko's instances.
    Logs(cmd::logs::LogsArgs),
    /// Start a funko (scale it to at least 1 in its funko.yml) and converge.
    Up(cmd::scale::NameArgs),
    /// Stop a funko (scale 0 in its funko.yml) and converge.
    Down(cmd::scale::NameArgs),
    /// Set a funko's scale in its funko.yml and converge; without a number, print it.
    Scale(cmd::scale::ScaleArgs),
    /// Remove a funko's instances and images; its folder stays, with scale 0.
    Purge(cmd::scale::NameArgs),
    /// Run the proxy in the foreground, routing /funko/<name>/ to ready instances.
    Proxy(cmd::proxy::ProxyCommand),
    /// Run reconciler (watching), proxy and admin API in one process: what a server runs.
    Server(cmd::server::ServerArgs),
    /// Keep a faaso server's address and admin token; later commands act on that server.
    Login(cmd::login::LoginArgs),
    /// Forget the saved server; commands act on the local engine again.
    Logout,
    /// Send a funko folder to the server and follow its rollout.
    Deploy(cmd::deploy::DeployArgs),
    /// Set, remove or list a funko's secrets (values are never shown).
    Secret(cmd::secret::SecretArgs),
    /// Print this client's version and, with a server configured, the server's.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS implementation for every HTTPS client and server of the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAASO_LOG")
                // The verifier logs each refused certificate itself; the CLI's error says it
                // better, with what to do.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,rustls_platform_verifier=off")
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::New(args) => cmd::new::run(&cli.global, args),
        Command::Runtimes => cmd::runtimes::run(),
        Command::Validate(args) => cmd::validate::run(&cli.global, args),
        Command::Schema => {
            print!("{}", faaso_schema::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => cmd::export::run(&cli.global, args),
        Command::Build(args) => block_on(cmd::build::run(&cli.global, args)),
        Command::Plan(args) => block_on(cmd::plan::run(&cli.global, args)),
        Command::Reconcile(args) => block_on(cmd::reconcile::run(&cli.global, args)),
        Command::Status(args) => block_on(cmd::status::run(&cli.global, args)),
        Command::Logs(args) => block_on(cmd::logs::run(&cli.global, args)),
        Command::Up(args) => block_on(cmd::scale::run(
            &cli.global,
            &args.name,
            &args.funkos.dir,
            None,
        )),
        Command::Down(args) => block_on(cmd::scale::run(
            &cli.global,
            &args.name,
            &args.funkos.dir,
            Some(0),
        )),
        Command::Scale(args) => match args.scale {
            Some(scale) => block_on(cmd::scale::run(
                &cli.global,
                &args.name,
                &args.funkos.dir,
                Some(scale),
            )),
            None => block_on(cmd::scale::show(&cli.global, &args.name, &args.funkos.dir)),
        },
        Command::Purge(args) => block_on(cmd::purge::run(&cli.global, args)),
        Command::Proxy(command) => block_on(cmd::proxy::run_command(&cli.global, command)),
        Command::Server(args) => block_on(cmd::server::run_command(&cli.global, args)),
        Command::Login(args) => block_on(cmd::login::login(args)),
        Command::Logout => cmd::login::logout(),
        Command::Deploy(args) => block_on(cmd::deploy::run(&cli.global, args)),
        Command::Secret(args) => block_on(cmd::secret::run(&cli.global, args)),
        Command::Version => block_on(cmd::version::run(&cli.global)),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

fn block_on<F: Future<Output = anyhow::Result<ExitCode>>>(future: F) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}
