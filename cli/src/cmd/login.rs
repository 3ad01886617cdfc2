//! `faaso login <url>` and `faaso logout`: keep (or forget) a faaso server and its admin token,
//! so that later commands act on that server.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::remote::{Login, Refused, Remote, Trust, server_url};

/// Arguments of `faaso login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's admin address (its `--admin-listen`), for example
    /// `https://faaso.example.com:8889` or `127.0.0.1:8889`.
    pub url: String,
    /// The admin token (the one `faaso server` printed at first start, or its FAASO_TOKEN);
    /// asked for when absent.
    #[arg(long, env = "FAASO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM file with the certificate of the private CA that signed the server's certificate
    /// (besides the system's roots); its path is kept with the login.
    #[arg(long, env = "FAASO_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Send the token over plain http:// to a server that is not on this machine. Anyone on
    /// the network path can read it; kept with the login.
    #[arg(long)]
    pub insecure_plain_http: bool,
}

/// Checks the token against the server and saves the login.
pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = server_url(&args.url)?;
    let ca_cert = match &args.ca_cert {
        Some(_) if !server.starts_with("https://") => {
            bail!("--ca-cert verifies an https:// server; {server} is plain http://")
        }
        Some(path) => Some(
            std::fs::canonicalize(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?,
        ),
        None => None,
    };
    let trust = Trust {
        ca_cert,
        insecure_plain_http: args.insecure_plain_http,
    };
    // Before the token is even asked for.
    trust.check_scheme(&server)?;
    let token = match args.token {
        Some(token) => token,
        None => String::from_utf8(read_hidden(&format!("admin token for {server}: "))?)
            .context("the token is not text")?,
    };
    let token = token.trim();
    if token.is_empty() {
        bail!("no token given; pass --token, set FAASO_TOKEN, or type it when asked");
    }
    let remote = Remote::new(&server, token, &trust)?;
    let board = remote.board().await.map_err(|e| {
        if e.downcast_ref::<Refused>().is_some() {
            anyhow::anyhow!(
                "the server at {server} refused this token (401); check it and try again"
            )
        } else {
            e
        }
    })?;
    let path = Login {
        server: server.clone(),
        token: token.to_owned(),
        ca_cert: trust.ca_cert.clone(),
        insecure_plain_http: trust.insecure_plain_http,
    }
    .save()?;
    println!(
        "logged in to {server} ({} funkos); the login is kept in {}",
        board.funkos.len(),
        path.display()
    );
    if server.starts_with("http://") && !crate::remote::trust::is_loopback(&server) {
        eprintln!(
            "warning: --insecure-plain-http: every command sends the token to {server} in the clear"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Forgets the saved login.
pub fn logout() -> anyhow::Result<ExitCode> {
    let saved = Login::load().ok().flatten();
    match Login::remove()? {
        Some(path) => {
            let server = saved.map_or_else(|| "the server".to_owned(), |l| l.server);
            println!(
                "logged out of {server} (removed {}); commands act on the local engine again",
                path.display()
            );
        }
        None => println!("not logged in; nothing to do"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a secret: on a terminal, one line typed after `prompt` without echo; otherwise all of
/// standard input. One trailing newline is dropped.
pub fn read_hidden(prompt: &str) -> anyhow::Result<Vec<u8>> {
    read_hidden_as(prompt, Typed::Line)
}

/// Reads a secret that may span lines: on a terminal, everything typed after `prompt` without
/// echo until Ctrl-D; otherwise all of standard input. One trailing newline is dropped.
pub fn read_hidden_lines(prompt: &str) -> anyhow::Result<Vec<u8>> {
    read_hidden_as(prompt, Typed::UntilEof)
}

/// How much a person types on a terminal.
#[derive(Clone, Copy)]
enum Typed {
    Line,
    UntilEof,
}

fn read_hidden_as(prompt: &str, typed: Typed) -> anyhow::Result<Vec<u8>> {
    let stdin = std::io::stdin();
    let mut bytes = Vec::new();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let echo_off = EchoOff::new(&stdin);
        let read = match typed {
            Typed::Line => {
                let mut line = String::new();
                let read = stdin.read_line(&mut line);
                bytes = line.into_bytes();
                read
            }
            Typed::UntilEof => stdin.lock().read_to_end(&mut bytes),
        };
        drop(echo_off);
        eprintln!();
        read.context("cannot read from the terminal")?;
    } else {
        stdin
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(bytes)
}

/// Turns terminal echo off until dropped.
struct EchoOff<'a> {
    stdin: &'a std::io::Stdin,
    saved: Option<rustix::termios::Termios>,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a std::io::Stdin) -> Self {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(stdin, OptionalActions::Now, &quiet);
        }
        Self { stdin, saved }
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                self.stdin,
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}
