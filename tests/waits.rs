//! Wait steps on tokio's paused clock: sleeps that end exactly on time,
//! across a restart too; signals before, during and after their wait,
//! repeated and refused; timeouts that fail, retry and compensate.

#[path = "common/fake_runner.rs"]
mod fake_runner;

use std::time::Duration;

use fake_runner::*;
use serde_json::{Value, json};
use weft::engine::{Delivery, Engine, EngineError, StartRun};
use weft::model::{EventKind, RunId, RunStatus, UnitStatus};

const PAYMENT: &str = "
name: pay
steps:
  - {id: order, task: task}
  - {id: paid, needs: [order], wait_for: {signal: payment, timeout: 1h}}
  - {id: ship, task: task, needs: [paid], input: '${{ steps.paid.output }}'}
  - {id: refund, task: task, on_failure_of: [paid]}
";

async fn start_with(engine: &Engine, workflow: &str, input: Value) -> RunId {
    let request = StartRun {
        tenant: "t".into(),
        workflow: workflow.into(),
        input,
        ..StartRun::default()
    };
    engine.start_run(request).await.unwrap().0
}

/// Waits until `run` has a unit in `Waiting`, and returns the units.
/// Polls in real time (up to 10 s): on the paused clock a tokio sleep
/// would let time jump while the store's thread commits.
async fn until_waiting(engine: &Engine, run: RunId) -> Vec<weft::model::UnitRecord> {
    for _ in 0..10_000 {
        let units: Vec<_> = engine
            .store()
            .units("t", run)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        if units.iter().any(|u| u.status == UnitStatus::Waiting) {
            return units;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    panic!("run {run} never waited");
}

/// The inputs of the attempts of `step`, in order.
fn inputs_of(fake: &FakeRunner, step: &str) -> Vec<Value> {
    fake.started
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, ..)| s == step)
        .map(|(.., input)| serde_json::from_str(input).unwrap())
        .collect()
}

/// The run's history: (ms since T0, event).
async fn history(engine: &Engine, run: RunId) -> Vec<(u64, EventKind)> {
    let events = engine.store().events_from("t", run, 0).await.unwrap();
    events.into_iter().map(|(_, e)| (e.at - T0, e.kind)).collect()
}

/// When `step` finished, by its history.
fn finished_at(history: &[(u64, EventKind)], step: &str) -> Option<u64> {
    history.iter().find_map(|(at, kind)| match kind {
        EventKind::StepFinished { step: s, .. } if s == step => Some(*at),
        _ => None,
    })
}

// With tokio's clock paused, time jumps to the next timer whenever every
// task waits, a commit on the store's thread included: so a test reads
// when something happened from the run's history, stamped as it
// happened, rather than from the clock after a commit.

/// Waits, in real time, until the stored unit of step `index` of `run`
/// has `status`.
async fn until_step(engine: &Engine, run: RunId, index: usize, status: UnitStatus) {
    for _ in 0..5_000 {
        if engine.store().units("t", run).await.unwrap()[index].1.status == status {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    panic!("step {index} of run {run} never became {status}");
}

/// Lets the engine and the store's thread do whatever they would, in
/// real time (50 ms).
async fn settle() {
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
}

fn start_time(fake: &FakeRunner, step: &str) -> Option<u64> {
    fake.started()
        .into_iter()
        .find(|(s, ..)| s == step)
        .map(|(.., t)| t - T0)
}

#[tokio::test(start_paused = true)]
async fn a_one_hour_sleep_ends_on_time_across_a_restart_at_minute_30() {
    let workflow = "
name: nap
steps:
  - {id: before, task: task}
  - {id: nap, needs: [before], sleep: 1h}
  - {id: after, task: task, needs: [nap]}
";
    let s = setup(workflow, 8).await;
    let run = start(&s.engine, "nap", 0).await;
    let units = until_waiting(&s.engine, run).await;
    let due = units[1].due.expect("a sleep has a due time");
    assert_eq!(due, T0 + 3_600_000, "the sleep began when `before` ended, at T0");

    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    assert_eq!(start_time(&s.fake, "after"), None, "nothing runs before the hour");
    s.engine.shutdown().await;
    drop(s.engine);

    // A new engine on the same store, 30 minutes in by the wall clock.
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 1_800_000, 8).await;
    let units = engine.store().units("t", run).await.unwrap();
    assert_eq!(units[1].1.status, UnitStatus::Waiting);
    assert_eq!(units[1].1.due, Some(due), "the restart keeps the due time");
    let record = engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(
        start_time(&s.fake, "after"),
        Some(3_600_000),
        "`after` starts at the hour exactly"
    );
    assert_eq!(record.output.unwrap()["nap"], Value::Null);
}

#[tokio::test(start_paused = true)]
async fn sleep_until_waits_for_the_time_its_template_gives_and_not_for_a_past_one() {
    let workflow = "
name: until
steps:
  - {id: wait, sleep_until: '${{ input.at }}'}
  - {id: after, task: task, needs: [wait]}
";
    let s = setup(workflow, 8).await;
    // 90 s after T0 (2023-11-14T22:13:20Z), written with a +01:00 offset.
    let run = start_with(&s.engine, "until", json!({"at": "2023-11-14T23:14:50+01:00"})).await;
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
    assert_eq!(start_time(&s.fake, "after"), Some(90_000));

    // Milliseconds since the epoch, already past: no wait at all.
    let now = s.engine.now();
    let run = start_with(&s.engine, "until", json!({"at": now - 5_000})).await;
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
    assert_eq!(s.engine.now(), now, "no time passed");

    // Not a time: the step fails, naming what it got.
    let run = start_with(&s.engine, "until", json!({"at": "next tuesday"})).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, "expression_error");
    assert!(
        error.message.contains("\"next tuesday\" is not an RFC 3339 time"),
        "{}",
        error.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_sent_to_a_waiting_step_becomes_its_output() {
    let s = setup(PAYMENT, 8).await;
    let run = start(&s.engine, "pay", 0).await;
    until_waiting(&s.engine, run).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    let payload = json!({"amount": 1999, "psp": "evt_1"});
    let delivery = s.engine.signal(run, "payment", None, payload.clone()).await.unwrap();
    assert_eq!(delivery, Delivery::Taken("paid".into()));
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(inputs_of(&s.fake, "ship"), [payload]);
    let history = history(&s.engine, run).await;
    let paid = finished_at(&history, "paid").unwrap();
    assert!(
        (60_000..61_000).contains(&paid),
        "`paid` ends when the signal comes: {paid}"
    );
    assert_eq!(start_time(&s.fake, "refund"), None);
}

#[tokio::test(start_paused = true)]
async fn a_signal_sent_before_its_step_waits_is_kept_for_it() {
    let s = setup(PAYMENT, 8).await;
    s.fake.script("order", 1, Script::Gated);
    let run = start(&s.engine, "pay", 0).await;
    while s.fake.started().is_empty() {
        tokio::task::yield_now().await;
    }
    let payload = json!({"amount": 500});
    let delivery = s
        .engine
        .signal(run, "payment", Some("evt-1".into()), payload.clone())
        .await
        .unwrap();
    assert_eq!(delivery, Delivery::Kept);
    let stored = s.engine.store().run(run).await.unwrap().unwrap();
    assert_eq!(stored.signals.len(), 1, "kept durably in the run's record");

    tokio::time::advance(Duration::from_secs(5)).await;
    s.fake.gate.notify_one();
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(
        inputs_of(&s.fake, "ship"),
        [payload],
        "the kept payload is the step's output"
    );
    assert_eq!(start_time(&s.fake, "ship"), Some(5_000), "no wait once the step began");
    let stored = s.engine.store().run(run).await.unwrap().unwrap();
    assert!(stored.signals.is_empty(), "taken, so no longer kept");
}

#[tokio::test(start_paused = true)]
async fn a_signal_repeated_with_its_id_changes_nothing() {
    let s = setup(PAYMENT, 8).await;
    s.fake.script("order", 1, Script::Gated);
    let run = start(&s.engine, "pay", 0).await;
    let first = s
        .engine
        .signal(run, "payment", Some("evt-7".into()), json!(1))
        .await
        .unwrap();
    let again = s
        .engine
        .signal(run, "payment", Some("evt-7".into()), json!(2))
        .await
        .unwrap();
    assert_eq!((first, again), (Delivery::Kept, Delivery::Duplicate));
    s.fake.gate.notify_one();
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
    assert_eq!(inputs_of(&s.fake, "ship"), [json!(1)]);

    let events = s.engine.store().events_from("t", run, 0).await.unwrap();
    let received = events
        .iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::SignalReceived { .. }))
        .count();
    assert_eq!(received, 1, "one signal in the history");
}

#[tokio::test(start_paused = true)]
async fn signals_nothing_will_read_are_refused_with_the_reason() {
    let s = setup(PAYMENT, 8).await;
    let run = start(&s.engine, "pay", 0).await;
    until_waiting(&s.engine, run).await;
    let unknown = s.engine.signal(run, "paymnet", None, json!(null)).await.unwrap_err();
    assert!(matches!(unknown, EngineError::UnknownSignal { .. }), "{unknown}");
    assert!(
        unknown.to_string().contains("waits for a signal named \"paymnet\""),
        "{unknown}"
    );

    s.fake.script("ship", 1, Script::Gated);
    s.engine.signal(run, "payment", None, json!(1)).await.unwrap();
    while start_time(&s.fake, "ship").is_none() {
        tokio::task::yield_now().await;
    }
    let late = s.engine.signal(run, "payment", None, json!(2)).await.unwrap_err();
    assert!(matches!(late, EngineError::SignalRefused { .. }), "{late}");
    assert!(late.to_string().contains("(`paid`) are done"), "{late}");

    s.fake.gate.notify_one();
    s.engine.wait(run).await.unwrap();
    let ended = s.engine.signal(run, "payment", None, json!(3)).await.unwrap_err();
    assert!(matches!(ended, EngineError::NotRunning(_)), "{ended}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_that_does_not_come_in_time_fails_the_step_and_compensates() {
    let s = setup(PAYMENT, 8).await;
    let run = start(&s.engine, "pay", 0).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!((error.code.as_str(), error.step.as_deref()), ("timeout", Some("paid")));
    assert_eq!(error.message, "no signal `payment` came within 1h");
    assert_eq!(
        start_time(&s.fake, "refund"),
        Some(3_600_000),
        "compensation at the timeout"
    );
    assert_eq!(start_time(&s.fake, "ship"), None);
}

#[tokio::test(start_paused = true)]
async fn a_wait_with_retry_waits_again_and_one_without_does_not() {
    let workflow = "
name: patient
steps:
  - id: paid
    wait_for: {signal: payment, timeout: 10m}
    retry: {max_attempts: 2, initial_interval: 1m}
";
    let s = setup(workflow, 8).await;
    let mut updates = s.engine.subscribe();
    let run = start(&s.engine, "patient", 0).await;
    // Past the first timeout and the minute's pause: the second wait.
    let mut waits = 0;
    while waits < 2 {
        let update = updates.recv().await.unwrap();
        waits += usize::from(update.run == run && matches!(update.event.kind, EventKind::Waiting { .. }));
    }
    let delivery = s.engine.signal(run, "payment", None, json!("ok")).await.unwrap();
    assert_eq!(delivery, Delivery::Taken("paid".into()));
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
    let waits: Vec<(u64, u64)> = history(&s.engine, run)
        .await
        .into_iter()
        .filter_map(|(at, kind)| match kind {
            EventKind::Waiting { until, .. } => Some((at, until.unwrap() - T0)),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert_eq!(waits[0].1 - waits[0].0, 600_000, "each wait is 10 minutes");
    assert_eq!(waits[1].1 - waits[1].0, 600_000, "each wait is 10 minutes");
    assert!(waits[1].0 >= waits[0].1 + 60_000, "a minute's pause between: {waits:?}");
    let units = s.engine.store().units("t", run).await.unwrap();
    assert_eq!(units[0].1.attempts, 1, "one wait timed out");

    // The workflow's defaults retry tasks three times, never a wait.
    let workflow = "
name: impatient
defaults: {retry: {max_attempts: 3, initial_interval: 1s}}
steps:
  - {id: paid, wait_for: {signal: payment, timeout: 10m}}
";
    s.engine.put_workflow("t", workflow).await.unwrap();
    let run = start(&s.engine, "impatient", 0).await;
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let history = history(&s.engine, run).await;
    let waits = history
        .iter()
        .filter(|(_, k)| matches!(k, EventKind::Waiting { .. }))
        .count();
    assert_eq!(waits, 1, "one wait, no retry: {history:?}");
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_sleeping_run_ends_it_at_once() {
    let workflow = "
name: long_nap
steps:
  - {id: nap, sleep: 30d}
  - {id: after, task: task, needs: [nap]}
";
    let s = setup(workflow, 8).await;
    let run = start(&s.engine, "long_nap", 0).await;
    until_waiting(&s.engine, run).await;
    s.engine.cancel(run).await.unwrap();
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Cancelled);
    let ended = history(&s.engine, run).await.last().unwrap().0;
    assert!(ended < 1_000, "no waiting out the sleep: ended at {ended} ms");
    let statuses: Vec<UnitStatus> = s
        .engine
        .store()
        .units("t", run)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, u)| u.status)
        .collect();
    assert_eq!(statuses, [UnitStatus::Cancelled, UnitStatus::Cancelled]);
}

#[tokio::test(start_paused = true)]
async fn wait_steps_are_checked_like_any_other() {
    let s = setup(PAYMENT, 8).await;
    let bad = "
name: bad
steps:
  - {id: nothing}
  - {id: both, task: task, sleep: 1m}
  - {id: inputs, sleep: 1m, input: {a: 1}, limits: {fuel: 5}}
  - {id: badname, wait_for: {signal: Pay Me}}
  - {id: soon, sleep: tomorrow}
  - {id: when, sleep_until: 'yesterday'}
";
    let EngineError::InvalidWorkflow(errors) = s.engine.put_workflow("t", bad).await.unwrap_err() else {
        panic!("not refused as invalid");
    };
    let text = errors.to_string();
    for expected in [
        "step `nothing` does nothing: give it one of `task`, `sleep`, `sleep_until`, `wait_for`, `approval` or `workflow`",
        "step `both` has both `task` and `sleep`",
        "`input` is for task steps, and `inputs` is a `sleep` step",
        "`limits` is for task steps, and `inputs` is a `sleep` step",
        "\"Pay Me\" is not a valid signal name",
        "steps[4].sleep",
        "\"yesterday\" is not an RFC 3339 time",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_paused_run_starts_nothing_new_across_a_restart_until_resumed() {
    let workflow = "
name: pausable
steps:
  - {id: a, task: task}
  - {id: b, task: task, needs: [a]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("a", 1, Script::Gated);
    let run = start(&s.engine, "pausable", 0).await;
    while start_time(&s.fake, "a").is_none() {
        tokio::task::yield_now().await;
    }
    s.engine.set_paused(run, true).await.unwrap();
    s.engine.set_paused(run, true).await.unwrap(); // again: no change
    s.fake.gate.notify_one();
    // `a`, already running, finishes; `b` is held. (Real time passes for
    // the store's thread: paused tokio time would not wait for it.)
    until_step(&s.engine, run, 0, UnitStatus::Succeeded).await;
    settle().await;
    let statuses = unit_statuses(&s.engine, run).await;
    assert_eq!(statuses, [UnitStatus::Succeeded, UnitStatus::Ready]);
    assert_eq!(start_time(&s.fake, "b"), None);
    s.engine.shutdown().await;
    drop(s.engine);

    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 60_000, 8).await;
    settle().await;
    assert_eq!(start_time(&s.fake, "b"), None, "still paused after the restart");
    assert!(engine.store().run(run).await.unwrap().unwrap().paused);
    engine.set_paused(run, false).await.unwrap();
    assert_eq!(engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
    let kinds: Vec<&'static str> = history(&engine, run).await.iter().map(|(_, k)| k.name()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "run_paused").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "run_resumed").count(), 1, "{kinds:?}");
    let ended = engine.set_paused(run, true).await.unwrap_err();
    assert!(matches!(ended, EngineError::NotRunning(_)), "{ended}");
}
