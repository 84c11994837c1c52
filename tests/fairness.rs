//! Tenant fairness on one node, on each backend: while one tenant floods
//! the engine with CPU-bound runs, another tenant's one-step run is
//! answered about as fast as when the engine is idle.
//!
//! The heavy tenant keeps [`FLOOD`] runs unfinished at once, each one
//! attempt of `misbehave` burning about [`BURN`] of CPU; the light tenant
//! runs `hello` one run at a time. The test prints the light run's median
//! latency idle and under the flood, and their ratio, and asserts the
//! ratio loosely ([`MAX_RATIO`]): the target of 5x is `weft bench`'s to
//! judge, in a release build on a quiet machine. Here, in a debug build on
//! two cores, the ratio came out between 1x and 15x (the idle latency is
//! mostly an fsync, and moves by 5x from run to run); on the scheduler
//! that served tenants first come, first served it was 230x on redb and
//! 890x on PostgreSQL.
//!
//! Beside it, the test prints the median of a bare store commit (an empty
//! batch through the group-commit writer) idle and under the flood: the
//! light run is two commits and a 0.2 ms attempt, so when its ratio
//! follows the commit's, the store (its fsync, and the flood's batch in
//! flight) is the bound and not the scheduler (docs/performance.md).

#[path = "common/backend.rs"]
mod backend;
#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backend::TestStore;
use serde_json::{Value, json};
use weft::engine::{Engine, EngineConfig, SandboxRunner, StartRun, TokioClock};
use weft::model::{ModuleRecord, RunStatus};
use weft::sandbox::{Attempt, Limits, MemoryKv, Sandbox, SandboxConfig};

/// The heavy tenant's runs unfinished at once.
const FLOOD: usize = 100;
/// The CPU each of them burns.
const BURN: Duration = Duration::from_millis(40);
/// Light runs timed idle, and again under the flood.
const SAMPLES: usize = 21;
/// The loosest ratio that passes (the bench's target is 5).
const MAX_RATIO: f64 = 25.0;

const LIGHT: &str = "name: one\nsteps:\n  - {id: greet, task: hello, input: {name: light}}\n";
const HEAVY: &str = "name: burn\nsteps:
  - id: burn
    task: misbehave
    limits: {fuel: 100000000000}
    input: {mode: burn, iterations: '${{ input.iterations }}'}
";

/// One flood at a time in this binary: two would share the machine's
/// cores and each measure the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

on_both_backends! {
    async fn a_light_tenant_is_served_while_another_floods_the_engine(store: TestStore) {
        let _alone = ONE_AT_A_TIME.lock().await;
        let backend = store.backend;
        let (engine, sandbox) = engine(&store).await;
        let iterations = calibrate(&sandbox).await;
        for _ in 0..3 {
            light_run(&engine).await; // compiles `hello`, warms caches
        }
        let idle = median_light(&engine).await;
        let idle_commit = median_commit(&engine).await;

        let flooding = Arc::new(AtomicBool::new(true));
        let flood = tokio::spawn(flood(engine.clone(), iterations, flooding.clone()));
        // Until the heavy tenant holds every slot it may and has more queued.
        let began = Instant::now();
        while engine.stats().queued.load(Ordering::Relaxed) < FLOOD / 4 && began.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let loaded = median_light(&engine).await;
        let loaded_commit = median_commit(&engine).await;
        let running = engine.stats().running.load(Ordering::Relaxed);
        let queued = engine.stats().queued.load(Ordering::Relaxed);
        flooding.store(false, Ordering::Relaxed);
        flood.await.unwrap();

        let ratio = loaded.as_secs_f64() / idle.as_secs_f64();
        eprintln!(
            "{backend:?}: light one-step run idle {idle:?}, under a flood of {FLOOD} runs of ~{BURN:?} CPU \
             ({running} attempts running, {queued} queued) {loaded:?}: {ratio:.1}x; a bare commit idle \
             {idle_commit:?}, under the flood {loaded_commit:?}: {:.1}x",
            loaded_commit.as_secs_f64() / idle_commit.as_secs_f64()
        );
        assert!(running + queued >= FLOOD / 2, "there was no flood: {running} running, {queued} queued");
        assert!(
            ratio <= MAX_RATIO,
            "{backend:?}: the light tenant's run took {ratio:.1}x its idle latency under the flood (at most {MAX_RATIO}x)"
        );
        engine.shutdown().await;
    }
}

/// An engine of its own and its sandbox (not the binary's shared one, so
/// the other backend's test shares nothing with it), with both tenants'
/// modules and workflows.
async fn engine(test_store: &TestStore) -> (Engine, Sandbox) {
    let store = test_store.open().await;
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let runner = Arc::new(SandboxRunner::new(sandbox.clone(), store.clone()));
    let (engine, _) = Engine::start(store, runner, Arc::new(TokioClock::system()), EngineConfig::default())
        .await
        .unwrap();
    for (tenant, task, workflow) in [("light", "hello", LIGHT), ("heavy", "misbehave", HEAVY)] {
        let bytes = common::guest_bytes(task);
        engine
            .put_module(tenant, ModuleRecord::of(task, &bytes, vec![], 0), bytes)
            .await
            .unwrap();
        engine.put_workflow(tenant, workflow).await.unwrap();
    }
    (engine, sandbox)
}

/// Runs one and waits for its durable end; returns how long that took.
async fn run(engine: &Engine, tenant: &str, workflow: &str, input: Value) -> Duration {
    let began = Instant::now();
    let request = StartRun {
        tenant: tenant.into(),
        workflow: workflow.into(),
        input,
        ..StartRun::default()
    };
    let (id, _) = engine.start_run(request).await.unwrap();
    let record = engine.wait(id).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{tenant}: {:?}", record.error);
    began.elapsed()
}

async fn light_run(engine: &Engine) -> Duration {
    run(engine, "light", "one", json!({})).await
}

/// The median latency of [`SAMPLES`] light runs, one after another.
async fn median_light(engine: &Engine) -> Duration {
    let mut latencies = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        latencies.push(light_run(engine).await);
    }
    latencies.sort();
    latencies[SAMPLES / 2]
}

/// The median latency of [`SAMPLES`] empty commits, one after another.
async fn median_commit(engine: &Engine) -> Duration {
    let mut latencies = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let began = Instant::now();
        engine.store().commit(Vec::new()).await.unwrap();
        latencies.push(began.elapsed());
    }
    latencies.sort();
    latencies[SAMPLES / 2]
}

/// Burn iterations that take about [`BURN`] of CPU, timed in the
/// sandbox alone.
async fn calibrate(sandbox: &Sandbox) -> u64 {
    const PROBE: u64 = 2_000_000;
    let module = sandbox.load(&common::guest_bytes("misbehave")).unwrap();
    let input = json!({"mode": "burn", "iterations": PROBE}).to_string();
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let attempt = Attempt {
            input: &input,
            limits: Limits::default(),
            context: common::context(1),
            kv: Arc::new(MemoryKv::new()),
            http: Default::default(),
            secrets: Default::default(),
            redact: Default::default(),
        };
        let report = sandbox.run(&module, attempt).await.unwrap();
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
        fastest = fastest.min(report.duration);
    }
    (PROBE as f64 * BURN.as_secs_f64() / fastest.as_secs_f64()) as u64
}

/// Keeps [`FLOOD`] heavy runs unfinished until `flooding` is cleared.
async fn flood(engine: Engine, iterations: u64, flooding: Arc<AtomicBool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(FLOOD));
    let mut runs = tokio::task::JoinSet::new();
    while flooding.load(Ordering::Relaxed) {
        let Ok(permit) = tokio::time::timeout(Duration::from_millis(50), slots.clone().acquire_owned()).await else {
            continue;
        };
        let engine = engine.clone();
        runs.spawn(async move {
            run(&engine, "heavy", "burn", json!({"iterations": iterations})).await;
            drop(permit);
        });
        while let Some(done) = runs.try_join_next() {
            done.unwrap();
        }
    }
    runs.abort_all();
}
