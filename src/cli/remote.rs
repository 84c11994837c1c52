//! The commands that drive a `weft serve` over HTTP: modules, workflows,
//! runs and tenants. Tables for people, `--json` for scripts.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, Remote};
use super::{EXIT_FAILED, EXIT_OK, read_arg};

#[derive(Debug, Args)]
pub(crate) struct ModuleArgs {
    #[command(subcommand)]
    command: ModuleCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct WorkflowArgs {
    #[command(subcommand)]
    command: WorkflowCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct RunArg {
    /// The run's id.
    run: u64,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The run's id.
    run: u64,
    /// The step's id.
    step: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The run's id.
    run: u64,
    /// Follow the run live until it ends; exit 1 unless it succeeded.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    /// The run's id.
    run: u64,
    /// The step to run again from: one that succeeded.
    #[arg(long, value_name = "STEP")]
    from: String,
    /// Follow the run live until it ends; exit 1 unless it succeeded.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModuleCommand {
    /// Upload a task component (validated and compiled by the server).
    #[command(disable_version_flag = true)]
    Push {
        /// The module's name, as workflow steps name it in `task:`.
        name: String,
        /// The .wasm component.
        file: PathBuf,
        /// A version label [default: the digest's first 12 hex digits].
        #[arg(long)]
        version: Option<String>,
    },
    /// List modules and their versions.
    List,
    /// Delete a module and all its versions (refused while an unfinished
    /// run uses it).
    Delete {
        /// The module's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// Push a workflow document (YAML or JSON); its `name` names it.
    Push {
        /// The document.
        file: PathBuf,
    },
    /// List workflows.
    List,
    /// Show a workflow's versions and newest document.
    Get {
        /// The workflow's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The workflow's name.
    workflow: String,
    /// The input: JSON text, or @FILE.
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// Higher runs are scheduled first.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    priority: i32,
    /// Starting again with the same key returns the same run.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Follow the run live until it ends; exit 1 unless it succeeded.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// Only runs of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    /// Only runs in this state (running, succeeded, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// At most this many (1 to 500).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Continue after a previous page (its printed cursor).
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn module(ModuleArgs { command, remote }: ModuleArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = match command {
        ModuleCommand::Push { name, file, version } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut request = client
                .request(Method::PUT, &format!("/v1/modules/{name}"))
                .header("content-type", "application/wasm")
                .body(bytes);
            if let Some(version) = version {
                request = request.query(&[("version", version)]);
            }
            let module = client.send(request).await?;
            if !remote.json {
                println!(
                    "module {} version {} ({}, {} bytes)",
                    module["name"].as_str().unwrap_or("?"),
                    module["version"].as_str().unwrap_or("?"),
                    module["digest"].as_str().unwrap_or("?"),
                    module["size"]
                );
            }
            module
        }
        ModuleCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/modules")).await?;
            if !remote.json {
                println!("{:<24} {:<16} {:>8}  DIGEST", "MODULE", "LATEST", "VERSIONS");
                for module in list["modules"].as_array().into_iter().flatten() {
                    let versions = module["versions"].as_array().map_or(0, Vec::len);
                    let digest = module["versions"]
                        .as_array()
                        .and_then(|v| v.iter().find(|v| v["version"] == module["latest"]))
                        .and_then(|v| v["digest"].as_str())
                        .unwrap_or("");
                    println!(
                        "{:<24} {:<16} {versions:>8}  {digest}",
                        module["name"].as_str().unwrap_or("?"),
                        module["latest"].as_str().unwrap_or("?")
                    );
                }
            }
            list
        }
        ModuleCommand::Delete { name } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/modules/{name}")))
                .await?;
            if !remote.json {
                println!("module {name} deleted");
            }
            json!({"deleted": name})
        }
    };
    if remote.json {
        print_json(&answer)?;
    }
    Ok(EXIT_OK)
}

pub(crate) async fn workflow(WorkflowArgs { command, remote }: WorkflowArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let answer = match command {
        WorkflowCommand::Push { file } => {
            let source = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let document = crate::spec::parse_document(&source, &crate::spec::SpecConfig::default())
                .map_err(|e| anyhow::anyhow!("{} is not a valid workflow:\n{e}", file.display()))?;
            let is_json = source.trim_start().starts_with('{');
            let request = client
                .request(Method::PUT, &format!("/v1/workflows/{}", document.name.value))
                .header(
                    "content-type",
                    if is_json {
                        "application/json"
                    } else {
                        "application/yaml"
                    },
                )
                .body(source);
            let workflow = client.send(request).await?;
            if !remote.json {
                println!(
                    "workflow {} version {} ({})",
                    workflow["name"].as_str().unwrap_or("?"),
                    workflow["latest"]["version"],
                    workflow["latest"]["digest"].as_str().unwrap_or("?")
                );
            }
            workflow
        }
        WorkflowCommand::List => {
            let list = client.send(client.request(Method::GET, "/v1/workflows")).await?;
            if !remote.json {
                println!("{:<24} {:>8}  DIGEST", "WORKFLOW", "VERSION");
                for workflow in list["workflows"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:>8}  {}",
                        workflow["name"].as_str().unwrap_or("?"),
                        workflow["latest"]["version"].to_string(),
                        workflow["latest"]["digest"].as_str().unwrap_or("?")
                    );
                }
            }
            list
        }
        WorkflowCommand::Get { name } => {
            let workflow = client
                .send(client.request(Method::GET, &format!("/v1/workflows/{name}")))
                .await?;
            if !remote.json {
                for version in workflow["versions"].as_array().into_iter().flatten() {
                    println!(
                        "version {:>3}  {}",
                        version["version"].to_string(),
                        version["digest"].as_str().unwrap_or("?")
                    );
                }
                println!("\n{}", workflow["source"].as_str().unwrap_or(""));
            }
            workflow
        }
    };
    if remote.json {
        print_json(&answer)?;
    }
    Ok(EXIT_OK)
}

pub(crate) async fn start(args: StartArgs) -> anyhow::Result<u8> {
    let remote = args.remote;
    let client = Client::new(&remote)?;
    let input: Value = serde_json::from_str(&read_arg(&args.input)?).context("--input is not JSON")?;
    let mut request = client
        .request(Method::POST, &format!("/v1/workflows/{}/runs", args.workflow))
        .json(&json!({"input": input, "priority": args.priority}));
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let run = client.send(request).await?;
    let id = run["id"].as_u64().context("the server gave no run id")?;
    if !args.wait {
        if remote.json {
            print_json(&run)?;
        } else {
            println!("run {id} of {} started", args.workflow);
        }
        return Ok(EXIT_OK);
    }
    eprintln!("run {id} of {} started", args.workflow);
    wait(&client, id, remote.json).await
}

/// Follows a run to its end, showing each step, then prints it.
async fn wait(client: &Client, id: u64, as_json: bool) -> anyhow::Result<u8> {
    client.follow(id, print_event).await?;
    let run = client
        .send(client.request(Method::GET, &format!("/v1/runs/{id}")))
        .await?;
    if as_json {
        print_json(&run)?;
    } else if !run["output"].is_null() {
        print_json(&run["output"])?;
    } else if !run["error"].is_null() {
        println!(
            "run {id} {}: {}",
            run["status"].as_str().unwrap_or("?"),
            failure(&run["error"])
        );
    }
    Ok(if run["status"] == "succeeded" {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `step`, or `step[i]` for an item of a `for_each` step, from a JSON
/// event or step view.
fn step_label(value: &Value) -> String {
    let step = value["step"].as_str().unwrap_or("?");
    match value["item"].as_u64() {
        Some(item) => format!("{step}[{item}]"),
        None => step.to_string(),
    }
}

fn print_event(event: &Value) {
    let step = step_label(event);
    match event["event"].as_str().unwrap_or("") {
        "attempt_finished" => {
            let time = std::time::Duration::from_micros(event["duration_us"].as_u64().unwrap_or(0));
            eprintln!(
                "  {step:<24} attempt {}  {:<14} {time:>10.1?}",
                event["attempt"],
                event["outcome"].as_str().unwrap_or("?")
            );
        }
        "retry_scheduled" => {
            let wait = event["due"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(event["at"].as_u64().unwrap_or(0));
            eprintln!("  {step:<24} retrying in {wait} ms");
        }
        "step_finished" => eprintln!("  {step:<24} {}", event["status"].as_str().unwrap_or("?")),
        "run_finished" => eprintln!("run {}", event["status"].as_str().unwrap_or("?")),
        "run_retried" => eprintln!("run retried"),
        "run_reset" => eprintln!(
            "run reset to run again from `{}`",
            event["from"].as_str().unwrap_or("?")
        ),
        "waiting" => match event["signal"].as_str() {
            Some(signal) => eprintln!("  {step:<24} waiting for signal `{signal}`"),
            None => eprintln!("  {step:<24} waiting"),
        },
        "child_started" => eprintln!("  {step:<24} started child run {}", event["run"]),
        "approval_escalated" => {
            let to: Vec<&str> = event["to"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            eprintln!("  {step:<24} escalated: {} may decide too", to.join(", "));
        }
        "approval_decided" => {
            let what = if event["approved"] == true {
                "approved"
            } else {
                "rejected"
            };
            eprintln!("  {step:<24} {what} by {}", event["by"].as_str().unwrap_or("?"));
        }
        _ => {}
    }
}

fn failure(error: &Value) -> String {
    let step = error["step"]
        .as_str()
        .map(|s| format!(" in step {s}"))
        .unwrap_or_default();
    format!(
        "{}{step}: {}",
        error["code"].as_str().unwrap_or("?"),
        error["message"].as_str().unwrap_or("?")
    )
}

pub(crate) async fn runs(args: RunsArgs) -> anyhow::Result<u8> {
    let remote = args.remote;
    let client = Client::new(&remote)?;
    let mut query = vec![("limit", args.limit.to_string())];
    query.extend(args.workflow.map(|w| ("workflow", w)));
    query.extend(args.status.map(|s| ("status", s)));
    query.extend(args.cursor.map(|c| ("cursor", c)));
    let page = client
        .send(client.request(Method::GET, "/v1/runs").query(&query))
        .await?;
    if remote.json {
        print_json(&page)?;
        return Ok(EXIT_OK);
    }
    println!(
        "{:>8}  {:<24} {:<10} {:>8}  ERROR",
        "RUN", "WORKFLOW", "STATUS", "PRIORITY"
    );
    for run in page["runs"].as_array().into_iter().flatten() {
        let error = if run["error"].is_null() {
            String::new()
        } else {
            failure(&run["error"])
        };
        println!(
            "{:>8}  {:<24} {:<10} {:>8}  {error}",
            run["id"].to_string(),
            run["workflow"].as_str().unwrap_or("?"),
            run["status"].as_str().unwrap_or("?"),
            run["priority"].to_string()
        );
    }
    if let Some(cursor) = page["next_cursor"].as_str() {
        println!("more: --cursor {cursor}");
    }
    Ok(EXIT_OK)
}

pub(crate) async fn status(RunArg { run: id, remote }: RunArg) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let run = client
        .send(client.request(Method::GET, &format!("/v1/runs/{id}")))
        .await?;
    if remote.json {
        print_json(&run)?;
    } else {
        let paused = if run["paused"] == true { " (paused)" } else { "" };
        println!(
            "run {id} of {}: {}{paused}",
            run["workflow"].as_str().unwrap_or("?"),
            run["status"].as_str().unwrap_or("?")
        );
        if let Some(parent) = run["parent"].as_object() {
            println!(
                "  child of run {}, step `{}`",
                parent["run"],
                parent["step"].as_str().unwrap_or("?")
            );
        }
        println!(
            "  {:<24} {:<10} {:>8} {:>12} {:>10}",
            "STEP", "STATUS", "ATTEMPTS", "FUEL", "TIME"
        );
        for step in run["steps"].as_array().into_iter().flatten() {
            let name = step_label(step);
            let attempts = step["attempts"].as_array().cloned().unwrap_or_default();
            let fuel: u64 = attempts.iter().filter_map(|a| a["fuel_used"].as_u64()).sum();
            let micros: u64 = attempts.iter().filter_map(|a| a["duration_us"].as_u64()).sum();
            let time = std::time::Duration::from_micros(micros);
            println!(
                "  {name:<24} {:<10} {:>8} {fuel:>12} {time:>10.1?}",
                step["status"].as_str().unwrap_or("?"),
                attempts.len()
            );
            if let Some(due) = step["due"].as_u64() {
                println!("    wakes at {}", super::format_time(due));
            }
            if let Some(child) = step["child"].as_u64() {
                println!("    child run {child}");
            }
            for attempt in &attempts {
                for call in attempt["http"].as_array().into_iter().flatten() {
                    println!("    attempt {}: {}", attempt["attempt"], http_call(call));
                }
            }
        }
        if !run["output"].is_null() {
            println!("output: {}", run["output"]);
        }
        if !run["error"].is_null() {
            println!("error: {}", failure(&run["error"]));
        }
    }
    Ok(match run["status"].as_str() {
        Some("succeeded") | Some("running") => EXIT_OK,
        _ => EXIT_FAILED,
    })
}

/// One outbound request of an attempt, on one line: `POST URL -> 201
/// (52 B out, 130 B in, 4 ms)`, or why it was refused or failed.
fn http_call(call: &Value) -> String {
    let method = call["method"].as_str().unwrap_or("?");
    let url = call["url"].as_str().unwrap_or("?");
    let outcome = match (
        call["refused"].as_str(),
        call["status"].as_u64(),
        call["error"].as_str(),
    ) {
        (Some(why), _, _) => format!("refused: {why}"),
        (None, Some(status), None) => status.to_string(),
        (None, Some(status), Some(error)) => format!("{status}, then {error}"),
        (None, None, error) => format!("failed: {}", error.unwrap_or("?")),
    };
    format!(
        "{method} {url} -> {outcome} ({} B out, {} B in, {} ms)",
        call["sent"], call["received"], call["duration_ms"]
    )
}

pub(crate) async fn logs(LogsArgs { run: id, step, remote }: LogsArgs) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let logs = client
        .send(client.request(Method::GET, &format!("/v1/runs/{id}/steps/{step}/logs")))
        .await?;
    if remote.json {
        print_json(&logs)?;
        return Ok(EXIT_OK);
    }
    for attempt in logs["attempts"].as_array().into_iter().flatten() {
        let item = attempt["item"]
            .as_u64()
            .map(|i| format!(" item {i}"))
            .unwrap_or_default();
        println!(
            "== {step}{item} attempt {} ({})",
            attempt["attempt"],
            attempt["outcome"].as_str().unwrap_or("?")
        );
        for line in attempt["lines"].as_array().into_iter().flatten() {
            println!(
                "{:<5} {}",
                line["level"].as_str().unwrap_or("?"),
                line["message"].as_str().unwrap_or("")
            );
        }
        for call in attempt["http"].as_array().into_iter().flatten() {
            println!("http  {}", http_call(call));
        }
        for stream in ["stdout", "stderr"] {
            if let Some(text) = attempt[stream].as_str().filter(|t| !t.is_empty()) {
                println!("[{stream}]\n{}", text.trim_end());
            }
        }
        if attempt["truncated"] == true {
            println!("(truncated at the log cap)");
        }
    }
    Ok(EXIT_OK)
}

pub(crate) async fn cancel(RunArg { run: id, remote }: RunArg) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let run = client
        .send(client.request(Method::POST, &format!("/v1/runs/{id}/cancel")))
        .await?;
    if remote.json {
        print_json(&run)?;
    } else {
        println!("run {id} {}", run["status"].as_str().unwrap_or("?"));
    }
    Ok(EXIT_OK)
}

pub(crate) async fn set_paused(RunArg { run: id, remote }: RunArg, pause: bool) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let action = if pause { "pause" } else { "resume" };
    let run = client
        .send(client.request(Method::POST, &format!("/v1/runs/{id}/{action}")))
        .await?;
    if remote.json {
        print_json(&run)?;
    } else if run["paused"] == true {
        println!("run {id} paused: no new attempt starts until `weft resume {id}`");
    } else {
        println!("run {id} {}", run["status"].as_str().unwrap_or("?"));
    }
    Ok(EXIT_OK)
}

pub(crate) async fn retry(
    RetryArgs {
        run: id,
        wait: wait_for_it,
        remote,
    }: RetryArgs,
) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let run = client
        .send(client.request(Method::POST, &format!("/v1/runs/{id}/retry")))
        .await?;
    restarted(
        &client,
        id,
        run,
        "retried from its failed steps",
        wait_for_it,
        remote.json,
    )
    .await
}

pub(crate) async fn reset(
    ResetArgs {
        run: id,
        from,
        wait: wait_for_it,
        remote,
    }: ResetArgs,
) -> anyhow::Result<u8> {
    let client = Client::new(&remote)?;
    let body = json!({ "from": from });
    let run = client
        .send(
            client
                .request(Method::POST, &format!("/v1/runs/{id}/reset"))
                .json(&body),
        )
        .await?;
    let what = format!("reset: it runs again from `{from}`");
    restarted(&client, id, run, &what, wait_for_it, remote.json).await
}

/// Says that run `id` runs again, and follows it with `--wait`.
async fn restarted(
    client: &Client,
    id: u64,
    run: Value,
    what: &str,
    wait_for_it: bool,
    json: bool,
) -> anyhow::Result<u8> {
    if wait_for_it {
        eprintln!("run {id} {what}");
        return wait(client, id, json).await;
    }
    if json {
        print_json(&run)?;
    } else {
        println!("run {id} {what}");
    }
    Ok(EXIT_OK)
}
