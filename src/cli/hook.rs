//! `weft hook`: set, list and delete a tenant's inbound hooks on a server
//! (`/v1/hooks`). Senders POST to the path a hook shows, signed with the
//! value of the tenant secret it names.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::EXIT_OK;
use super::client::{Client, Remote};

#[derive(Debug, Args)]
pub(crate) struct HookArgs {
    #[command(subcommand)]
    command: HookCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum HookCommand {
    /// Create or replace an inbound hook: signed POSTs to its path start
    /// runs of the workflow.
    #[command(after_help = "Example:\n  \
        weft secret set stripe_hook < whsec.txt\n  \
        weft hook set stripe --workflow refund --secret stripe_hook \\\n      \
        --input \"{'order': body.data.object.metadata.order, 'amount': body.data.object.amount}\"\n\n\
        Senders sign each request: header X-Weft-Signature: t=UNIX_SECONDS,v1=HEX, where HEX is\n\
        HMAC-SHA256(secret, t + \".\" + body); the time must be within 5 minutes. An\n\
        Idempotency-Key header names the delivery (a repeat starts no second run).")]
    Set {
        /// The hook's name.
        name: String,
        /// The workflow each accepted request starts a run of.
        #[arg(long, short = 'w')]
        workflow: String,
        /// The tenant secret whose value signs requests (`weft secret set`).
        #[arg(long)]
        secret: String,
        /// A CEL expression over `body` and `headers` giving the run's
        /// input (an object); without it the body is the input.
        #[arg(long, short = 'i', value_name = "CEL")]
        input: Option<String>,
    },
    /// List the tenant's hooks and the paths senders POST to.
    List,
    /// Delete a hook: its requests are refused from then on.
    Delete {
        /// The hook's name.
        name: String,
    },
}

pub(crate) async fn hook(HookArgs { command, remote }: HookArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = match command {
        HookCommand::Set {
            name,
            workflow,
            secret,
            input,
        } => {
            let mut body = json!({"workflow": workflow, "secret": secret});
            if let Some(input) = input {
                body["input"] = json!(input);
            }
            let request = client.request(Method::PUT, &format!("/v1/hooks/{name}")).json(&body);
            let response = client.execute(request).await?;
            let created = response.status() == reqwest::StatusCode::CREATED;
            let view: Value = response.json().await.context("the server's answer is not JSON")?;
            if !remote.json {
                println!(
                    "hook {name} {}: senders POST to {}{}",
                    if created { "created" } else { "replaced" },
                    client.base(),
                    view["path"].as_str().unwrap_or("?")
                );
            }
            view
        }
        HookCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/hooks")).await?;
            if !remote.json {
                println!("{:<24} {:<24} {:<24} PATH", "HOOK", "WORKFLOW", "SECRET");
                for hook in list["hooks"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<24} {:<24} {}",
                        hook["name"].as_str().unwrap_or("?"),
                        hook["workflow"].as_str().unwrap_or("?"),
                        hook["secret"].as_str().unwrap_or("?"),
                        hook["path"].as_str().unwrap_or("?")
                    );
                }
            }
            list
        }
        HookCommand::Delete { name } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/hooks/{name}")))
                .await?;
            if !remote.json {
                println!("hook {name} deleted");
            }
            json!({"deleted": name})
        }
    };
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(EXIT_OK)
}
