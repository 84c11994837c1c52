//! `weft tenant`: tenants, their quotas and their API keys, through the
//! admin API (`/v1/admin/tenants`).

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::EXIT_OK;
use super::client::{AdminRemote, Client, Remote};
use super::remote::print_json;

#[derive(Debug, Args)]
pub(crate) struct TenantArgs {
    #[command(subcommand)]
    command: TenantCommand,
    #[command(flatten)]
    remote: AdminRemote,
}

/// Quotas to set; each one left out keeps its value (or, for a new
/// tenant, takes the server's default).
#[derive(Debug, Args)]
pub(crate) struct QuotaFlags {
    /// Runs unfinished at once.
    #[arg(long)]
    max_concurrent_runs: Option<u32>,
    /// Attempts running at once on one node (0: no cap but the node's
    /// slots) [default: 0].
    #[arg(long)]
    max_concurrent_attempts: Option<u32>,
    /// Fuel per attempt.
    #[arg(long)]
    max_fuel: Option<u64>,
    /// Memory per attempt, e.g. 128MiB.
    #[arg(long)]
    max_memory: Option<String>,
    /// Largest module upload, e.g. 16MiB.
    #[arg(long)]
    max_module_size: Option<String>,
    /// Module versions stored.
    #[arg(long)]
    max_modules: Option<u32>,
    /// Runs started per second.
    #[arg(long)]
    start_rate: Option<f64>,
    /// Days a finished run is kept before it is deleted [default: 30].
    #[arg(long)]
    retention_days: Option<u32>,
    /// Where the tenant's tasks may send HTTP requests: a URL pattern
    /// (`https://api.example.com`, `https://*.example.org:8443/v1`) or a
    /// private address or range (`10.0.0.0/8`). Repeat for more; the list
    /// given replaces the tenant's.
    #[arg(long = "http-allow", value_name = "PATTERN")]
    http_allow: Vec<String>,
    /// Allow HTTP requests nowhere (clears the list).
    #[arg(long, conflicts_with = "http_allow")]
    no_http: bool,
    /// HTTP requests per attempt.
    #[arg(long)]
    max_http_requests: Option<u32>,
    /// Request body bytes one attempt may send, e.g. 10MiB.
    #[arg(long)]
    max_http_sent: Option<String>,
    /// Response body bytes one attempt may receive, e.g. 32MiB.
    #[arg(long)]
    max_http_received: Option<String>,
    /// Store the tenant's payloads (inputs, outputs, logs, kv values)
    /// sealed under a key of its own (`true`), or as they are (`false`).
    /// Values already stored stay as they were. Needs a server master key.
    #[arg(long, value_name = "BOOL")]
    encrypt_payloads: Option<bool>,
}

impl QuotaFlags {
    /// The quotas given, as the API's JSON.
    fn to_json(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let size = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<Value>> {
            value
                .as_ref()
                .map(|v| {
                    crate::sandbox::parse_size(v)
                        .map(Value::from)
                        .map_err(|e| anyhow::anyhow!("--{flag} {v:?}: {e}"))
                })
                .transpose()
        };
        let mut quotas = serde_json::Map::new();
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                quotas.insert(key.into(), value);
            }
        };
        set("max_concurrent_runs", self.max_concurrent_runs.map(Value::from));
        set("max_concurrent_attempts", self.max_concurrent_attempts.map(Value::from));
        set("max_fuel", self.max_fuel.map(Value::from));
        set("max_memory", size("max-memory", &self.max_memory)?);
        set("max_module_size", size("max-module-size", &self.max_module_size)?);
        set("max_modules", self.max_modules.map(Value::from));
        set("start_rate", self.start_rate.map(Value::from));
        set("retention_days", self.retention_days.map(Value::from));
        if self.no_http || !self.http_allow.is_empty() {
            set("http_allow", Some(json!(self.http_allow)));
        }
        set("max_http_requests", self.max_http_requests.map(Value::from));
        set("max_http_sent", size("max-http-sent", &self.max_http_sent)?);
        set("max_http_received", size("max-http-received", &self.max_http_received)?);
        set("encrypt_payloads", self.encrypt_payloads.map(Value::from));
        Ok(quotas)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant; prints its first API key (shown only once).
    #[command(after_help = "Example:\n  \
        weft tenant create acme --max-concurrent-runs 50 \\\n    \
        --http-allow https://api.stripe.com --encrypt-payloads true")]
    Create {
        /// Its name (also its id).
        name: String,
        #[command(flatten)]
        quotas: QuotaFlags,
    },
    /// Change a tenant's quotas; those not given keep their values.
    /// Limits apply to what starts afterwards.
    #[command(after_help = "Example:\n  weft tenant set acme --encrypt-payloads true --max-fuel 5000000000")]
    Set {
        /// The tenant.
        id: String,
        #[command(flatten)]
        quotas: QuotaFlags,
    },
    /// Show a tenant with its quotas.
    Show {
        /// The tenant.
        id: String,
    },
    /// List tenants.
    List,
    /// Disable a tenant: its keys get 403.
    Disable {
        /// The tenant.
        id: String,
    },
    /// Enable a disabled tenant.
    Enable {
        /// The tenant.
        id: String,
    },
    /// Make a new API key for a tenant (shown only once).
    AddKey {
        /// The tenant.
        id: String,
        /// What the key may do: viewer (read), operator (+ act on runs),
        /// developer (+ push and configure), admin (+ the tenant's keys).
        #[arg(long, default_value = "admin")]
        role: super::key::RoleArg,
    },
    /// Revoke an API key.
    RevokeKey {
        /// The tenant.
        id: String,
        /// The key's id (the part after `wk_`, before the next `_`).
        key_id: String,
    },
}

pub(crate) async fn tenant(TenantArgs { command, remote: admin }: TenantArgs) -> anyhow::Result<u8> {
    let remote = Remote::from(&admin);
    let client = Client::new(&remote)?;
    let answer = match command {
        TenantCommand::Create { name, quotas } => {
            let body = json!({"name": name, "quotas": quotas.to_json()?});
            let created = client
                .send(client.request(Method::POST, "/v1/admin/tenants").json(&body))
                .await?;
            if !remote.json {
                println!("tenant {name} created. Its API key (shown only this once):");
                println!("{}", created["api_key"]["token"].as_str().unwrap_or("?"));
            }
            created
        }
        TenantCommand::Set { id, quotas } => {
            let quotas = quotas.to_json()?;
            if quotas.is_empty() {
                anyhow::bail!("give at least one quota to change (see `weft tenant set --help`)");
            }
            let tenant = client
                .send(
                    client
                        .request(Method::PATCH, &format!("/v1/admin/tenants/{id}"))
                        .json(&json!({"quotas": quotas})),
                )
                .await?;
            if !remote.json {
                println!("tenant {id} changed:");
                print_quotas(&tenant);
            }
            tenant
        }
        TenantCommand::Show { id } => {
            let tenant = client
                .send(client.request(Method::GET, &format!("/v1/admin/tenants/{id}")))
                .await?;
            if !remote.json {
                println!(
                    "tenant {id} ({})",
                    if tenant["disabled"] == true {
                        "disabled"
                    } else {
                        "enabled"
                    }
                );
                print_quotas(&tenant);
            }
            tenant
        }
        TenantCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/admin/tenants")).await?;
            if !remote.json {
                println!(
                    "{:<24} {:<9} {:>9} {:>8} {:<8}",
                    "TENANT", "STATE", "MAX RUNS", "RATE/S", "SEALED"
                );
                for tenant in list["tenants"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<9} {:>9} {:>8} {:<8}",
                        tenant["id"].as_str().unwrap_or("?"),
                        if tenant["disabled"] == true {
                            "disabled"
                        } else {
                            "enabled"
                        },
                        tenant["quotas"]["max_concurrent_runs"].to_string(),
                        tenant["quotas"]["start_rate"].to_string(),
                        if tenant["quotas"]["encrypt_payloads"] == true {
                            "yes"
                        } else {
                            "no"
                        }
                    );
                }
            }
            list
        }
        TenantCommand::Disable { id } => {
            admin_post(&client, &remote, &format!("/v1/admin/tenants/{id}/disable")).await?
        }
        TenantCommand::Enable { id } => admin_post(&client, &remote, &format!("/v1/admin/tenants/{id}/enable")).await?,
        TenantCommand::AddKey { id, role } => {
            let request = client
                .request(Method::POST, &format!("/v1/admin/tenants/{id}/keys"))
                .json(&json!({"role": role.name()}));
            let key = client.send(request).await?;
            if !remote.json {
                println!(
                    "new {} key {} for {id} (shown only this once):",
                    key["role"].as_str().unwrap_or("?"),
                    key["key_id"].as_str().unwrap_or("?")
                );
                println!("{}", key["token"].as_str().unwrap_or("?"));
            }
            key
        }
        TenantCommand::RevokeKey { id, key_id } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/admin/tenants/{id}/keys/{key_id}")))
                .await?;
            if !remote.json {
                println!("key {key_id} of {id} revoked");
            }
            json!({"revoked": key_id})
        }
    };
    if remote.json {
        print_json(&answer)?;
    }
    Ok(EXIT_OK)
}

/// Each quota of `tenant`, one per line.
fn print_quotas(tenant: &Value) {
    for (name, value) in tenant["quotas"].as_object().into_iter().flatten() {
        println!("  {name:<24} {value}");
    }
}

async fn admin_post(client: &Client, remote: &Remote, path: &str) -> anyhow::Result<Value> {
    let tenant = client.send(client.request(Method::POST, path)).await?;
    if !remote.json {
        println!(
            "tenant {} {}",
            tenant["id"].as_str().unwrap_or("?"),
            if tenant["disabled"] == true {
                "disabled"
            } else {
                "enabled"
            }
        );
    }
    Ok(tenant)
}
