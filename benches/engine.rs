//! Durable single-step workflows per second, in process with many runs in
//! flight, next to bare redb durable commits per second measured in the
//! same run on the same disk.
//!
//!     cargo bench --bench engine
//!
//! Baseline: one redb write transaction per record, `Durability::Immediate`
//! (an fsync each), one writer: what a store without group commit gets.
//! weft: each run is created (one durable commit, acknowledged), its `hello`
//! step runs in the sandbox, and its result, events and the run's end are
//! committed; a run counts when its end is durable. Commits of concurrent
//! runs are grouped by the writer.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};
use weft::db::Db;
use weft::engine::{Engine, EngineConfig, SandboxRunner, StartRun, TokioClock};
use weft::model::{EventKind, ModuleRecord};

const BASELINE_COMMITS: u64 = 2_000;
const RUNS: usize = 20_000;
const IN_FLIGHT: usize = 1_024;

fn redb_commits_per_second(dir: &std::path::Path) -> f64 {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let db = Database::create(dir.join("baseline.redb")).unwrap();
    let record = [7u8; 200];
    let started = Instant::now();
    for i in 0..BASELINE_COMMITS {
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE).unwrap().insert(i, record.as_slice()).unwrap();
        txn.commit().unwrap();
    }
    BASELINE_COMMITS as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = redb_commits_per_second(dir.path());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (rate, elapsed) = runtime.block_on(async {
        let db = Db::open(&dir.path().join("weft.redb")).unwrap();
        let runner = Arc::new(SandboxRunner::new(common::sandbox().clone(), db.clone()));
        let config = EngineConfig {
            max_concurrent: 64,
            ..EngineConfig::default()
        };
        let (engine, _) = Engine::start(db, runner, Arc::new(TokioClock::system()), config).unwrap();
        engine
            .put_module(
                "bench",
                ModuleRecord::of("hello", &common::guest_bytes("hello"), vec![], 0),
                common::guest_bytes("hello"),
            )
            .await
            .unwrap();
        engine
            .put_workflow(
                "bench",
                "name: one\nsteps:\n  - {id: greet, task: hello, input: {name: bench}}\n",
            )
            .await
            .unwrap();

        // Warm up: compile and cache the module.
        run_many(&engine, 200).await;
        let started = Instant::now();
        run_many(&engine, RUNS).await;
        let elapsed = started.elapsed();
        engine.shutdown().await;
        (RUNS as f64 / elapsed.as_secs_f64(), elapsed)
    });

    println!(
        "durable workflows, 1 step (hello), in process, {RUNS} runs, up to {IN_FLIGHT} in flight, {} cores",
        cores()
    );
    println!("  bare redb durable commits/s (one fsync each):  {baseline:>10.0}");
    println!("  weft durable 1-step workflows/s:                {rate:>10.0}   ({elapsed:.2?} in all)");
    println!(
        "  ratio weft / bare commits:                      {:>10.2}   (target: >= 5,000 workflows/s)",
        rate / baseline
    );
}

/// Starts `n` runs, at most IN_FLIGHT unfinished at once, and waits until
/// every one has durably finished.
async fn run_many(engine: &Engine, n: usize) {
    let mut updates = engine.subscribe();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let starter = {
        let engine = engine.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            for _ in 0..n {
                let permit = slots.clone().acquire_owned().await.unwrap();
                permit.forget();
                let engine = engine.clone();
                tokio::spawn(async move {
                    let request = StartRun {
                        tenant: "bench".into(),
                        workflow: "one".into(),
                        input: serde_json::json!({}),
                        priority: 0,
                        ..StartRun::default()
                    };
                    engine.start_run(request).await.unwrap();
                });
            }
        })
    };
    let mut finished = 0;
    while finished < n {
        match tokio::time::timeout(Duration::from_secs(60), updates.recv()).await {
            Ok(Ok(update)) => {
                if matches!(update.event.kind, EventKind::RunFinished { .. }) {
                    finished += 1;
                    slots.add_permits(1);
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(missed))) => panic!("missed {missed} updates"),
            other => panic!("no progress: {other:?}"),
        }
    }
    starter.await.unwrap();
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
