//! Fairness among tenants on one node: the latency of a light tenant's
//! 1-step run while another tenant floods the node, against the same run
//! on the idle node, on the embedded store and on PostgreSQL.
//!
//! In process, as the engine section runs (the real sandbox, the real
//! store, the engine's default configuration). The heavy tenant keeps
//! [`FLOOD`] runs unfinished, each one attempt of `misbehave` burning
//! about [`BURN`] of CPU (the iterations calibrated on this machine
//! first), so it holds every slot it may and has more queued. The light
//! tenant runs the `hello` 1-step workflow one run at a time, start to
//! durable end; the figure is the median, and the ratio is the one under
//! the flood over the one idle. The PostgreSQL half works in a database of
//! its own on the server of the postgres section (`--store`, else a
//! throwaway one), and says why when there is none.
//!
//! Beside the light run, a bare store commit (an empty batch through the
//! group-commit writer) is timed the same way, idle and under the flood:
//! the light run is two commits and a 0.2 ms attempt, so when its ratio
//! follows the commit's, the store is the bound and not the scheduler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::postgres::Reached;
use super::report::{Report, Target};
use super::{ONE_STEP, Options};
use crate::engine::{Engine, EngineConfig, SandboxRunner, StartRun, TokioClock};
use crate::model::{ModuleRecord, RunStatus};
use crate::sandbox::{Attempt, Limits, MemoryKv, Sandbox, SandboxConfig};
use crate::store::{self, Store, StoreLocation};

/// The heavy tenant's runs unfinished at once.
pub(super) const FLOOD: usize = 100;
/// The CPU each of its attempts burns.
const BURN: Duration = Duration::from_millis(40);

const HEAVY: &str = "name: burn\nsteps:
  - id: burn
    task: misbehave
    limits: {fuel: 100000000000}
    input: {mode: burn, iterations: '${{ input.iterations }}'}
";

/// The JSON key that says why there is no PostgreSQL figure.
const PG_SKIPPED: &str = "pg_fairness_skipped";

/// Latencies of the light tenant's run, and of a bare commit.
struct Latency {
    idle: Duration,
    flooded: Duration,
    commit_idle: Duration,
    commit_flooded: Duration,
}

impl Latency {
    fn ratio(&self) -> f64 {
        self.flooded.as_secs_f64() / self.idle.as_secs_f64()
    }
}

/// Measures and reports the fairness figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    report.section(&format!(
        "fairness: a light tenant's 1-step `hello` run, idle and while another tenant keeps {FLOOD} runs of \
         ~{} ms of CPU in flight",
        BURN.as_millis()
    ));
    let dir = options.scratch()?;
    let store = store::open(&StoreLocation::Redb(dir.path().join("store")), store::DEFAULT_CACHE).await?;
    let embedded = latency(options, store).await?;
    print(report, "", "redb", &embedded);

    let server = match Reached::reach(options, &["fair"]).await {
        Ok(server) => server,
        Err(reason) => {
            report.skipped(PG_SKIPPED, &reason);
            return Ok(());
        }
    };
    report.line(&server.describe());
    let measured = async {
        let location: StoreLocation = server.url(&server.database("fair")).parse()?;
        let store = store::open(&location, store::DEFAULT_CACHE).await?;
        latency(options, store).await
    }
    .await;
    // The store's pooled connections close on their own tasks once it is
    // dropped; dropping the database under them would log each one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.close().await;
    print(report, "pg_", "PostgreSQL", &measured?);
    Ok(())
}

fn print(report: &mut Report, prefix: &str, store: &str, latency: &Latency) {
    report.figure(
        &format!("{prefix}fairness_idle_ms"),
        &format!("{store}: light run, idle (median)"),
        ms(latency.idle),
        "ms",
    );
    report.figure(
        &format!("{prefix}fairness_flooded_ms"),
        &format!("{store}: light run, under the flood (median)"),
        ms(latency.flooded),
        "ms",
    );
    report.figure(
        &format!("{prefix}fairness_commit_idle_ms"),
        &format!("{store}: a bare commit, idle (median)"),
        ms(latency.commit_idle),
        "ms",
    );
    report.figure(
        &format!("{prefix}fairness_commit_flooded_ms"),
        &format!("{store}: a bare commit, under the flood (median)"),
        ms(latency.commit_flooded),
        "ms",
    );
    report.target(
        &format!("{prefix}fairness_ratio"),
        &format!("{store}: ratio under the flood / idle"),
        latency.ratio(),
        "x",
        Target::AtMost(5.0),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The light run's median latency idle, then under the flood, on `store`.
async fn latency(options: &Options, store: Arc<dyn Store>) -> anyhow::Result<Latency> {
    let samples = if options.quick { 20 } else { 100 };
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let iterations = calibrate(&sandbox, &options.module("misbehave")?).await?;
    let runner = Arc::new(SandboxRunner::new(sandbox, store.clone()));
    let (engine, _) = Engine::start(store, runner, Arc::new(TokioClock::system()), EngineConfig::default()).await?;
    for (tenant, task, workflow) in [("light", "hello", ONE_STEP), ("heavy", "misbehave", HEAVY)] {
        let bytes = options.module(task)?;
        engine
            .put_module(tenant, ModuleRecord::of(task, &bytes, vec![], 0), bytes)
            .await?;
        engine.put_workflow(tenant, workflow).await?;
    }
    // Compiles `hello` and warms the caches.
    for _ in 0..5 {
        run(&engine, "light", "one", json!({})).await?;
    }
    let idle = median(&engine, samples).await?;
    let commit_idle = median_commit(&engine, samples).await?;

    let flooding = Arc::new(AtomicBool::new(true));
    let flood = tokio::spawn(flood(engine.clone(), iterations, flooding.clone()));
    // The flood is in place once it holds the slots it may and has more
    // queued (its first attempts also compile `misbehave`).
    let began = Instant::now();
    while engine.stats().queued.load(Ordering::Relaxed) < FLOOD / 4 && began.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let flooded = median(&engine, samples).await;
    let commit_flooded = median_commit(&engine, samples).await;
    flooding.store(false, Ordering::Relaxed);
    let flood = flood.await;
    engine.shutdown().await;
    flood??;
    Ok(Latency {
        idle,
        flooded: flooded?,
        commit_idle,
        commit_flooded: commit_flooded?,
    })
}

/// Runs one and waits for its durable end; returns how long that took.
async fn run(engine: &Engine, tenant: &str, workflow: &str, input: Value) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let request = StartRun {
        tenant: tenant.into(),
        workflow: workflow.into(),
        input,
        ..StartRun::default()
    };
    let (id, _) = engine.start_run(request).await?;
    let record = engine.wait(id).await?;
    anyhow::ensure!(
        record.status == RunStatus::Succeeded,
        "{tenant}'s run {id} {}: {:?}",
        record.status,
        record.error
    );
    Ok(began.elapsed())
}

/// The median latency of `samples` light runs, one after another.
async fn median(engine: &Engine, samples: usize) -> anyhow::Result<Duration> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        latencies.push(run(engine, "light", "one", json!({})).await?);
    }
    Ok(super::median(latencies))
}

/// The median latency of `samples` empty commits, one after another.
async fn median_commit(engine: &Engine, samples: usize) -> anyhow::Result<Duration> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let began = Instant::now();
        engine.store().commit(Vec::new()).await?;
        latencies.push(began.elapsed());
    }
    Ok(super::median(latencies))
}

/// Burn iterations that take about [`BURN`] in the sandbox alone.
pub(super) async fn calibrate(sandbox: &Sandbox, misbehave: &[u8]) -> anyhow::Result<u64> {
    const PROBE: u64 = 2_000_000;
    let module = sandbox.load(misbehave)?;
    let input = json!({"mode": "burn", "iterations": PROBE}).to_string();
    let mut fastest = Duration::MAX;
    for attempt in 1..=3 {
        let report = sandbox
            .run(
                &module,
                Attempt {
                    input: &input,
                    limits: Limits::default(),
                    context: super::context("burn", attempt),
                    kv: Arc::new(MemoryKv::new()),
                    http: Default::default(),
                    secrets: Default::default(),
                    redact: Default::default(),
                },
            )
            .await?;
        anyhow::ensure!(report.outcome.is_ok(), "calibrating the burn: {:?}", report.outcome);
        fastest = fastest.min(report.duration);
    }
    Ok((PROBE as f64 * BURN.as_secs_f64() / fastest.as_secs_f64()) as u64)
}

/// Keeps [`FLOOD`] heavy runs unfinished until `flooding` is cleared.
async fn flood(engine: Engine, iterations: u64, flooding: Arc<AtomicBool>) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(FLOOD));
    let mut runs = JoinSet::new();
    while flooding.load(Ordering::Relaxed) {
        let Ok(permit) = tokio::time::timeout(Duration::from_millis(50), slots.clone().acquire_owned()).await else {
            continue;
        };
        let engine = engine.clone();
        runs.spawn(async move {
            let ran = run(&engine, "heavy", "burn", json!({"iterations": iterations})).await;
            drop(permit);
            ran
        });
        while let Some(done) = runs.try_join_next() {
            done??;
        }
    }
    // The rest are abandoned with the engine.
    runs.abort_all();
    Ok(())
}
