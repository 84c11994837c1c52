//! `weft audit`: the tenant's audit trail (or, with the admin token and
//! `--server`, the server's), newest first.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::EXIT_OK;
use super::client::{Client, Remote};

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// The server's trail (the admin token's requests), with the admin
    /// token in --token or WEFT_TOKEN.
    #[arg(long)]
    server: bool,
    /// At most this many entries (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Start after this cursor (a page's `next_cursor`).
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn audit(args: AuditArgs) -> anyhow::Result<u8> {
    let client = Client::new(&args.remote)?;
    let path = if args.server { "/v1/admin/audit" } else { "/v1/audit" };
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(cursor) = &args.cursor {
        query.push(("cursor", cursor.clone()));
    }
    let page = client.send(client.request(Method::GET, path).query(&query)).await?;
    if args.remote.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(EXIT_OK);
    }
    println!(
        "{:<21} {:<22} {:<7} {:<38} {:>6} {:<8}",
        "AT", "WHO", "METHOD", "PATH", "STATUS", "OUTCOME"
    );
    for entry in page["entries"].as_array().into_iter().flatten() {
        let who = match (entry["key_id"].as_str(), entry["role"].as_str()) {
            (Some(key), Some(role)) => format!("{key} ({role})"),
            _ => "admin".to_string(),
        };
        println!(
            "{:<21} {:<22} {:<7} {:<38} {:>6} {:<8}",
            entry["at"].as_u64().map(super::format_time).unwrap_or_default(),
            who,
            entry["method"].as_str().unwrap_or("?"),
            entry["path"].as_str().unwrap_or("?"),
            entry["status"],
            entry["outcome"].as_str().unwrap_or("?"),
        );
    }
    if let Some(next) = page["next_cursor"].as_str().map(Value::from) {
        println!("more: weft audit --cursor {}", next.as_str().unwrap_or_default());
    }
    Ok(EXIT_OK)
}
