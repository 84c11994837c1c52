//! `weft secret`: set, list and delete a tenant's secrets on a server.
//! A value goes to the server once and is never shown again; it is read
//! from stdin unless `--value` is given, since a command line is visible
//! to every user of the machine (`ps`) and stays in shell history.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::EXIT_OK;
use super::client::{Client, Remote};

#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    #[command(subcommand)]
    command: SecretCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Set a secret, creating or replacing it. The value is read from
    /// stdin (one trailing newline is dropped), so that it shows up
    /// neither in `ps` nor in shell history; at a terminal it is asked for
    /// and not echoed.
    #[command(after_help = "Examples:\n  \
        weft secret set stripe_key < stripe.key\n  \
        printf %s \"$STRIPE_KEY\" | weft secret set stripe_key\n  \
        weft secret set stripe_key            (type it, then Ctrl-D)\n\n\
        Steps use it by name: `secrets: [stripe_key]` for the task to read,\n\
        or `${{ secrets.stripe_key }}` in an HTTP header.")]
    Set {
        /// The secret's name: letters, digits and `_`, not starting with a
        /// digit, up to 64 characters.
        name: String,
        /// The value itself, instead of reading stdin. Other users of this
        /// machine can see it in `ps` while the command runs: prefer stdin.
        #[arg(long)]
        value: Option<String>,
    },
    /// List the tenant's secrets: names, dates and the id of the key that
    /// sealed each. Values are never shown.
    List,
    /// Delete a secret. Steps that name it fail (`secret_missing`) from
    /// then on.
    Delete {
        /// The secret's name.
        name: String,
    },
}

/// The value from `--value`, or stdin without one trailing newline; typed
/// at a terminal, it is asked for and not echoed.
fn value(given: Option<String>) -> anyhow::Result<String> {
    if let Some(value) = given {
        return Ok(value);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return rpassword::prompt_password("value (not shown): ")
            .context("cannot read the secret's value from the terminal");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the secret's value from stdin (it must be UTF-8)")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn millis(value: &Value) -> String {
    value.as_u64().map(super::format_time).unwrap_or_else(|| "?".into())
}

pub(crate) async fn secret(SecretArgs { command, remote }: SecretArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = match command {
        SecretCommand::Set { name, value: given } => {
            if !crate::spec::is_secret_name(&name) {
                bail!(
                    "{name:?} is not a secret name: letters, digits and `_`, not starting with a digit, up to 64 \
                     characters"
                );
            }
            let value = value(given)?;
            let request = client
                .request(Method::PUT, &format!("/v1/secrets/{name}"))
                .json(&json!({ "value": value }));
            let response = client.execute(request).await?;
            let created = response.status() == reqwest::StatusCode::CREATED;
            let info: Value = response.json().await.context("the server's answer is not JSON")?;
            if !remote.json {
                let key = info["key_id"].as_str().unwrap_or("?");
                match created {
                    true => println!("secret {name} created (sealed with key {key})"),
                    false => println!("secret {name} replaced (sealed with key {key})"),
                }
            }
            info
        }
        SecretCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/secrets")).await?;
            if !remote.json {
                println!("{:<32} {:<21} {:<21} KEY", "SECRET", "CREATED", "UPDATED");
                for secret in list["secrets"].as_array().into_iter().flatten() {
                    println!(
                        "{:<32} {:<21} {:<21} {}",
                        secret["name"].as_str().unwrap_or("?"),
                        millis(&secret["created_at"]),
                        millis(&secret["updated_at"]),
                        secret["key_id"].as_str().unwrap_or("?")
                    );
                }
            }
            list
        }
        SecretCommand::Delete { name } => {
            if !crate::spec::is_secret_name(&name) {
                bail!("{name:?} is not a secret name");
            }
            client
                .send(client.request(Method::DELETE, &format!("/v1/secrets/{name}")))
                .await?;
            if !remote.json {
                println!("secret {name} deleted");
            }
            json!({"deleted": name})
        }
    };
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(EXIT_OK)
}
