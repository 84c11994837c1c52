//! `weft signal`: send a signal to a run, for the `wait_for` step waiting
//! for it (or the one that will).

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{Client, Remote};
use super::remote::print_json;
use super::{EXIT_OK, read_arg};

#[derive(Debug, Args)]
pub(crate) struct SignalArgs {
    /// The run's id.
    run: u64,
    /// The signal's name, as the workflow's `wait_for` step names it.
    name: String,
    /// The payload, which becomes the waiting step's output: JSON, or
    /// @FILE to read it from a file. Without it the payload is `null`.
    #[arg(long, short = 'd', value_name = "JSON|@FILE")]
    data: Option<String>,
    /// The signal's id: sending a signal with the same id to the same run
    /// again changes nothing (safe to retry).
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn signal(
    SignalArgs {
        run,
        name,
        data,
        id,
        remote,
    }: SignalArgs,
) -> anyhow::Result<u8> {
    let payload: Value = match &data {
        Some(data) => {
            let text = read_arg(data)?;
            serde_json::from_str(&text).with_context(|| format!("--data is not JSON: {}", short(&text)))?
        }
        None => Value::Null,
    };
    let client = Client::new(&remote)?;
    let mut request = client
        .request(Method::POST, &format!("/v1/runs/{run}/signals/{name}"))
        .json(&payload);
    if let Some(id) = &id {
        request = request.header("Idempotency-Key", id);
    }
    let answer = client.send(request).await?;
    if remote.json {
        print_json(&answer)?;
        return Ok(EXIT_OK);
    }
    match answer["outcome"].as_str() {
        Some("taken") => println!(
            "run {run}: step `{}` took signal `{name}`",
            answer["step"].as_str().unwrap_or("?")
        ),
        Some("kept") => println!("run {run}: signal `{name}` kept for the step that will wait for it"),
        Some("duplicate") => println!("run {run}: signal `{name}` with this id was sent before; nothing changed"),
        _ => println!("run {run}: signal `{name}` accepted"),
    }
    Ok(EXIT_OK)
}

/// The start of a long text, for a message.
fn short(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
