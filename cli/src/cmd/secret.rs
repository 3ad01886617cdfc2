//! `faaso secret set|rm|ls`: a funko's secret values, on the server (or, with no server, in the
//! local state directory the reconciler mounts them from). Values are never printed.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use faaso_admin::SecretStore;
use faaso_schema::{FunkoName, SecretKey};

use super::Global;
use super::login::read_hidden_lines;
use crate::remote;

/// Arguments of `faaso secret`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub action: SecretAction,
}

/// What to do with a secret.
#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Set a secret; its funko's instances roll to pick it up.
    Set {
        /// The funko.
        funko: String,
        /// The key: the file name under /secrets/ inside the funko's containers.
        key: String,
        /// The value; read from standard input when `-` or absent (on a terminal: not echoed,
        /// any number of lines, ended by Ctrl-D).
        value: Option<String>,
    },
    /// Remove a secret.
    Rm {
        /// The funko.
        funko: String,
        /// The key.
        key: String,
    },
    /// List every funko's secret keys (never their values).
    Ls {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `faaso secret …` on the server, or on the local state directory.
pub async fn run(global: &Global, args: SecretArgs) -> anyhow::Result<ExitCode> {
    let remote = remote::select(global)?;
    let store = SecretStore::new(global.state_dir.join("secrets"));
    match args.action {
        SecretAction::Set { funko, key, value } => {
            let (name, secret_key) = parse(&funko, &key)?;
            let value = match value.as_deref() {
                None | Some("-") => read_hidden_lines(&format!(
                    "value of {funko}/{key} (not echoed; may span lines; end with Ctrl-D): "
                ))?,
                Some(value) => value.as_bytes().to_vec(),
            };
            if value.is_empty() {
                return Err(anyhow!(
                    "the value of `{funko}/{key}` is empty; nothing was set (`faaso secret rm` removes a secret)"
                ));
            }
            match &remote {
                Some(remote) => remote.set_secret(&funko, &key, value).await?,
                None => store.set(&name, &secret_key, &value)?,
            }
            println!("{funko}: secret `{key}` set; its instances roll to pick it up");
        }
        SecretAction::Rm { funko, key } => {
            let (name, secret_key) = parse(&funko, &key)?;
            match &remote {
                Some(remote) => remote.remove_secret(&funko, &key).await?,
                None => {
                    if !store.remove(&name, &secret_key)? {
                        return Err(anyhow!("funko `{funko}` has no secret `{key}`"));
                    }
                }
            }
            println!("{funko}: secret `{key}` removed");
        }
        SecretAction::Ls { json } => {
            let keys = match &remote {
                Some(remote) => remote.secrets().await?,
                None => store.keys(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no secrets");
            } else {
                let width = keys.keys().map(String::len).max().unwrap_or(5).max(5);
                println!("{:width$}  KEY", "FUNKO");
                for (funko, keys) in &keys {
                    for key in keys {
                        println!("{funko:width$}  {key}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(funko: &str, key: &str) -> anyhow::Result<(FunkoName, SecretKey)> {
    let name = FunkoName::new(funko).with_context(|| format!("`{funko}` is not a funko name"))?;
    let key = SecretKey::new(key).map_err(|e| anyhow!(e))?;
    Ok((name, key))
}
