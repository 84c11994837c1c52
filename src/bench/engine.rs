//! Durable workflows per second in process, with many runs in flight,
//! against bare redb durable commits per second on the same disk.
//!
//! Baseline: one redb write transaction per 200-byte record with
//! `Durability::Immediate` (an fsync each) from one writer: what a store
//! without group commit gets. weft: each run is created (one durable
//! commit, acknowledged), its steps run `hello` in the sandbox, and every
//! result, event and the run's end are committed; a run counts once its
//! end is durable. Three shapes: one step, a chain of five, and a 50-way
//! `for_each` fan-out.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, TableDefinition};
use serde_json::json;
use tokio::task::JoinSet;

use super::report::{Report, Target};
use super::{ONE_STEP, Options};
use crate::engine::{Engine, EngineConfig, SandboxRunner, StartRun, TokioClock};
use crate::model::{ModuleRecord, RunStatus};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::store::{self, Store, StoreLocation};

/// Runs unfinished at once: enough that commits group and slots stay full.
pub(super) const IN_FLIGHT: usize = 1_024;

const CHAIN: &str = "name: chain\nsteps:
  - {id: a, task: hello, input: {name: a}}
  - {id: b, task: hello, needs: [a], input: {name: b}}
  - {id: c, task: hello, needs: [b], input: {name: c}}
  - {id: d, task: hello, needs: [c], input: {name: d}}
  - {id: e, task: hello, needs: [d], input: {name: e}}
";
const FAN_OUT: &str = "name: fanout\nsteps:
  - {id: greet, task: hello, for_each: input.names, input: {name: \"${{ item }}\"}}
";

/// Measures and reports the engine figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (commits, one, chain, fan_out) = if options.quick {
        (500, 3_000, 600, 40)
    } else {
        (2_000, 20_000, 4_000, 300)
    };
    report.section(&format!(
        "engine: durable workflows in process, up to {IN_FLIGHT} runs in flight, `hello` in every step"
    ));
    let dir = options.scratch()?;
    let baseline = tokio::task::spawn_blocking({
        let path = dir.path().join("baseline.redb");
        move || redb_commits_per_second(&path, commits)
    })
    .await??;
    report.figure(
        "redb_commits_per_s",
        "bare redb durable commits/s (one fsync each)",
        baseline,
        "/s",
    );

    let store = store::open(&StoreLocation::Redb(dir.path().join("store")), store::DEFAULT_CACHE).await?;
    let engine = start_engine(options, store, &[ONE_STEP, CHAIN, FAN_OUT]).await?;
    let names: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
    let fan_input = json!({ "names": names });

    // Warm up: compile the module, fill caches.
    run_many(&engine, "one", &json!({}), 200).await?;

    let rate = run_many(&engine, "one", &json!({}), one).await?;
    report.target(
        "durable_wf_per_s",
        &format!("weft durable 1-step workflows/s ({one} runs)"),
        rate,
        "/s",
        Target::AtLeast(10_000.0),
    );
    report.figure(
        "durable_wf_per_s_ratio",
        "ratio 1-step workflows / bare redb commits",
        rate / baseline,
        "x",
    );
    let rate = run_many(&engine, "chain", &json!({}), chain).await?;
    report.figure(
        "chain5_wf_per_s",
        &format!("weft durable 5-step chains/s ({chain} runs)"),
        rate,
        "/s",
    );
    report.figure("chain5_steps_per_s", "  steps/s in those chains", rate * 5.0, "/s");
    let rate = run_many(&engine, "fanout", &fan_input, fan_out).await?;
    report.figure(
        "fanout50_wf_per_s",
        &format!("weft durable 50-way fan-outs/s ({fan_out} runs)"),
        rate,
        "/s",
    );
    report.figure("fanout50_items_per_s", "  items/s in those fan-outs", rate * 50.0, "/s");
    engine.shutdown().await;
    Ok(())
}

fn redb_commits_per_second(path: &Path, commits: u64) -> anyhow::Result<f64> {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let db = Database::create(path)?;
    let record = [7u8; 200];
    let started = Instant::now();
    for i in 0..commits {
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?.insert(i, record.as_slice())?;
        txn.commit()?;
    }
    Ok(commits as f64 / started.elapsed().as_secs_f64())
}

/// An engine on `store` with the default configuration, and the `hello`
/// module and `workflows` stored for the tenant `bench`.
pub(super) async fn start_engine(
    options: &Options,
    store: Arc<dyn Store>,
    workflows: &[&str],
) -> anyhow::Result<Engine> {
    let hello = options.module("hello")?;
    let runner = Arc::new(SandboxRunner::new(
        Sandbox::new(SandboxConfig::default())?,
        store.clone(),
    ));
    let (engine, _) = Engine::start(store, runner, Arc::new(TokioClock::system()), EngineConfig::default()).await?;
    engine
        .put_module("bench", ModuleRecord::of("hello", &hello, vec![], 0), hello)
        .await?;
    for source in workflows {
        engine.put_workflow("bench", source).await?;
    }
    Ok(engine)
}

/// Starts `n` runs of `workflow`, at most [`IN_FLIGHT`] unfinished at
/// once, waits until every one has durably succeeded, and returns runs
/// per second.
pub(super) async fn run_many(
    engine: &Engine,
    workflow: &str,
    input: &serde_json::Value,
    n: usize,
) -> anyhow::Result<f64> {
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut runs = JoinSet::new();
    let started = Instant::now();
    for _ in 0..n {
        let permit = slots.clone().acquire_owned().await?;
        let engine = engine.clone();
        let request = StartRun {
            tenant: "bench".into(),
            workflow: workflow.into(),
            input: input.clone(),
            ..StartRun::default()
        };
        runs.spawn(async move {
            let (id, _) = engine.start_run(request).await?;
            let record = engine.wait(id).await?;
            drop(permit);
            anyhow::ensure!(
                record.status == RunStatus::Succeeded,
                "run {id} {}: {:?}",
                record.status,
                record.error
            );
            Ok(())
        });
        // Reap as we go, so a failure shows at once and the set stays small.
        while let Some(done) = runs.try_join_next() {
            done??;
        }
    }
    while let Some(done) = runs.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
