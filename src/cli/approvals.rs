//! `weft approvals`, `weft approve` and `weft reject`: the approval steps
//! waiting for a person, and their decisions.

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, Remote};
use super::remote::print_json;
use super::{EXIT_OK, format_time};

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct DecideArgs {
    /// The run's id.
    run: u64,
    /// The approval step's id.
    step: String,
    /// Who decides: one of the step's approvers (or, once it escalated, of
    /// its escalation's targets).
    #[arg(long = "as", env = "WEFT_USER", value_name = "NAME")]
    by: String,
    /// Why; recorded with the decision.
    #[arg(long, short = 'm')]
    comment: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn list(ListArgs { remote }: ListArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = client.send(client.request(Method::GET, "/v1/approvals")).await?;
    if remote.json {
        print_json(&answer)?;
        return Ok(EXIT_OK);
    }
    let approvals = answer["approvals"].as_array().cloned().unwrap_or_default();
    if approvals.is_empty() {
        println!("no approvals are waiting");
        return Ok(EXIT_OK);
    }
    println!(
        "{:<8} {:<20} {:<20} {:<21} {:<21} WHO MAY DECIDE",
        "RUN", "WORKFLOW", "STEP", "SINCE", "EXPIRES"
    );
    for approval in approvals {
        let time = |field: &str| approval[field].as_u64().map_or_else(|| "-".to_string(), format_time);
        let who: Vec<&str> = approval["deciders"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let escalated = if approval["escalated"] == true {
            " (escalated)"
        } else {
            ""
        };
        println!(
            "{:<8} {:<20} {:<20} {:<21} {:<21} {}{escalated}",
            approval["run"].to_string(),
            approval["workflow"].as_str().unwrap_or("?"),
            approval["step"].as_str().unwrap_or("?"),
            time("since"),
            time("expires_at"),
            who.join(", "),
        );
    }
    Ok(EXIT_OK)
}

pub(crate) async fn decide(args: DecideArgs, approve: bool) -> anyhow::Result<u8> {
    let DecideArgs {
        run,
        step,
        by,
        comment,
        remote,
    } = args;
    let client = Client::new(&remote)?;
    let decision = if approve { "approve" } else { "reject" };
    let body = json!({"decision": decision, "by": by, "comment": comment});
    let answer = client
        .send(
            client
                .request(Method::POST, &format!("/v1/runs/{run}/approvals/{step}"))
                .json(&body),
        )
        .await?;
    if remote.json {
        print_json(&answer)?;
    } else {
        let done = if approve { "approved" } else { "rejected" };
        println!("run {run}: step `{step}` {done} by {by}");
    }
    Ok(EXIT_OK)
}
