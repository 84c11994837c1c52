//! `weft run`, `weft recover` and `weft show`: run workflows end to end in
//! this process, on the embedded store in a directory (a temporary one by
//! default) or on any store `--store` names, showing each step as it goes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{EXIT_FAILED, EXIT_OK, read_arg};
use crate::engine::{Engine, EngineConfig, SandboxRunner, StartRun, TokioClock, Update};
use crate::model::{EventKind, ModuleRecord, RunId, RunRecord, RunStatus};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::secrets::payloads::seal_payloads;
use crate::secrets::{MasterKey, Secrets};
use crate::spec::{self, SpecConfig, TaskRef};
use crate::store::{self, RunFilter, Store, StoreLocation};

/// The tenant of everything run from the command line.
const LOCAL: &str = "local";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The workflow document (YAML or JSON).
    workflow: PathBuf,

    /// The run's input: JSON text, or @FILE.
    #[arg(long, short, default_value = "{}")]
    input: String,

    /// A module for the steps that name it: NAME=PATH.wasm (repeatable).
    #[arg(long = "module", value_name = "NAME=PATH")]
    modules: Vec<String>,

    /// A directory of NAME.wasm components; each step's task is looked up
    /// there unless given with --module.
    #[arg(long = "modules", value_name = "DIR")]
    modules_dir: Option<PathBuf>,

    /// Keep the store in DIR (created if missing) instead of a temporary
    /// directory, so the run can be inspected (weft show) or recovered
    /// (weft recover) after a crash.
    #[arg(long, value_name = "DIR", conflicts_with = "store")]
    data: Option<PathBuf>,

    /// Keep state in this store instead: redb:DIR or
    /// postgres://user@host:port/database.
    #[arg(long, env = "WEFT_STORE", value_name = "STORE")]
    store: Option<String>,

    /// Print the finished run as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Let tasks reach loopback and private addresses that their step's
    /// `http.allow` names (a local stand-in service, say); refused
    /// otherwise, as `weft serve` does.
    #[arg(long)]
    allow_private_http: bool,

    /// A secret for the steps that use it (`${{ secrets.NAME }}` in
    /// `http.headers`, or `secrets: [NAME]`): NAME=VAR takes its value from
    /// the environment variable VAR, so it is not on the command line
    /// (repeatable). `weft serve` keeps secrets encrypted in its store
    /// instead (`weft secret set`).
    #[arg(long = "secret", value_name = "NAME=VAR")]
    secrets: Vec<String>,
}

/// A store that holds weft's state already: `--data DIR` or `--store`.
#[derive(Debug, Args)]
pub(crate) struct ExistingStore {
    /// The data directory of an embedded store, as `weft run --data DIR`
    /// or `weft serve --data DIR` made it.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    data: Option<PathBuf>,

    /// The store: redb:DIR or postgres://user@host:port/database.
    #[arg(long, env = "WEFT_STORE", value_name = "STORE")]
    store: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    store: ExistingStore,

    /// Print the finished runs as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Let tasks reach the private addresses their steps name, as `weft
    /// run --allow-private-http`.
    #[arg(long)]
    allow_private_http: bool,

    /// A secret the resumed runs' steps use: NAME=VAR, as `weft run
    /// --secret` (repeatable).
    #[arg(long = "secret", value_name = "NAME=VAR")]
    secrets: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    store: ExistingStore,

    /// Whose runs to show: runs started by `weft run` belong to `local`.
    #[arg(long, default_value = LOCAL)]
    tenant: String,

    /// A run to show in full; without it, the tenant's runs are listed,
    /// newest first.
    run: Option<u64>,

    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let source =
        std::fs::read_to_string(&args.workflow).with_context(|| format!("cannot read {}", args.workflow.display()))?;
    let workflow = spec::parse(&source, &SpecConfig::default())
        .map_err(|e| anyhow::anyhow!("{} is not a valid workflow:\n{e}", args.workflow.display()))?;
    let input: Value = serde_json::from_str(&read_arg(&args.input)?).context("--input is not JSON")?;

    let temp;
    let location = match location(args.data.clone(), args.store.clone())? {
        Some(location) => location,
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            StoreLocation::Redb(temp.path().to_path_buf())
        }
    };
    let store = store::open(&location, store::DEFAULT_CACHE)
        .await
        .with_context(|| format!("cannot open the store at {location}"))?;
    let secrets = EnvSecrets::from_args(&args.secrets)?;
    let (engine, sandbox, _) = start_engine(store, key_dir(&location), args.allow_private_http, secrets).await?;

    let given = parse_modules(&args.modules)?;
    let mut loaded = HashSet::new();
    for step in &workflow.steps {
        let Some(task @ TaskRef::Name { name, version }) = step.task() else {
            continue;
        };
        if !loaded.insert(task.to_string()) {
            continue;
        }
        let path = match given.iter().find(|(n, _)| n == name) {
            Some((_, path)) => path.clone(),
            None => match &args.modules_dir {
                Some(dir) => dir.join(format!("{name}.wasm")),
                None => bail!(
                    "step `{}` runs `{name}`: give it with --module {name}=PATH or --modules DIR",
                    step.id
                ),
            },
        };
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read module {name} at {}", path.display()))?;
        let loader = sandbox.clone();
        let checked = bytes.clone();
        let module = tokio::task::spawn_blocking(move || loader.load(&checked))
            .await?
            .with_context(|| format!("cannot load module {name} ({})", path.display()))?;
        let record = ModuleRecord {
            name: name.clone(),
            version: version.clone().unwrap_or_else(|| module.digest().short()),
            digest: module.digest(),
            size: bytes.len() as u64,
            imports: module.imports().to_vec(),
            created_at: engine.now(),
        };
        engine.put_module(LOCAL, record, bytes).await?;
    }
    engine.put_workflow(LOCAL, &source).await?;

    let updates = engine.subscribe();
    let (run, _) = engine
        .start_run(StartRun {
            tenant: LOCAL.into(),
            workflow: workflow.name.clone(),
            input,
            priority: 0,
            idempotency_key: None,
            caps: None,
            max_active: None,
            parent: None,
        })
        .await?;
    eprintln!("run {run} of {} started (store: {location})", workflow.name);
    let finished = follow(&engine, updates, &[run]).await?;
    engine.shutdown().await;
    report(&**engine.store(), &finished, args.json).await
}

pub(crate) async fn recover(args: RecoverArgs) -> anyhow::Result<u8> {
    let location = args.store.location()?;
    let secrets = EnvSecrets::from_args(&args.secrets)?;
    let store = open_existing(&location).await?;
    let (engine, _, resumed) = start_engine(store, key_dir(&location), args.allow_private_http, secrets).await?;
    let updates = engine.subscribe();
    eprintln!("resumed {} unfinished run(s) from {location}", resumed.len());
    let finished = follow(&engine, updates, &resumed).await?;
    engine.shutdown().await;
    report(&**engine.store(), &finished, args.json).await
}

pub(crate) async fn show(args: ShowArgs) -> anyhow::Result<u8> {
    let location = args.store.location()?;
    let store = seal_payloads(open_existing(&location).await?, master_key(key_dir(&location))?);
    match args.run {
        Some(id) => {
            let detail = run_detail(&*store, RunId(id)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                print_detail(&detail);
            }
        }
        None => {
            let filter = RunFilter {
                limit: usize::MAX >> 1,
                ..RunFilter::default()
            };
            let (runs, _) = store.tenant_runs(&args.tenant, &filter).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                println!("{:>6}  {:<20} {:<10}", "RUN", "WORKFLOW", "STATUS");
                for run in runs {
                    println!("{:>6}  {:<20} {:<10}", run.id, run.workflow, run.status);
                }
            }
        }
    }
    Ok(EXIT_OK)
}

/// The store `--data` or `--store` names, if either does.
fn location(data: Option<PathBuf>, store: Option<String>) -> anyhow::Result<Option<StoreLocation>> {
    match (data, store) {
        (Some(dir), _) => Ok(Some(StoreLocation::Redb(dir))),
        (None, Some(store)) => Ok(Some(store.parse().context("--store")?)),
        (None, None) => Ok(None),
    }
}

impl ExistingStore {
    /// The store named, which one of the two flags must give.
    pub(crate) fn location(&self) -> anyhow::Result<StoreLocation> {
        location(self.data.clone(), self.store.clone())?.context("give --data DIR or --store STORE")
    }
}

/// A store that must hold weft's state already (and is not upgraded).
async fn open_existing(location: &StoreLocation) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open_existing(location).await?)
}

/// The master key `WEFT_MASTER_KEY` or the embedded store's
/// `master.key` gives, if either does; none is made here.
fn master_key(key_dir: Option<&Path>) -> anyhow::Result<Option<MasterKey>> {
    Ok(match key_dir {
        Some(dir) => MasterKey::find(dir)?,
        None => MasterKey::from_env()?,
    })
}

/// Where an embedded store's `master.key` is (none for PostgreSQL, whose
/// key is given with `WEFT_MASTER_KEY`).
fn key_dir(location: &StoreLocation) -> Option<&Path> {
    match location {
        StoreLocation::Redb(dir) => Some(dir.as_path()),
        StoreLocation::Postgres(_) => None,
    }
}

async fn start_engine(
    store: Arc<dyn Store>,
    key_dir: Option<&Path>,
    allow_private_http: bool,
    mut secrets: EnvSecrets,
) -> anyhow::Result<(Engine, Sandbox, Vec<RunId>)> {
    // Secrets given with --secret win; the others are those a server on
    // this store would give its steps, when the master key is at hand:
    // WEFT_MASTER_KEY, or the embedded store's master.key. None is made here.
    let key = master_key(key_dir)?;
    if let Some(key) = key.clone() {
        secrets.stored = Some(Secrets::open(store.clone(), key).await?);
    }
    // Tenants that seal their payloads have them sealed here too.
    let store = seal_payloads(store, key);
    let unfinished = store.active_runs().await?;
    let sandbox = Sandbox::new(SandboxConfig {
        allow_private_http,
        ..SandboxConfig::default()
    })?;
    let mut runner = SandboxRunner::new(sandbox.clone(), store.clone());
    runner = runner.with_secrets(Arc::new(secrets));
    let runner = Arc::new(runner);
    let (engine, _) = Engine::start(store, runner, Arc::new(TokioClock::system()), EngineConfig::default()).await?;
    Ok((engine, sandbox, unfinished))
}

/// Prints each step as it goes until every run in `runs` has finished.
async fn follow(
    engine: &Engine,
    mut updates: broadcast::Receiver<Update>,
    runs: &[RunId],
) -> anyhow::Result<Vec<RunRecord>> {
    let mut waiting: HashSet<RunId> = runs.iter().copied().collect();
    // Runs that finished before we subscribed.
    for run in runs {
        if engine.store().run(*run).await?.is_some_and(|r| r.status.is_final()) {
            waiting.remove(run);
        }
    }
    while !waiting.is_empty() {
        match updates.recv().await {
            Ok(Update { run, event, .. }) if waiting.contains(&run) => {
                let prefix = if runs.len() > 1 {
                    format!("run {run}: ")
                } else {
                    String::new()
                };
                match event.kind {
                    EventKind::AttemptFinished {
                        step,
                        item,
                        attempt,
                        outcome,
                        duration_us,
                        http,
                        ..
                    } => {
                        let step = item.map_or(step.clone(), |i| format!("{step}[{i}]"));
                        let time = std::time::Duration::from_micros(duration_us);
                        let http = http.map(|h| format!("  http: {}", tally(&h))).unwrap_or_default();
                        eprintln!("  {prefix}{step:<24} attempt {attempt}  {outcome:<14} {time:>10.1?}{http}");
                    }
                    EventKind::RetryScheduled { step, item, due } => {
                        let step = item.map_or(step.clone(), |i| format!("{step}[{i}]"));
                        let wait = due.saturating_sub(event.at);
                        eprintln!("  {prefix}{step:<24} retrying in {wait} ms");
                    }
                    EventKind::StepFinished { step, status } => eprintln!("  {prefix}{step:<24} {status}"),
                    EventKind::RunFinished { status } => {
                        eprintln!("{prefix}run {run} {status}");
                        waiting.remove(&run);
                    }
                    EventKind::Waiting { step, until, signal } => {
                        let what = match (signal, until) {
                            (Some(signal), Some(until)) => format!(
                                "waiting for signal `{signal}` (until {})",
                                crate::cli::format_time(until)
                            ),
                            (Some(signal), None) => format!("waiting for signal `{signal}`"),
                            (None, Some(until)) => format!("sleeping until {}", crate::cli::format_time(until)),
                            (None, None) => "waiting".into(),
                        };
                        eprintln!("  {prefix}{step:<24} {what}");
                    }
                    EventKind::SignalReceived { signal, step, .. } => match step {
                        Some(step) => eprintln!("  {prefix}{step:<24} got signal `{signal}`"),
                        None => eprintln!("  {prefix}signal `{signal}` kept for the step that waits for it"),
                    },
                    EventKind::ApprovalEscalated { step, to } => {
                        eprintln!("  {prefix}{step:<24} escalated: {} may decide too", to.join(", "))
                    }
                    EventKind::ApprovalDecided { step, approved, by, .. } => {
                        let what = if approved { "approved" } else { "rejected" };
                        eprintln!("  {prefix}{step:<24} {what} by {by}")
                    }
                    EventKind::ChildStarted { step, run: child } => {
                        eprintln!("  {prefix}{step:<24} started child run {child}")
                    }
                    EventKind::RunStarted => {}
                    EventKind::RunRetried => eprintln!("{prefix}run {run} retried"),
                    EventKind::RunReset { from } => eprintln!("{prefix}run {run} reset to run again from `{from}`"),
                    EventKind::RunPaused => eprintln!("{prefix}run {run} paused"),
                    EventKind::RunResumed => eprintln!("{prefix}run {run} resumed"),
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                for run in waiting.clone() {
                    if engine.store().run(run).await?.is_some_and(|r| r.status.is_final()) {
                        waiting.remove(&run);
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => bail!("the engine stopped"),
        }
    }
    let mut finished = Vec::with_capacity(runs.len());
    for run in runs {
        let record = engine.store().run(*run).await?;
        finished.push(record.ok_or_else(|| anyhow::anyhow!("run {run} vanished"))?);
    }
    Ok(finished)
}

async fn report(store: &dyn Store, runs: &[RunRecord], as_json: bool) -> anyhow::Result<u8> {
    for run in runs {
        if as_json {
            println!("{}", serde_json::to_string_pretty(&run_detail(store, run.id).await?)?);
        } else if let Some(output) = &run.output {
            println!("{}", serde_json::to_string_pretty(output)?);
        } else if let Some(error) = &run.error {
            let step = error
                .step
                .as_deref()
                .map(|s| format!(" in step {s}"))
                .unwrap_or_default();
            println!("run {} {}{step}: {}: {}", run.id, run.status, error.code, error.message);
        }
    }
    Ok(if runs.iter().all(|r| r.status == RunStatus::Succeeded) {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// A run with its steps and attempts, for `--json` and `weft show`.
async fn run_detail(store: &dyn Store, id: RunId) -> anyhow::Result<Value> {
    let run = store.run(id).await?.ok_or_else(|| anyhow::anyhow!("no run {id}"))?;
    let source = store
        .workflow(&run.tenant, &run.workflow_digest)
        .await?
        .unwrap_or_default();
    let workflow = spec::parse(&source, &SpecConfig::default()).ok();
    let step_id = |step: u32| {
        workflow.as_ref().map_or(step.to_string(), |w| {
            w.steps.get(step as usize).map_or(step.to_string(), |s| s.id.clone())
        })
    };
    let attempts = store.attempts(&run.tenant, id).await?;
    let steps: Vec<Value> = store
        .units(&run.tenant, id)
        .await?
        .into_iter()
        .map(|(key, unit)| {
            let unit_attempts: Vec<&crate::model::AttemptRecord> =
                attempts.iter().filter(|(k, _)| *k == key).map(|(_, a)| a).collect();
            json!({
                "step": step_id(key.step),
                "item": key.item,
                "status": unit.status,
                "attempts": unit_attempts,
                "output": unit.output,
                "error": unit.error,
            })
        })
        .collect();
    let events: Vec<_> = store
        .events_from(&run.tenant, id, 0)
        .await?
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    Ok(json!({"run": run, "steps": steps, "events": events}))
}

fn print_detail(detail: &Value) {
    let run = &detail["run"];
    println!(
        "run {} of {}: {}",
        run["id"],
        run["workflow"].as_str().unwrap_or("?"),
        run["status"].as_str().unwrap_or("?")
    );
    for step in detail["steps"].as_array().into_iter().flatten() {
        let name = match step["item"].as_u64() {
            Some(i) => format!("{}[{i}]", step["step"].as_str().unwrap_or("?")),
            None => step["step"].as_str().unwrap_or("?").to_string(),
        };
        let attempts = step["attempts"].as_array().map_or(0, Vec::len);
        println!(
            "  {name:<24} {:<10} {attempts} attempt(s)",
            step["status"].as_str().unwrap_or("?")
        );
    }
    if !run["output"].is_null() {
        println!("output: {}", run["output"]);
    }
    if !run["error"].is_null() {
        println!("error: {}", run["error"]);
    }
}

fn parse_modules(specs: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    specs
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((name, path)) if !name.is_empty() => Ok((name.to_string(), PathBuf::from(path))),
            _ => bail!("--module {spec:?} is not NAME=PATH"),
        })
        .collect()
}

/// An attempt's requests in a few words: `2 ok, 1 refused; 52 B out, 1.2 KiB in`.
fn tally(http: &crate::model::HttpTally) -> String {
    let counts: Vec<String> = [("ok", http.ok), ("refused", http.refused), ("failed", http.failed)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    let size = |bytes: u64| bytesize::ByteSize::b(bytes).display().iec_short().to_string();
    format!(
        "{}; {} out, {} in",
        counts.join(", "),
        size(http.sent),
        size(http.received)
    )
}

/// Secrets given to one `weft run`, read from environment variables, over
/// those sealed in the store when its master key is at hand.
struct EnvSecrets {
    values: HashMap<String, String>,
    stored: Option<Secrets>,
}

impl EnvSecrets {
    /// Reads each `NAME=VAR`; a variable that is not set is an error naming it.
    fn from_args(args: &[String]) -> anyhow::Result<EnvSecrets> {
        let mut values = HashMap::new();
        for arg in args {
            let Some((name, var)) = arg.split_once('=') else {
                anyhow::bail!(
                    "--secret {arg:?}: expected NAME=VAR, the secret's name and the environment variable holding it"
                );
            };
            if !crate::spec::is_secret_name(name) {
                anyhow::bail!(
                    "--secret {arg:?}: {name:?} is not a secret name (letters, digits and _, not starting with a digit, at most 64)"
                );
            }
            let value = std::env::var(var)
                .map_err(|_| anyhow::anyhow!("--secret {name}={var}: the environment variable {var} is not set"))?;
            values.insert(name.to_string(), value);
        }
        Ok(EnvSecrets { values, stored: None })
    }
}

#[async_trait::async_trait]
impl crate::engine::SecretSource for EnvSecrets {
    async fn reveal(&self, tenant: &str, names: &[String]) -> Result<HashMap<String, String>, String> {
        let (given, rest): (Vec<&String>, Vec<&String>) = names.iter().partition(|n| self.values.contains_key(*n));
        let mut values: HashMap<String, String> = given
            .into_iter()
            .map(|name| (name.clone(), self.values[name].clone()))
            .collect();
        if rest.is_empty() {
            return Ok(values);
        }
        let rest: Vec<String> = rest.into_iter().cloned().collect();
        match &self.stored {
            Some(stored) => values.extend(crate::engine::SecretSource::reveal(stored, tenant, &rest).await?),
            None => {
                let name = &rest[0];
                return Err(format!(
                    "the secret {name} was not given (weft run --secret {name}=VAR) and the store's master key is not at hand"
                ));
            }
        }
        Ok(values)
    }
}
