//! `weft key`: a tenant's own API keys, for a key whose role is `admin`
//! (`/v1/api-keys`), and `weft whoami`.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::EXIT_OK;
use super::client::{Client, Remote};

/// A role, as the command line names it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    /// Reads everything of the tenant.
    Viewer,
    /// A viewer that also starts, cancels, retries, resets, pauses and
    /// resumes runs, signals and decides approvals.
    Operator,
    /// An operator that also pushes modules and workflows and sets
    /// schedules, hooks and secrets.
    Developer,
    /// A developer that also manages the tenant's keys.
    Admin,
}

impl RoleArg {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RoleArg::Viewer => "viewer",
            RoleArg::Operator => "operator",
            RoleArg::Developer => "developer",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Make a key for your tenant with a role; its token is shown once.
    #[command(after_help = "Example:\n  weft key create --role viewer    (a key for a dashboard that only reads)")]
    Create {
        /// What the key may do.
        #[arg(long, default_value = "viewer")]
        role: RoleArg,
    },
    /// List your tenant's keys: ids, roles and dates, never secrets.
    List,
    /// Revoke one of your tenant's keys at once.
    Revoke {
        /// The key's id (the part of its token after `wk_`, before the
        /// next `_`).
        key_id: String,
    },
}

/// `weft key ...`.
pub(crate) async fn key(KeyArgs { command, remote }: KeyArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = match command {
        KeyCommand::Create { role } => {
            let request = client
                .request(Method::POST, "/v1/api-keys")
                .json(&json!({"role": role.name()}));
            let key = client.send(request).await?;
            if !remote.json {
                println!(
                    "new {} key {} (shown only this once):",
                    key["role"].as_str().unwrap_or("?"),
                    key["key_id"].as_str().unwrap_or("?")
                );
                println!("{}", key["token"].as_str().unwrap_or("?"));
            }
            key
        }
        KeyCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/api-keys")).await?;
            if !remote.json {
                println!("{:<16} {:<10} {:<21}", "KEY", "ROLE", "CREATED");
                for key in list["keys"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<10} {:<21}{}",
                        key["key_id"].as_str().unwrap_or("?"),
                        key["role"].as_str().unwrap_or("?"),
                        key["created_at"].as_u64().map(super::format_time).unwrap_or_default(),
                        if key["current"] == true { "  (this key)" } else { "" }
                    );
                }
            }
            list
        }
        KeyCommand::Revoke { key_id } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/api-keys/{key_id}")))
                .await?;
            if !remote.json {
                println!("key {key_id} revoked");
            }
            json!({"revoked": key_id})
        }
    };
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(EXIT_OK)
}

/// `weft whoami`: the tenant, key and role a token acts as.
pub(crate) async fn whoami(remote: Remote) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let me: Value = client.send(client.request(Method::GET, "/v1/whoami")).await?;
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&me)?);
    } else {
        println!(
            "key {} of tenant {}: role {} ({})",
            me["key_id"].as_str().unwrap_or("?"),
            me["tenant"].as_str().unwrap_or("?"),
            me["role"].as_str().unwrap_or("?"),
            me["permissions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(EXIT_OK)
}
