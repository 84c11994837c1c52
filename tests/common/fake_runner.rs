//! A scheduler under test: a fake runner that answers attempts from a
//! script, an engine on the embedded store, and tokio's paused clock, so
//! tests of timers run exactly and without sleeping in real time.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use weft::engine::{AttemptRequest, Clock, Engine, EngineConfig, RunFuture, Runner, StartRun, TokioClock};
use weft::model::{ModuleRecord, RunId, UnitStatus};
use weft::sandbox::{AttemptLogs, AttemptReport, Outcome};
use weft::store::{self, StoreLocation};

/// What the fake runner does for an attempt.
#[derive(Clone)]
pub enum Script {
    /// Succeed with this output.
    Ok(Value),
    /// Fail with this code, retryable or not.
    Fail(&'static str, bool),
    /// Take this long (tokio time), then succeed echoing the input.
    Slow(Duration),
    /// Never finish.
    Hang,
    /// Finish when the test opens the gate.
    Gated,
}

/// A runner that answers from a script per (step, attempt) and records
/// every attempt it starts.
#[derive(Default)]
pub struct FakeRunner {
    pub scripts: Mutex<HashMap<(String, u32), Script>>,
    pub started: Mutex<Vec<(String, u32, u64, String)>>,
    pub running: Mutex<(usize, usize)>,
    pub clock: Mutex<Option<Arc<dyn Clock>>>,
    pub gate: tokio::sync::Notify,
}

impl FakeRunner {
    pub fn script(&self, step: &str, attempt: u32, script: Script) {
        self.scripts.lock().unwrap().insert((step.into(), attempt), script);
    }

    /// (step, attempt, started at) for every attempt, in start order.
    pub fn started(&self) -> Vec<(String, u32, u64)> {
        self.started
            .lock()
            .unwrap()
            .iter()
            .map(|(s, a, t, _)| (s.clone(), *a, *t))
            .collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.running.lock().unwrap().1
    }
}

pub struct Shared(pub Arc<FakeRunner>);

impl Runner for Shared {
    fn run(&self, request: AttemptRequest) -> RunFuture {
        let fake = self.0.clone();
        Box::pin(async move {
            let step = request.context.step_id.clone();
            let attempt = request.context.attempt;
            let now = fake.clock.lock().unwrap().as_ref().map_or(0, |c| c.now());
            fake.started
                .lock()
                .unwrap()
                .push((step.clone(), attempt, now, request.input.clone()));
            {
                let mut running = fake.running.lock().unwrap();
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            let script = fake
                .scripts
                .lock()
                .unwrap()
                .get(&(step, attempt))
                .cloned()
                .unwrap_or(Script::Ok(json!("done")));
            // Slot time, which the scheduler charges to the tenant.
            let took = match &script {
                Script::Slow(time) => *time,
                _ => Duration::ZERO,
            };
            let outcome = match script {
                Script::Ok(value) => Outcome::Ok {
                    output: value.to_string(),
                },
                Script::Fail(code, retryable) => Outcome::GuestError {
                    code: code.into(),
                    message: "scripted".into(),
                    retryable,
                },
                Script::Slow(time) => {
                    tokio::time::sleep(time).await;
                    Outcome::Ok {
                        output: request.input.clone(),
                    }
                }
                Script::Hang => std::future::pending().await,
                Script::Gated => {
                    fake.gate.notified().await;
                    Outcome::Ok {
                        output: request.input.clone(),
                    }
                }
            };
            fake.running.lock().unwrap().0 -= 1;
            Ok(AttemptReport {
                outcome,
                fuel_used: 1,
                duration: took,
                logs: AttemptLogs::default(),
                kv_writes: vec![],
                http: vec![],
            })
        })
    }
}

pub const T0: u64 = 1_700_000_000_000;

pub struct Setup {
    pub engine: Engine,
    pub fake: Arc<FakeRunner>,
    pub dir: tempfile::TempDir,
    pub watchdog: Watchdog,
}

/// Aborts the test binary when a test outlives its limit in real time.
///
/// On the paused clock, a test waiting for an update it missed waits with no
/// timer left to wake it: it would hang until CI's own timeout, naming
/// nothing. These tests take well under a second; the watchdog turns such a
/// hang into a failure that names the test. Dropping it (with the `Setup`)
/// stands it down.
pub struct Watchdog(std::sync::mpsc::Sender<()>);

impl Watchdog {
    pub fn new(limit: Duration) -> Watchdog {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let (stand_down, watch) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(limit) {
                eprintln!("{test} ran for over {limit:?} in real time: it is stuck; aborting its test binary");
                std::process::abort();
            }
        });
        Watchdog(stand_down)
    }
}

pub async fn setup(workflow: &str, max_concurrent: usize) -> Setup {
    setup_with(
        workflow,
        EngineConfig {
            max_concurrent,
            ..EngineConfig::default()
        },
    )
    .await
}

pub async fn setup_with(workflow: &str, config: EngineConfig) -> Setup {
    let watchdog = Watchdog::new(Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeRunner::default());
    let engine = start_engine_with(dir.path(), fake.clone(), T0, config).await;
    engine
        .put_module(
            "t",
            ModuleRecord::of("task", b"not really wasm", vec![], 0),
            b"not really wasm".to_vec(),
        )
        .await
        .unwrap();
    engine.put_workflow("t", workflow).await.unwrap();
    Setup {
        engine,
        fake,
        dir,
        watchdog,
    }
}

pub async fn start_engine(dir: &Path, fake: Arc<FakeRunner>, at: u64, max_concurrent: usize) -> Engine {
    let config = EngineConfig {
        max_concurrent,
        ..EngineConfig::default()
    };
    start_engine_with(dir, fake, at, config).await
}

/// On the embedded store only: these tests run on tokio's paused clock,
/// which a network store's timeouts cannot share.
pub async fn start_engine_with(dir: &Path, fake: Arc<FakeRunner>, at: u64, config: EngineConfig) -> Engine {
    let location = StoreLocation::Redb(dir.join("store"));
    let db = store::open(&location, store::DEFAULT_CACHE).await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(at));
    *fake.clock.lock().unwrap() = Some(clock.clone());
    Engine::start(db, Arc::new(Shared(fake)), clock, config)
        .await
        .unwrap()
        .0
}

pub async fn start(engine: &Engine, workflow: &str, priority: i32) -> RunId {
    let request = StartRun {
        tenant: "t".into(),
        workflow: workflow.into(),
        input: json!({}),
        priority,
        ..StartRun::default()
    };
    engine.start_run(request).await.unwrap().0
}

pub async fn unit_statuses(engine: &Engine, run: RunId) -> Vec<UnitStatus> {
    engine
        .store()
        .units("t", run)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, u)| u.status)
        .collect()
}
