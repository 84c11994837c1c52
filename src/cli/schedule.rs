//! `weft schedule`: set, list, show, pause, resume and delete a tenant's
//! schedules on a server (`/v1/schedules`).

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Client, Remote};
use super::{EXIT_OK, read_arg};

#[derive(Debug, Args)]
pub(crate) struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Overlap {
    /// A fire while the last run is unfinished starts nothing.
    Skip,
    /// Keep the newest such fire; start it when the last run ends.
    BufferOne,
    /// Start anyway.
    Allow,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CatchUp {
    /// Instants missed while no node ran are dropped.
    Skip,
    /// The most recent missed instant fires once.
    Latest,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Create or replace a schedule: each instant of the cron expression,
    /// read in the time zone, starts one run of the workflow, however
    /// many nodes serve the store.
    #[command(after_help = "Examples:\n  \
        weft schedule set nightly --cron '0 2 * * *' --tz Europe/Paris --workflow report\n  \
        weft schedule set sync --cron '*/15 * * * *' --workflow sync -i '{\"full\": false}' --overlap buffer-one\n  \
        weft schedule set tick --cron '*/10 * * * * *' --workflow ping   (six fields: seconds first)")]
    Set {
        /// The schedule's name.
        name: String,
        /// Five cron fields (minute hour day-of-month month day-of-week),
        /// six with seconds first, or @hourly, @daily, @weekly, ...
        #[arg(long)]
        cron: String,
        /// The IANA time zone the expression is read in.
        #[arg(long = "tz", default_value = "UTC")]
        timezone: String,
        /// The workflow each instant starts a run of.
        #[arg(long, short = 'w')]
        workflow: String,
        /// The runs' input: a JSON object, or @FILE.
        #[arg(long, short = 'i', value_name = "JSON|@FILE")]
        input: Option<String>,
        /// What an instant does while the last run is unfinished.
        #[arg(long, value_enum, default_value = "skip")]
        overlap: Overlap,
        /// What happens to instants missed while no node ran.
        #[arg(long, value_enum, default_value = "skip")]
        catch_up: CatchUp,
        /// How late an instant may be seen and still fire as usual
        /// (default 1m); later ones count as missed.
        #[arg(long)]
        grace: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// List the tenant's schedules with their next instant.
    List,
    /// Show a schedule: its definition, counters and next instants.
    Show {
        /// The schedule's name.
        name: String,
    },
    /// Pause a schedule: it fires nothing until resumed.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Resume a paused schedule from its next instant after now (instants
    /// passed while paused are not fired).
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Delete a schedule; the runs it started are not touched.
    Delete {
        /// The schedule's name.
        name: String,
    },
}

fn value_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().replace('-', "_"))
        .unwrap_or_default()
}

pub(crate) async fn schedule(ScheduleArgs { command, remote }: ScheduleArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = match command {
        ScheduleCommand::Set {
            name,
            cron,
            timezone,
            workflow,
            input,
            overlap,
            catch_up,
            grace,
            paused,
        } => {
            let input: Map<String, Value> = match &input {
                Some(text) => serde_json::from_str(&read_arg(text)?).context("--input is not a JSON object")?,
                None => Map::new(),
            };
            let mut body = json!({
                "cron": cron,
                "timezone": timezone,
                "workflow": workflow,
                "input": input,
                "overlap": value_name(overlap),
                "catch_up": value_name(catch_up),
                "paused": paused,
            });
            if let Some(grace) = grace {
                body["grace"] = json!(grace);
            }
            let request = client
                .request(Method::PUT, &format!("/v1/schedules/{name}"))
                .json(&body);
            let response = client.execute(request).await?;
            let created = response.status() == reqwest::StatusCode::CREATED;
            let view: Value = response.json().await.context("the server's answer is not JSON")?;
            if !remote.json {
                println!("schedule {name} {}", if created { "created" } else { "replaced" });
                print_next(&view);
            }
            view
        }
        ScheduleCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/schedules")).await?;
            if !remote.json {
                println!(
                    "{:<24} {:<18} {:<16} {:<20} {:<26} {:>6}",
                    "SCHEDULE", "CRON", "ZONE", "WORKFLOW", "NEXT", "RUNS"
                );
                for s in list["schedules"].as_array().into_iter().flatten() {
                    let next = match s["paused"].as_bool() {
                        Some(true) => "paused".to_string(),
                        _ => s["next_fires"][0].as_str().unwrap_or("-").to_string(),
                    };
                    println!(
                        "{:<24} {:<18} {:<16} {:<20} {:<26} {:>6}",
                        s["name"].as_str().unwrap_or("?"),
                        s["cron"].as_str().unwrap_or("?"),
                        s["timezone"].as_str().unwrap_or("?"),
                        s["workflow"].as_str().unwrap_or("?"),
                        next,
                        s["state"]["fired"].as_u64().unwrap_or(0)
                    );
                }
            }
            list
        }
        ScheduleCommand::Show { name } => {
            let view = client
                .send(client.request(Method::GET, &format!("/v1/schedules/{name}")))
                .await?;
            if !remote.json {
                show(&view);
            }
            view
        }
        ScheduleCommand::Pause { name } => toggle(&client, &remote, &name, "pause").await?,
        ScheduleCommand::Resume { name } => toggle(&client, &remote, &name, "resume").await?,
        ScheduleCommand::Delete { name } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/schedules/{name}")))
                .await?;
            if !remote.json {
                println!("schedule {name} deleted");
            }
            json!({"deleted": name})
        }
    };
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(EXIT_OK)
}

async fn toggle(client: &Client, remote: &Remote, name: &str, action: &str) -> anyhow::Result<Value> {
    let view = client
        .send(client.request(Method::POST, &format!("/v1/schedules/{name}/{action}")))
        .await?;
    if !remote.json {
        match view["paused"].as_bool() {
            Some(true) => println!("schedule {name} paused"),
            _ => {
                println!("schedule {name} running");
                print_next(&view);
            }
        }
    }
    Ok(view)
}

fn print_next(view: &Value) {
    let next: Vec<&str> = view["next_fires"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !next.is_empty() {
        println!("next: {}", next.join(", "));
    }
}

fn show(view: &Value) {
    let state = &view["state"];
    println!("schedule   {}", view["name"].as_str().unwrap_or("?"));
    println!(
        "cron       {} ({})",
        view["cron"].as_str().unwrap_or("?"),
        view["timezone"].as_str().unwrap_or("?")
    );
    println!("workflow   {}", view["workflow"].as_str().unwrap_or("?"));
    println!("input      {}", view["input"]);
    println!(
        "policies   overlap {}, catch-up {}, grace {}",
        view["overlap"].as_str().unwrap_or("?"),
        view["catch_up"].as_str().unwrap_or("?"),
        view["grace"].as_str().unwrap_or("1m")
    );
    if view["paused"].as_bool() == Some(true) {
        println!("paused");
    }
    println!(
        "fired      {} (skipped {}, missed {})",
        state["fired"].as_u64().unwrap_or(0),
        state["skipped"].as_u64().unwrap_or(0),
        state["missed"].as_u64().unwrap_or(0)
    );
    if let Some(run) = state["last_run"].as_u64() {
        println!("last run   {run}");
    }
    if let Some(error) = state["last_error"].as_str() {
        println!("last error {error}");
    }
    print_next(view);
}
