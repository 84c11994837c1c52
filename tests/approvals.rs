//! Approval steps with a fake runner and tokio's paused clock: approved,
//! rejected (compensation runs), timed out, escalated; who may decide,
//! decisions recorded, the pending list, and documents that are refused.

#[path = "common/fake_runner.rs"]
mod fake_runner;

use std::time::Duration;

use fake_runner::*;
use weft::engine::{Decision, Engine, EngineError};
use weft::model::{EventKind, RunId, RunStatus, UnitStatus};

const REFUND: &str = "
name: refund
steps:
  - {id: charge, task: task}
  - id: manager_ok
    needs: [charge]
    approval:
      approvers: [ada@example.com, grace@example.com]
      timeout: 48h
      escalate: {after: 4h, to: [boss@example.com]}
  - {id: pay_out, task: task, needs: [manager_ok], input: '${{ steps.manager_ok.output }}'}
  - {id: undo_charge, task: task, on_failure_of: [manager_ok]}
";

fn decision(approve: bool, by: &str, comment: Option<&str>) -> Decision {
    Decision {
        step: "manager_ok".into(),
        approve,
        by: by.into(),
        comment: comment.map(str::to_string),
    }
}

/// Waits, in real time (the store's thread commits in real time while
/// tokio's clock is paused), until step `index` of `run` is `status`.
async fn until_step(engine: &Engine, run: RunId, index: usize, status: UnitStatus) {
    for _ in 0..10_000 {
        if engine.store().units("t", run).await.unwrap()[index].1.status == status {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    panic!("step {index} of run {run} never became {status}");
}

/// The run's history: (ms since T0, event).
async fn history(engine: &Engine, run: RunId) -> Vec<(u64, EventKind)> {
    let events = engine.store().events_from("t", run, 0).await.unwrap();
    events.into_iter().map(|(_, e)| (e.at - T0, e.kind)).collect()
}

fn started(fake: &FakeRunner, step: &str) -> bool {
    fake.started().iter().any(|(s, ..)| s == step)
}

#[tokio::test(start_paused = true)]
async fn an_approval_decided_by_an_approver_is_the_steps_output_and_is_recorded() {
    let s = setup(REFUND, 8).await;
    let run = start(&s.engine, "refund", 0).await;
    until_step(&s.engine, run, 1, UnitStatus::Waiting).await;

    let pending = s.engine.pending_approvals("t").await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((pending[0].run, pending[0].step.as_str()), (run, "manager_ok"));
    assert_eq!(pending[0].deciders, ["ada@example.com", "grace@example.com"]);
    assert!(!pending[0].escalated);
    let since = pending[0].since;
    assert_eq!(pending[0].escalates_at, Some(since + 4 * 3_600_000));
    assert_eq!(pending[0].expires_at, Some(since + 48 * 3_600_000));
    assert!(s.engine.pending_approvals("other").await.unwrap().is_empty());

    // The escalation's target may not decide before it escalates.
    let early = s
        .engine
        .decide(run, decision(true, "boss@example.com", None))
        .await
        .unwrap_err();
    assert!(matches!(early, EngineError::NotADecider { .. }), "{early}");
    assert!(
        early.to_string().contains("ada@example.com, grace@example.com may"),
        "{early}"
    );

    // Names compare without regard to case.
    let ok = decision(true, "Ada@Example.com", Some("refund is fine"));
    s.engine.decide(run, ok).await.unwrap();
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    let output = &record.output.unwrap()["manager_ok"];
    assert_eq!(output["approved"], true);
    assert_eq!(output["by"], "Ada@Example.com");
    assert_eq!(output["comment"], "refund is fine");
    assert!(started(&s.fake, "pay_out") && !started(&s.fake, "undo_charge"));
    assert!(history(&s.engine, run).await.iter().any(|(_, e)| *e
        == EventKind::ApprovalDecided {
            step: "manager_ok".into(),
            approved: true,
            by: "Ada@Example.com".into(),
            comment: Some("refund is fine".into()),
        }));

    // Decided once: a second decision, and one on an ended run, are refused.
    let again = s.engine.decide(run, decision(false, "grace@example.com", None)).await;
    assert!(matches!(again, Err(EngineError::NotRunning(_))), "{again:?}");
    assert!(s.engine.pending_approvals("t").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rejection_fails_the_step_and_runs_its_compensation() {
    let s = setup(REFUND, 8).await;
    let run = start(&s.engine, "refund", 0).await;
    until_step(&s.engine, run, 1, UnitStatus::Waiting).await;
    let unknown = Decision {
        step: "charge".into(),
        ..decision(true, "ada@example.com", None)
    };
    let refused = s.engine.decide(run, unknown).await.unwrap_err();
    assert!(matches!(refused, EngineError::UnknownApproval { .. }), "{refused}");

    let no = decision(false, "grace@example.com", Some("over the limit"));
    s.engine.decide(run, no).await.unwrap();
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str(), error.step.as_deref()),
        (
            "rejected",
            "rejected by grace@example.com: over the limit",
            Some("manager_ok")
        )
    );
    assert!(started(&s.fake, "undo_charge"), "the compensation ran");
    assert!(!started(&s.fake, "pay_out"));
}

#[tokio::test(start_paused = true)]
async fn an_approval_escalates_on_time_and_nobody_deciding_rejects_it_at_the_timeout() {
    let s = setup(REFUND, 8).await;
    let mut updates = s.engine.subscribe();
    let run = start(&s.engine, "refund", 0).await;
    loop {
        let update = updates.recv().await.unwrap();
        if matches!(update.event.kind, EventKind::ApprovalEscalated { .. }) {
            break;
        }
    }
    let pending = s.engine.pending_approvals("t").await.unwrap();
    assert!(pending[0].escalated, "{pending:?}");
    assert_eq!(pending[0].escalates_at, None);
    assert_eq!(
        pending[0].deciders,
        ["ada@example.com", "grace@example.com", "boss@example.com"]
    );
    // Nobody decides: at 48 h the step is rejected.
    let record = s.engine.wait(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("rejected", "nobody decided within 2days")
    );
    let history = history(&s.engine, run).await;
    let waited = history
        .iter()
        .find_map(|(at, e)| matches!(e, EventKind::Waiting { .. }).then_some(*at))
        .unwrap();
    let escalated = history
        .iter()
        .find_map(|(at, e)| match e {
            EventKind::ApprovalEscalated { to, .. } => Some((*at, to.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        escalated,
        (waited + 4 * 3_600_000, vec!["boss@example.com".to_string()])
    );
    let rejected = history
        .iter()
        .find_map(|(at, e)| match e {
            EventKind::StepFinished { step, status } if step == "manager_ok" => Some((*at, *status)),
            _ => None,
        })
        .unwrap();
    assert_eq!(rejected, (waited + 48 * 3_600_000, UnitStatus::Failed));
    assert!(started(&s.fake, "undo_charge"));
}

#[tokio::test(start_paused = true)]
async fn the_escalation_target_decides_once_it_escalated_across_a_restart() {
    let s = setup(REFUND, 8).await;
    let run = start(&s.engine, "refund", 0).await;
    until_step(&s.engine, run, 1, UnitStatus::Waiting).await;
    s.engine.shutdown().await;
    drop(s.engine);

    // Five hours later: the escalation's timer is re-armed from the store
    // and fires at once.
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 5 * 3_600_000, 8).await;
    let mut escalated = false;
    for _ in 0..10_000 {
        let events = history(&engine, run).await;
        if events
            .iter()
            .any(|(_, e)| matches!(e, EventKind::ApprovalEscalated { .. }))
        {
            escalated = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    assert!(escalated, "escalated after the restart");
    engine
        .decide(run, decision(true, "boss@example.com", None))
        .await
        .unwrap();
    assert_eq!(engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn approval_steps_are_checked_like_any_other() {
    let s = setup(REFUND, 8).await;
    for (doc, expected) in [
        (
            "approval: {approvers: []}",
            "steps[0].approval.approvers: name at least one person who may decide",
        ),
        (
            "approval: {approvers: [ada], timeout: 1h, escalate: {after: 2h, to: [boss]}}",
            "escalating after 2h is not before the timeout (1h)",
        ),
        (
            "approval: {approvers: [ada]}\n    retry: {max_attempts: 2}",
            "`a` is an approval, which is not retried",
        ),
        (
            "approval: {approvers: [ada]}\n    task: task",
            "step `a` has both `task` and `approval`",
        ),
        (
            "approval: {approvers: [ada], timeout: soon}",
            "steps[0].approval.timeout",
        ),
    ] {
        let workflow = format!("name: bad\nsteps:\n  - id: a\n    {doc}\n");
        let error = s.engine.put_workflow("t", &workflow).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{doc}\n{error}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_decision_before_the_step_is_reached_is_refused() {
    let s = setup(REFUND, 8).await;
    s.fake.script("charge", 1, Script::Gated);
    let run = start(&s.engine, "refund", 0).await;
    while !started(&s.fake, "charge") {
        tokio::task::yield_now().await;
    }
    let early = s
        .engine
        .decide(run, decision(true, "ada@example.com", None))
        .await
        .unwrap_err();
    assert!(matches!(early, EngineError::ApprovalRefused { .. }), "{early}");
    assert!(early.to_string().contains("has not reached it yet"), "{early}");
    s.fake.gate.notify_one();
    until_step(&s.engine, run, 1, UnitStatus::Waiting).await;
    s.engine
        .decide(run, decision(true, "grace@example.com", None))
        .await
        .unwrap();
    assert_eq!(s.engine.wait(run).await.unwrap().status, RunStatus::Succeeded);
}
