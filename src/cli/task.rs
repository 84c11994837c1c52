//! `weft task …`: run one attempt of a component locally, exactly as the
//! engine would run a step, and show how it went.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_OK};
use crate::sandbox::{
    Attempt, AttemptContext, AttemptReport, DEFAULT_MAX_LOG, DEFAULT_MAX_OUTPUT, KvWrite, Limits, MemoryKv, Outcome,
    Sandbox, SandboxConfig, parse_duration, parse_size,
};

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Run one attempt of a task component and print its outcome, fuel,
    /// time and logs.
    ///
    /// The component runs in the same sandbox as in a workflow: a fresh
    /// instance, nothing granted (no files, environment or network), with
    /// fuel, memory and time limits. kv starts empty (seed it with --kv);
    /// the writes a successful attempt would commit are printed, not kept.
    ///
    /// Exit status: 0 when the outcome is `ok`, 1 for any other outcome,
    /// 2 when the component or the arguments are invalid.
    #[command(after_help = "Examples:\n  \
        weft task run hello.wasm --input '{\"name\": \"Ada\"}'\n  \
        weft task run flaky.wasm --attempt 3\n  \
        weft task run validate_payment.wasm --input @payment.json --fuel 5000000 --json")]
    Run(RunArgs),
    /// Make a new task project, in Rust, Python or JavaScript, that builds
    /// and passes `weft task run` as made.
    #[command(after_help = "Examples:\n  \
        weft task new greet\n  \
        weft task new --lang python score_lead\n  \
        weft task new --lang js enrich --dir tasks/enrich")]
    New(super::scaffold::NewArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The component (.wasm, built for wasm32-wasip2).
    component: PathBuf,

    /// The task's input: JSON text, or @FILE to read it from a file.
    #[arg(long, short, default_value = "{}")]
    input: String,

    /// Fuel budget: roughly the number of WebAssembly instructions allowed.
    #[arg(long, default_value_t = Limits::default().fuel)]
    fuel: u64,

    /// Memory cap, e.g. 64MiB.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    memory: u64,

    /// Wall-clock limit, e.g. 2s or 500ms.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: std::time::Duration,

    /// Largest output allowed, e.g. 1MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUT, value_parser = parse_size)]
    max_output: u64,

    /// Most bytes of logs (stdout, stderr and log lines) kept.
    #[arg(long, default_value_t = DEFAULT_MAX_LOG, value_parser = parse_size)]
    max_log: u64,

    /// The attempt number the task sees (1 = first try).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    attempt: u32,

    /// Tenant the task sees (and the kv namespace).
    #[arg(long, default_value = "local")]
    tenant: String,

    /// Seed kv before the attempt: KEY=JSON (repeatable).
    #[arg(long = "kv", value_name = "KEY=JSON")]
    kv: Vec<String>,

    /// Print the whole report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: TaskCommand) -> anyhow::Result<u8> {
    match command {
        TaskCommand::Run(args) => run_once(args).await,
        TaskCommand::New(args) => super::scaffold::new(args),
    }
}

async fn run_once(args: RunArgs) -> anyhow::Result<u8> {
    let input = read_input(&args.input)?;
    let kv = Arc::new(MemoryKv::new());
    kv.apply(&args.tenant, &parse_kv_seeds(&args.kv)?);

    let bytes = std::fs::read(&args.component).with_context(|| format!("cannot read {}", args.component.display()))?;
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent: 1,
        max_memory: args.memory.max(SandboxConfig::default().max_memory),
        ..SandboxConfig::default()
    })?;
    let compile_started = Instant::now();
    let module = sandbox
        .load(&bytes)
        .with_context(|| format!("cannot load {}", args.component.display()))?;
    let compile_time = compile_started.elapsed();

    let limits = Limits {
        fuel: args.fuel,
        memory: args.memory,
        timeout: args.timeout,
        max_output: args.max_output,
        max_log: args.max_log,
    };
    let context = AttemptContext {
        tenant: args.tenant.clone(),
        workflow: "local".into(),
        run_id: "local".into(),
        step_id: "local".into(),
        attempt: args.attempt,
        item_index: None,
    };
    let report = sandbox
        .run(
            &module,
            Attempt {
                input: &input,
                limits,
                context,
                kv,
                http: Default::default(),
                secrets: Default::default(),
                redact: Default::default(),
            },
        )
        .await?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!(
            "loaded {} ({}, {} bytes) in {:.0?}",
            args.component.display(),
            module.digest(),
            bytes.len(),
            compile_time
        );
        print!("{}", summary(&report, &limits));
    }
    Ok(if report.outcome.is_ok() { EXIT_OK } else { EXIT_FAILED })
}

fn read_input(arg: &str) -> anyhow::Result<String> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read --input file {path}"))?,
        None => arg.to_string(),
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        bail!("--input is not JSON: {e}");
    }
    Ok(text)
}

fn parse_kv_seeds(seeds: &[String]) -> anyhow::Result<Vec<KvWrite>> {
    seeds
        .iter()
        .map(|seed| {
            let Some((key, json)) = seed.split_once('=') else {
                bail!("--kv {seed:?} is not KEY=JSON");
            };
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(json) {
                bail!("--kv {key}: the value is not JSON: {e}");
            }
            Ok(KvWrite {
                key: key.to_string(),
                value: Some(json.as_bytes().to_vec()),
            })
        })
        .collect()
}

/// The report as people read it: one aligned field per line.
fn summary(report: &AttemptReport, limits: &Limits) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        for (i, line) in value.lines().enumerate() {
            let label = if i == 0 { name } else { "" };
            out.push_str(&format!("{label:<9} {line}\n"));
        }
    };
    field("outcome", report.outcome.kind());
    match &report.outcome {
        Outcome::Ok { output } => field("output", output),
        Outcome::GuestError {
            code,
            message,
            retryable,
        } => {
            field("error", &format!("{code}: {message}"));
            field("retryable", &retryable.to_string());
        }
        Outcome::Trap { message } => field("trap", message),
        Outcome::InvalidOutput { reason } => field("reason", reason),
        Outcome::OutOfFuel => field("reason", &format!("used all {} units of fuel", limits.fuel)),
        Outcome::MemoryLimit => field("reason", &format!("needed more than {} bytes of memory", limits.memory)),
        Outcome::Timeout => field("reason", &format!("ran longer than {:?}", limits.timeout)),
    }
    field("fuel", &format!("{} of {}", report.fuel_used, limits.fuel));
    field("time", &format!("{:.2?}", report.duration));
    for line in &report.logs.lines {
        field("log", &format!("[{}] {}", line.level, line.message));
    }
    if !report.logs.stdout.is_empty() {
        field("stdout", report.logs.stdout.trim_end());
    }
    if !report.logs.stderr.is_empty() {
        field("stderr", report.logs.stderr.trim_end());
    }
    if report.logs.truncated {
        field("logs", &format!("truncated at {} bytes", limits.max_log));
    }
    for write in &report.kv_writes {
        let change = match &write.value {
            Some(value) => format!("set {} = {}", write.key, String::from_utf8_lossy(value)),
            None => format!("delete {}", write.key),
        };
        field("kv", &change);
    }
    out
}
