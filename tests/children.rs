//! Sub-workflows (`workflow` steps) with a fake runner and tokio's paused
//! clock: a child's output is its step's output, its failure the step's
//! failure (and the parent compensates), cancelling the parent cancels
//! the child, the runs link to each other, a restart loses neither, and
//! nesting is bounded.

#[path = "common/fake_runner.rs"]
mod fake_runner;

use std::time::Duration;

use fake_runner::*;
use serde_json::{Value, json};
use weft::engine::Engine;
use weft::model::{EventKind, ParentLink, RunId, RunRecord, RunStatus, UnitStatus};

const CHILD: &str = "
name: ship
steps:
  - {id: pack, task: task, input: {order: '${{ input.order }}'}}
  - {id: label, task: task, needs: [pack]}
output: {packed: '${{ steps.pack.output }}', label: '${{ steps.label.output }}'}
";

const PARENT: &str = "
name: order
steps:
  - {id: pay, task: task}
  - {id: shipping, workflow: ship, needs: [pay], input: {order: '${{ input.id }}'}}
  - {id: thank, task: task, needs: [shipping], input: '${{ steps.shipping.output.label }}'}
  - {id: refund, task: task, on_failure_of: [shipping]}
";

async fn setup_both() -> Setup {
    let s = setup(CHILD, 8).await;
    s.engine.put_workflow("t", PARENT).await.unwrap();
    s
}

async fn start_order(engine: &Engine) -> RunId {
    let request = weft::engine::StartRun {
        tenant: "t".into(),
        workflow: "order".into(),
        input: json!({"id": "A-1"}),
        ..Default::default()
    };
    engine.start_run(request).await.unwrap().0
}

/// The child run step 1 of `parent` started, once recorded (polled in real
/// time: the store's thread commits in real time while tokio's clock is
/// paused).
async fn child_of(engine: &Engine, parent: RunId) -> RunRecord {
    for _ in 0..10_000 {
        let units = engine.store().units("t", parent).await.unwrap();
        if let Some(child) = units[1].1.child {
            return engine.store().run(child).await.unwrap().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    panic!("run {parent} never recorded a child");
}

fn inputs_of(fake: &FakeRunner, step: &str) -> Vec<Value> {
    fake.started
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, ..)| s == step)
        .map(|(.., input)| serde_json::from_str(input).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_childs_output_is_its_steps_output_and_the_runs_link_to_each_other() {
    let s = setup_both().await;
    s.fake.script("label", 1, Script::Ok(json!("LBL-9")));
    let parent = start_order(&s.engine).await;
    let record = s.engine.wait(parent).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let shipping = &record.output.unwrap()["shipping"];
    assert_eq!(shipping, &json!({"packed": "done", "label": "LBL-9"}));
    assert_eq!(
        inputs_of(&s.fake, "pack"),
        [json!({"order": "A-1"})],
        "the child got the step's input"
    );
    assert_eq!(inputs_of(&s.fake, "thank"), [json!("LBL-9")]);

    let child = child_of(&s.engine, parent).await;
    assert_eq!(child.workflow, "ship");
    assert_eq!(child.status, RunStatus::Succeeded);
    assert_eq!(
        child.parent,
        Some(ParentLink {
            run: parent,
            step: "shipping".into(),
            depth: 1
        })
    );
    let events = s.engine.store().events_from("t", parent, 0).await.unwrap();
    assert!(events.iter().any(|(_, e)| e.kind
        == EventKind::ChildStarted {
            step: "shipping".into(),
            run: child.id
        }));
}

#[tokio::test(start_paused = true)]
async fn a_childs_failure_fails_its_step_and_the_parent_compensates() {
    let s = setup_both().await;
    s.fake.script("label", 1, Script::Fail("printer_jammed", false));
    s.fake.script("label", 2, Script::Fail("printer_jammed", false));
    s.fake.script("label", 3, Script::Fail("printer_jammed", false));
    let parent = start_order(&s.engine).await;
    let record = s.engine.wait(parent).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.step.as_deref()),
        ("child_failed", Some("shipping"))
    );
    assert!(
        error.message.contains("of `ship` failed in step label: printer_jammed"),
        "{}",
        error.message
    );
    assert_eq!(inputs_of(&s.fake, "refund").len(), 1, "the parent's compensation ran");
    assert!(inputs_of(&s.fake, "thank").is_empty());
    assert_eq!(child_of(&s.engine, parent).await.status, RunStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_parent_cancels_the_child() {
    let s = setup_both().await;
    s.fake.script("pack", 1, Script::Hang);
    let parent = start_order(&s.engine).await;
    let child = child_of(&s.engine, parent).await;
    while inputs_of(&s.fake, "pack").is_empty() {
        tokio::task::yield_now().await;
    }
    s.engine.cancel(parent).await.unwrap();
    assert_eq!(s.engine.wait(parent).await.unwrap().status, RunStatus::Cancelled);
    let child = s.engine.wait(child.id).await.unwrap();
    assert_eq!(child.status, RunStatus::Cancelled);
    let units = s.engine.store().units("t", child.id).await.unwrap();
    assert!(
        units.iter().all(|(_, u)| u.status == UnitStatus::Cancelled),
        "{units:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_parent_and_its_child_both_go_on_after_a_restart() {
    let s = setup_both().await;
    s.fake.script("pack", 1, Script::Hang);
    let parent = start_order(&s.engine).await;
    let child = child_of(&s.engine, parent).await;
    while inputs_of(&s.fake, "pack").is_empty() {
        tokio::task::yield_now().await;
    }
    s.engine.shutdown().await;
    drop(s.engine);

    s.fake.script("pack", 1, Script::Ok(json!("packed after the restart")));
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 5_000, 8).await;
    let record = engine.wait(parent).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    assert_eq!(record.output.unwrap()["shipping"]["packed"], "packed after the restart");
    let runs = engine.store().last_run_id().await.unwrap();
    assert_eq!(runs, child.id.0, "no second child was started");
}

#[tokio::test(start_paused = true)]
async fn a_missing_workflow_fails_the_step_and_nesting_is_bounded() {
    let s = setup_both().await;
    let workflow = "
name: orphan
steps:
  - {id: call, workflow: nowhere}
";
    s.engine.put_workflow("t", workflow).await.unwrap();
    let run = start(&s.engine, "orphan", 0).await;
    let error = s.engine.wait(run).await.unwrap().error.unwrap();
    assert_eq!(error.code, "child_not_started", "{error:?}");
    assert!(error.message.contains("nowhere"), "{error:?}");

    let workflow = "
name: forever
steps:
  - {id: again, workflow: forever}
";
    s.engine.put_workflow("t", workflow).await.unwrap();
    let run = start(&s.engine, "forever", 0).await;
    let error = s.engine.wait(run).await.unwrap().error.unwrap();
    assert_eq!(error.code, "child_failed", "{error:?}");
    assert!(error.message.contains("too_deep"), "{error:?}");
    let last = s.engine.store().last_run_id().await.unwrap();
    assert_eq!(last - run.0, 8, "eight nested children, no more");

    let bad = "name: bad\nsteps:\n  - {id: a, workflow: Not A Name}\n";
    let refused = s.engine.put_workflow("t", bad).await.unwrap_err();
    assert!(refused.to_string().contains("is not a workflow name"), "{refused}");
}
