//! `weft nodes`: the nodes serving a store, as the server's registry
//! shows them.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::EXIT_OK;
use super::client::{AdminRemote, Client, Remote};

#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    #[command(flatten)]
    remote: AdminRemote,
}

pub(crate) async fn nodes(NodesArgs { remote: admin }: NodesArgs) -> anyhow::Result<u8> {
    let remote = Remote::from(&admin);
    let client = Client::new(&remote)?;
    let list = client.send(client.request(Method::GET, "/v1/admin/nodes")).await?;
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(EXIT_OK);
    }
    println!(
        "{:<24} {:>6} {:<9} {:<22} {:>9} {:>9} {:>10}",
        "NODE", "INC", "STATE", "ADDRESS", "LOAD", "CLAIMS/S", "HEARTBEAT"
    );
    for node in list["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:>6} {:<9} {:<22} {:>9} {:>9.1} {:>10}",
            text(&node["node_id"]),
            node["incarnation"],
            text(&node["state"]),
            text(&node["address"]),
            format!("{}/{}", node["running"], node["capacity"]),
            node["claims_per_s"].as_f64().unwrap_or(0.0),
            format!("{} ms ago", node["heartbeat_age_ms"]),
        );
    }
    Ok(EXIT_OK)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}
