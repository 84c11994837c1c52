//! Resetting an ended run to run again from a step that succeeded: what
//! runs again and what keeps its result, attempt numbers that go on, the
//! history that keeps the earlier attempts, fan-outs expanded again across
//! a restart, and the resets that are refused.

#[path = "common/fake_runner.rs"]
mod fake_runner;

use std::time::Duration;

use fake_runner::*;
use serde_json::json;
use weft::engine::EngineError;
use weft::model::{EventKind, RunId, RunStatus, UnitKey, UnitStatus};

/// (step, attempt) of every attempt started, in order.
fn attempts(fake: &FakeRunner) -> Vec<(String, u32)> {
    fake.started().into_iter().map(|(s, a, _)| (s, a)).collect()
}

/// The attempt numbers recorded for each unit, in store order.
async fn recorded_attempts(s: &Setup, run: RunId) -> Vec<(UnitKey, u32)> {
    let store = s.engine.store();
    store
        .attempts("t", run)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, a)| (key, a.attempt))
        .collect()
}

async fn history(s: &Setup, run: RunId) -> Vec<EventKind> {
    let store = s.engine.store();
    let events = store.events_from("t", run, 0).await.unwrap();
    events.into_iter().map(|(_, e)| e.kind).collect()
}

#[tokio::test(start_paused = true)]
async fn a_reset_runs_the_step_and_what_is_downstream_again_reading_upstream_outputs() {
    let workflow = "
name: chain
steps:
  - {id: a, task: task}
  - {id: b, task: task, needs: [a], input: {from_a: '${{ steps.a.output }}'}}
  - {id: c, task: task, needs: [b], input: {from_b: '${{ steps.b.output }}'}}
  - {id: side, task: task, needs: [a]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("a", 1, Script::Ok(json!("a1")));
    s.fake.script("b", 1, Script::Ok(json!("b1")));
    s.fake.script("b", 2, Script::Ok(json!("b2")));
    s.fake.script("c", 1, Script::Slow(Duration::ZERO));
    s.fake.script("c", 2, Script::Slow(Duration::ZERO));
    let run = start(&s.engine, "chain", 0).await;
    let first = s.engine.wait(run).await.unwrap();
    assert_eq!(first.output.unwrap()["c"], json!({"from_b": "b1"}));

    s.engine.reset(run, "b").await.unwrap();
    let second = s.engine.wait(run).await.unwrap();
    assert_eq!(second.status, RunStatus::Succeeded);
    let output = second.output.unwrap();
    assert_eq!(output["c"], json!({"from_b": "b2"}), "c read b's new output");
    assert_eq!(output["a"], json!("a1"), "a kept its result");
    let ran: Vec<(String, u32)> = attempts(&s.fake).into_iter().skip(4).collect();
    assert_eq!(ran, [("b".into(), 2), ("c".into(), 2)], "only b and c ran again");
    // b read a's recorded output again.
    let b_inputs: Vec<String> = s
        .fake
        .started
        .lock()
        .unwrap()
        .iter()
        .filter(|(step, ..)| step == "b")
        .map(|(.., input)| input.clone())
        .collect();
    assert_eq!(b_inputs, [r#"{"from_a":"a1"}"#, r#"{"from_a":"a1"}"#]);
    // The history keeps both attempts of b and c, and marks the reset.
    let recorded = recorded_attempts(&s, run).await;
    assert_eq!(recorded.iter().filter(|(k, _)| k.step == 1).count(), 2);
    assert_eq!(recorded.iter().filter(|(k, _)| k.step == 2).count(), 2);
    let events = history(&s, run).await;
    let reset_at = events
        .iter()
        .position(|e| *e == EventKind::RunReset { from: "b".into() })
        .expect("a run_reset event");
    let finished = |e: &EventKind| matches!(e, EventKind::RunFinished { .. });
    assert!(events[..reset_at].iter().any(finished) && events[reset_at..].iter().any(finished));
}

#[tokio::test(start_paused = true)]
async fn a_failed_saga_resets_from_before_its_failure_and_its_compensation_may_run_again() {
    let workflow = "
name: saga
steps:
  - {id: pay, task: task}
  - {id: reserve, task: task, needs: [pay], retry: {max_attempts: 1}}
  - {id: refund, task: task, on_failure_of: [reserve]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("reserve", 1, Script::Fail("out_of_stock", false));
    let run = start(&s.engine, "saga", 0).await;
    let failed = s.engine.wait(run).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    // A retry would build on the payment the compensation refunded.
    assert!(matches!(
        s.engine.retry(run).await,
        Err(EngineError::CannotRetry { .. })
    ));
    // A reset from a step that did not succeed is refused, naming it.
    let refused = s.engine.reset(run, "reserve").await.unwrap_err();
    assert!(refused.to_string().contains("step `reserve` is failed"), "{refused}");

    s.engine.reset(run, "pay").await.unwrap();
    let again = s.engine.wait(run).await.unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    assert_eq!(again.error, None);
    assert_eq!(
        attempts(&s.fake),
        [
            ("pay".into(), 1),
            ("reserve".into(), 1),
            ("refund".into(), 1),
            ("pay".into(), 2),
            ("reserve".into(), 2),
        ]
    );
    assert_eq!(
        unit_statuses(&s.engine, run).await,
        [UnitStatus::Succeeded, UnitStatus::Succeeded, UnitStatus::Skipped]
    );
}

#[tokio::test(start_paused = true)]
async fn a_fan_out_reset_across_a_restart_numbers_its_items_attempts_on() {
    let workflow = "
name: fan
steps:
  - {id: list, task: task}
  - id: each
    task: task
    needs: [list]
    for_each: steps.list.output
    input: '${{ item }}'
";
    let s = setup(workflow, 8).await;
    s.fake.script("list", 1, Script::Ok(json!([1, 2, 3])));
    s.fake.script("each", 1, Script::Slow(Duration::ZERO));
    let run = start(&s.engine, "fan", 0).await;
    assert_eq!(
        s.engine.wait(run).await.unwrap().output.unwrap()["each"],
        json!([1, 2, 3])
    );

    // The reset's first attempt is cut off by a shutdown: the items are
    // expanded again only after the restart.
    s.fake.script("list", 2, Script::Hang);
    s.engine.reset(run, "list").await.unwrap();
    while attempts(&s.fake).len() < 5 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.engine.shutdown().await;
    drop(s.engine);

    s.fake.script("list", 2, Script::Ok(json!([10, 20])));
    s.fake.script("each", 2, Script::Slow(Duration::ZERO));
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 5_000, 8).await;
    let record = engine.wait(run).await.unwrap();
    assert_eq!(record.output.unwrap()["each"], json!([10, 20]));
    let ran: Vec<(String, u32)> = attempts(&s.fake).into_iter().skip(4).collect();
    assert_eq!(
        ran,
        [
            ("list".into(), 2),
            ("list".into(), 2),
            ("each".into(), 2),
            ("each".into(), 2)
        ]
    );
    // Every attempt stays recorded under its own number; the third item,
    // which the new list does not have, is shown skipped.
    let mut items: Vec<(u32, u32)> = engine
        .store()
        .attempts("t", run)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(key, a)| key.item.map(|i| (i, a.attempt)))
        .collect();
    items.sort();
    assert_eq!(items, [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)]);
    let third = engine
        .store()
        .units("t", run)
        .await
        .unwrap()
        .into_iter()
        .find(|(key, _)| *key == UnitKey::item(1, 2))
        .unwrap()
        .1;
    assert_eq!((third.status, third.attempts), (UnitStatus::Skipped, 1));
}

#[tokio::test(start_paused = true)]
async fn resets_that_make_no_sense_are_refused_with_the_reason() {
    let workflow = "
name: refusals
steps:
  - {id: a, task: task}
  - {id: b, task: task, needs: [a]}
  - {id: undo, task: task, on_failure_of: [b]}
";
    let s = setup(workflow, 8).await;
    s.fake.script("b", 1, Script::Gated);
    let run = start(&s.engine, "refusals", 0).await;
    while attempts(&s.fake).len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let running = s.engine.reset(run, "a").await.unwrap_err();
    assert!(running.to_string().contains("still running"), "{running}");
    s.fake.gate.notify_one();
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Succeeded);

    for (from, reason) in [
        ("nope", "has no step `nope`"),
        ("undo", "`undo` is a compensation step"),
    ] {
        let refused = s.engine.reset(run, from).await.unwrap_err();
        assert!(matches!(refused, EngineError::CannotReset { .. }), "{refused}");
        assert!(refused.to_string().contains(reason), "{from}: {refused}");
    }
    let unknown = s.engine.reset(RunId(999), "a").await.unwrap_err();
    assert!(matches!(unknown, EngineError::UnknownRun(_)), "{unknown}");
    // Refusals changed nothing.
    assert_eq!(
        s.engine.store().run(run).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    assert!(
        !history(&s, run)
            .await
            .iter()
            .any(|e| matches!(e, EventKind::RunReset { .. }))
    );
}
