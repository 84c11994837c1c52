//! The scheduler with a fake runner and tokio's paused clock: retries,
//! backoff, timer recovery, priorities, limits and cancellation, exactly
//! and without sleeping in real time.

#[path = "common/fake_runner.rs"]
mod fake_runner;

use std::time::Duration;

use fake_runner::*;
use serde_json::{Value, json};
use weft::engine::{Engine, EngineConfig, StartRun};
use weft::model::{AttemptCaps, EventKind, ModuleRecord, RunStatus, UnitStatus};

const RETRYING: &str = "
name: retrying
steps:
  - id: a
    task: task
    retry: {max_attempts: 4, initial_interval: 1s, backoff: 3.0, max_interval: 5s, non_retryable: [fatal]}
  - id: undo
    task: task
    on_failure_of: [a]
";

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_up_to_the_cap() {
    let s = setup(RETRYING, 8).await;
    for attempt in 1..=3 {
        s.fake.script("a", attempt, Script::Fail("busy", true));
    }
    let run = start(&s.engine, "retrying", 0).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    // 1 s, then 3 s, then 9 s capped at 5 s.
    let times: Vec<u64> = s
        .fake
        .started()
        .iter()
        .filter(|(step, ..)| step == "a")
        .map(|(_, _, t)| t - T0)
        .collect();
    assert_eq!(times, [0, 1_000, 4_000, 9_000]);
    assert_eq!(
        unit_statuses(&s.engine, run).await,
        [UnitStatus::Succeeded, UnitStatus::Skipped]
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_fail_the_step_and_run_its_compensation() {
    let s = setup(RETRYING, 8).await;
    for attempt in 1..=4 {
        s.fake.script("a", attempt, Script::Fail("busy", true));
    }
    let run = start(&s.engine, "retrying", 0).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.unwrap().code, "busy");
    let attempts: Vec<(String, u32)> = s.fake.started().into_iter().map(|(s, a, _)| (s, a)).collect();
    let expected: Vec<(String, u32)> = (1..=4)
        .map(|a| ("a".to_string(), a))
        .chain([("undo".to_string(), 1)])
        .collect();
    assert_eq!(attempts, expected);
    assert_eq!(
        unit_statuses(&s.engine, run).await,
        [UnitStatus::Failed, UnitStatus::Succeeded]
    );
}

#[tokio::test(start_paused = true)]
async fn non_retryable_codes_and_outcomes_are_not_retried() {
    let s = setup(RETRYING, 8).await;
    s.fake.script("a", 1, Script::Fail("fatal", true));
    let run = start(&s.engine, "retrying", 0).await;
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Failed);
    s.fake.script("a", 1, Script::Fail("bad_input", false));
    let run = start(&s.engine, "retrying", 0).await;
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Failed);
    assert_eq!(
        s.fake.started().iter().filter(|(step, ..)| step == "a").count(),
        2,
        "one attempt each"
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_waits_at_most_the_interval() {
    let workflow = "
name: jittery
steps:
  - {id: a, task: task, retry: {max_attempts: 2, initial_interval: 10s, jitter: full}}
";
    let s = setup(workflow, 8).await;
    s.fake.script("a", 1, Script::Fail("busy", true));
    let run = start(&s.engine, "jittery", 0).await;
    s.engine.wait(run).await.unwrap();
    let times: Vec<u64> = s.fake.started().iter().map(|(_, _, t)| t - T0).collect();
    assert_eq!(times.len(), 2);
    assert!(times[1] <= 10_000, "waited {} ms", times[1]);
}

#[tokio::test(start_paused = true)]
async fn retry_timers_survive_a_restart_with_their_due_times() {
    let workflow = "
name: slow_retry
steps:
  - {id: a, task: task, retry: {max_attempts: 2, initial_interval: 60s}}
  - {id: b, task: task, needs: [a]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("a", 1, Script::Fail("busy", true));
    // Subscribe before starting: the first attempt may fail, and its retry be
    // scheduled, before `start` returns; an update sent before subscribing
    // is never seen, and waiting for it would wait for ever.
    let mut updates = s.engine.subscribe();
    let run = start(&s.engine, "slow_retry", 0).await;
    // Let the first attempt fail and its retry be scheduled (durably).
    loop {
        let update = updates.recv().await.unwrap();
        if matches!(update.event.kind, EventKind::RetryScheduled { .. }) {
            break;
        }
    }
    s.engine.shutdown().await;
    drop(s.engine);

    // A new engine on the same store, 10 s later by the wall clock.
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 10_000, 8).await;
    let record = engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    let started: Vec<(String, u32, u64)> = s.fake.started().into_iter().map(|(s, a, t)| (s, a, t - T0)).collect();
    assert_eq!(
        started,
        [("a".into(), 1, 0), ("a".into(), 2, 60_000), ("b".into(), 1, 60_000)]
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_in_flight_at_shutdown_runs_again_after_restart() {
    let workflow = "
name: interrupted
steps:
  - {id: a, task: task}
  - {id: b, task: task, needs: [a]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("b", 1, Script::Hang);
    let run = start(&s.engine, "interrupted", 0).await;
    while s.fake.started().len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.engine.shutdown().await;
    drop(s.engine);

    s.fake.script("b", 1, Script::Ok(json!("second time lucky")));
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 5_000, 8).await;
    let record = engine.wait(run).await.unwrap();
    assert_eq!(record.output.unwrap(), json!({"a": "done", "b": "second time lucky"}));
    let started: Vec<(String, u32)> = s.fake.started().into_iter().map(|(s, a, _)| (s, a)).collect();
    assert_eq!(
        started,
        [("a".into(), 1), ("b".into(), 1), ("b".into(), 1)],
        "a is not run again"
    );
}

#[tokio::test(start_paused = true)]
async fn higher_priority_runs_first_then_older_runs() {
    let workflow = "
name: one
steps:
  - {id: a, task: task}
";
    let s = setup(workflow, 1).await;
    s.fake.script("a", 1, Script::Gated);
    // Occupy the only slot, queue runs of different priorities, then free it.
    let first = start(&s.engine, "one", 0).await;
    while s.fake.started().is_empty() {
        tokio::task::yield_now().await;
    }
    s.fake.script("a", 1, Script::Ok(json!("done")));
    let mut queued = Vec::new();
    for (name, priority) in [("low", 0), ("high", 5), ("low_later", 0), ("highest", 9)] {
        let request = StartRun {
            tenant: "t".into(),
            workflow: "one".into(),
            input: json!(name),
            priority,
            ..StartRun::default()
        };
        queued.push(s.engine.start_run(request).await.unwrap().0);
    }
    s.fake.gate.notify_one();
    for run in std::iter::once(first).chain(queued) {
        s.engine.wait(run).await.unwrap();
    }
    let order: Vec<String> = s
        .fake
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(.., input)| input.clone())
        .collect();
    assert_eq!(order, ["{}", "\"highest\"", "\"high\"", "\"low\"", "\"low_later\""]);
}

#[tokio::test(start_paused = true)]
async fn a_backlog_over_the_hot_limit_is_parked_in_the_store_and_runs_as_before() {
    let workflow = "
name: two
steps:
  - {id: a, task: task}
  - {id: b, task: task, needs: [a]}
";
    // Keep one run's state in memory: every other queued run is parked.
    let config = EngineConfig {
        max_concurrent: 1,
        hot_runs: 1,
        ..EngineConfig::default()
    };
    let s = setup_with(workflow, config).await;
    s.fake.script("a", 1, Script::Gated);
    let first = start(&s.engine, "two", 0).await;
    while s.fake.started().is_empty() {
        tokio::task::yield_now().await;
    }
    s.fake.script("a", 1, Script::Ok(json!("done")));
    let mut queued = Vec::new();
    for (name, priority) in [("low", 0), ("high", 5), ("cancelled", 3), ("low_later", 0)] {
        let request = StartRun {
            tenant: "t".into(),
            workflow: "two".into(),
            input: json!(name),
            priority,
            ..StartRun::default()
        };
        queued.push(s.engine.start_run(request).await.unwrap().0);
    }
    let stats = s.engine.stats();
    assert_eq!(stats.active_runs.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(stats.parked_runs.load(std::sync::atomic::Ordering::Relaxed), 4);
    // A parked run can be cancelled, and cannot be retried while queued.
    s.engine.cancel(queued[2]).await.unwrap();
    assert!(s.engine.retry(queued[0]).await.is_err());
    s.fake.gate.notify_one();
    for run in std::iter::once(first).chain(queued.iter().copied()) {
        let record = s.engine.wait(run).await.unwrap();
        let expected = if run == queued[2] {
            RunStatus::Cancelled
        } else {
            RunStatus::Succeeded
        };
        assert_eq!(record.status, expected, "run {run}");
    }
    assert_eq!(
        unit_statuses(&s.engine, queued[2]).await,
        [UnitStatus::Cancelled, UnitStatus::Cancelled]
    );
    // Each parked run ran both steps once, in priority order.
    let order: Vec<(String, String)> = s
        .fake
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(step, _, _, input)| (step.clone(), input.clone()))
        .collect();
    let steps_of = |name: &str| order.iter().filter(|(_, input)| input == name).count();
    for name in ["\"high\"", "\"low\"", "\"low_later\""] {
        assert_eq!(steps_of(name), 2, "{name} in {order:?}");
    }
    assert_eq!(steps_of("\"cancelled\""), 0, "{order:?}");
    let firsts: Vec<&str> = order
        .iter()
        .filter(|(step, _)| step == "a")
        .map(|(_, input)| input.as_str())
        .collect();
    assert_eq!(firsts, ["{}", "\"high\"", "\"low\"", "\"low_later\""]);
    assert_eq!(
        s.engine.stats().active_runs.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn fan_out_respects_its_concurrency() {
    let workflow = "
name: fan
steps:
  - id: each
    task: task
    for_each: '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]'
    concurrency: 3
    input: {n: '${{ item * 10 }}', i: '${{ index }}'}
";
    let s = setup(workflow, 64).await;
    for attempt in 1..=1 {
        s.fake.script("each", attempt, Script::Slow(Duration::from_millis(100)));
    }
    let run = start(&s.engine, "fan", 0).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(s.fake.max_in_flight(), 3);
    let outputs: Vec<Value> = (0..10).map(|i| json!({"n": (i + 1) * 10, "i": i})).collect();
    assert_eq!(record.output.unwrap(), json!({"each": outputs}));
}

#[tokio::test(start_paused = true)]
async fn cancelling_stops_running_and_pending_steps() {
    let workflow = "
name: long
steps:
  - {id: a, task: task}
  - {id: b, task: task, needs: [a]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("a", 1, Script::Hang);
    let run = start(&s.engine, "long", 0).await;
    while s.fake.started().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.engine.cancel(run).await.unwrap();
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(
        unit_statuses(&s.engine, run).await,
        [UnitStatus::Cancelled, UnitStatus::Cancelled]
    );
    assert!(
        s.engine.cancel(run).await.is_err(),
        "a finished run cannot be cancelled again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_with_continue_lets_dependents_run() {
    let workflow = "
name: lenient
steps:
  - {id: a, task: task, on_failure: continue, retry: {max_attempts: 1}}
  - {id: b, task: task, needs: [a], input: {a_failed: \"${{ steps.a.status == 'failed' }}\", code: '${{ steps.a.error.code }}'}}
";
    let s = setup(workflow, 8).await;
    s.fake.script("a", 1, Script::Fail("meh", false));
    s.fake.script("b", 1, Script::Slow(Duration::ZERO));
    let run = start(&s.engine, "lenient", 0).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.output.unwrap(), json!({"b": {"a_failed": true, "code": "meh"}}));
}

/// The tenant `u` with the workflow `light` (one step, `light`), on an
/// engine set up for the tenant `t`.
async fn add_light_tenant(engine: &Engine) {
    engine
        .put_module(
            "u",
            ModuleRecord::of("task", b"not really wasm", vec![], 0),
            b"not really wasm".to_vec(),
        )
        .await
        .unwrap();
    engine
        .put_workflow("u", "name: light\nsteps:\n  - {id: light, task: task}\n")
        .await
        .unwrap();
}

const FLOOD: &str = "
name: flood
steps:
  - {id: a, task: task}
";

/// Starts `n` runs of `flood` for the tenant `t`, whose attempts end
/// only when the fake's gate lets them, and waits until `running` of
/// them have started.
async fn flood(s: &Setup, n: usize, running: usize) {
    s.fake.script("a", 1, Script::Gated);
    for _ in 0..n {
        start(&s.engine, "flood", 0).await;
    }
    while s.fake.started().len() < running {
        tokio::task::yield_now().await;
    }
}

/// Starts a run of `light` for the tenant `u` and waits for its end
/// (in real time: on the paused clock, a timeout would fire at once
/// while the store commits).
async fn light_run(engine: &Engine) {
    let request = StartRun {
        tenant: "u".into(),
        workflow: "light".into(),
        input: json!({}),
        ..StartRun::default()
    };
    let run = engine.start_run(request).await.unwrap().0;
    tokio::time::timeout(Duration::from_secs(10), engine.wait(run))
        .await
        .expect("the light run never started")
        .unwrap();
}

/// The steps of the attempts started, in order.
fn started_steps(fake: &FakeRunner) -> Vec<String> {
    fake.started().into_iter().map(|(step, ..)| step).collect()
}

#[tokio::test]
async fn a_tenant_arriving_behind_a_flood_gets_the_next_free_slot() {
    let s = setup(FLOOD, 4).await;
    add_light_tenant(&s.engine).await;
    flood(&s, 20, 4).await;
    let light = light_run(&s.engine);
    // One of the flood's attempts ends once the light run is queued.
    let free_one = async {
        while s.engine.stats().queued.load(std::sync::atomic::Ordering::Relaxed) < 17 {
            tokio::task::yield_now().await;
        }
        s.fake.gate.notify_one();
    };
    tokio::join!(light, free_one);
    // First come, first served, it would have waited for 16 more.
    assert_eq!(started_steps(&s.fake)[..5], ["a", "a", "a", "a", "light"]);
}

#[tokio::test]
async fn a_tenant_arriving_behind_a_flood_finds_a_reserved_slot() {
    // Of 16 slots, 1 is kept from any single tenant.
    let s = setup(FLOOD, 16).await;
    add_light_tenant(&s.engine).await;
    flood(&s, 40, 15).await;
    light_run(&s.engine).await;
    let steps = started_steps(&s.fake);
    assert_eq!(steps.len(), 16, "{steps:?}");
    assert_eq!(steps[15], "light");
}

#[tokio::test(start_paused = true)]
async fn a_tenant_runs_no_more_attempts_at_once_than_its_quota() {
    let workflow = "
name: fan
steps:
  - {id: each, task: task, for_each: '[1, 2, 3, 4, 5, 6, 7, 8]'}
";
    let s = setup(workflow, 64).await;
    s.fake.script("each", 1, Script::Slow(Duration::from_millis(100)));
    let request = StartRun {
        tenant: "t".into(),
        workflow: "fan".into(),
        input: json!({}),
        caps: Some(AttemptCaps {
            fuel: u64::MAX,
            memory: u64::MAX,
            concurrent_attempts: 2,
        }),
        ..StartRun::default()
    };
    let run = s.engine.start_run(request).await.unwrap().0;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(s.fake.max_in_flight(), 2);
}
