//! The scheduler's side of sub-workflows (docs/architecture.md,
//! "Sub-workflows"): starting the child runs `workflow` steps ask for,
//! telling a parent its child ended, and cancelling children.

use tokio::sync::oneshot;

use super::{Actor, Msg};
use crate::engine::run_state::ChildStart;
use crate::engine::{EngineError, StartRun, start};
use crate::model::{Failure, Millis, RunId, RunRecord, UnitKey};
use crate::store::StoreError;

impl Actor {
    /// Acts on what a durable commit of `run` asked of its children:
    /// starts those asked for, cancels those no longer waited for, and
    /// looks at those that may have ended while nobody held the run.
    pub(super) fn mind_children(
        &mut self,
        run: RunId,
        starts: Vec<ChildStart>,
        cancels: Vec<RunId>,
        checks: Vec<(UnitKey, RunId)>,
    ) {
        for start in starts {
            self.start_child(run, start);
        }
        for child in cancels {
            let (reply, _) = oneshot::channel();
            let _ = self.shared.inbox.send(Msg::Cancel { run: child, reply });
        }
        for (_, child) in checks {
            let store = self.shared.store.clone();
            let inbox = self.shared.inbox.clone();
            tokio::spawn(async move {
                match store.run(child).await {
                    Ok(Some(record)) if record.status.is_final() => {
                        let _ = inbox.send(Msg::ChildEnded {
                            child: Box::new(record),
                        });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(run = %child, error = %e, "cannot read a child run"),
                }
            });
        }
    }

    /// Starts the child `start` asks for, off the scheduler's loop (the
    /// start is a message to it); the answer comes back as a message.
    fn start_child(&self, parent: RunId, start: ChildStart) {
        let store = self.shared.store.clone();
        let workflows = self.shared.workflows.clone();
        let now = self.shared.clock.now();
        let inbox = self.shared.inbox.clone();
        tokio::spawn(async move {
            let key = start.key;
            let result = async {
                if let Some(id) = store.idempotent_run(&start.tenant, &start.idempotency_key).await? {
                    return Ok(id);
                }
                let request = StartRun {
                    tenant: start.tenant,
                    workflow: start.workflow,
                    input: start.input,
                    priority: start.priority,
                    idempotency_key: Some(start.idempotency_key),
                    caps: start.caps,
                    max_active: None,
                    parent: Some(start.parent),
                };
                let (record, workflow) = start::prepare(&*store, &workflows, now, &request).await?;
                let (reply, answer) = oneshot::channel();
                inbox
                    .send(Msg::Start {
                        record: Box::new(record),
                        workflow,
                        idempotency_key: request.idempotency_key,
                        max_active: None,
                        reply,
                    })
                    .map_err(|_| EngineError::Stopped)?;
                match answer.await.map_err(|_| EngineError::Stopped)? {
                    // Another node started this child first (a takeover
                    // race on a shared database): that run is the child.
                    Err(EngineError::Store(StoreError::Duplicate { run })) => Ok(run),
                    answer => answer,
                }
            }
            .await;
            let _ = inbox.send(Msg::ChildStarted { parent, key, result });
        });
    }

    /// The child of `parent`'s unit `key` started (or could not).
    pub(super) async fn child_started(
        &mut self,
        parent: RunId,
        key: UnitKey,
        result: Result<RunId, EngineError>,
        now: Millis,
    ) {
        if let Err(e) = self.bring_here(parent, now).await {
            tracing::warn!(run = %parent, error = %e, "cannot take a run to record its child");
        }
        let Some(active) = self.runs.get_mut(&parent) else {
            // The parent ended: its child is not wanted.
            if let Ok(child) = result {
                self.mind_children(parent, Vec::new(), vec![child], Vec::new());
            }
            return;
        };
        let fx = match result {
            Ok(child) => active.child_started(key, child, now),
            Err(EngineError::Stopped) => return,
            Err(e) => active.child_refused(key, Failure::new("child_not_started", e.to_string()), now),
        };
        self.commit(parent, fx, None);
    }

    /// A child run ended: its parent's step ends with it.
    pub(super) async fn child_ended(&mut self, child: RunRecord, now: Millis) {
        let Some(link) = child.parent.clone() else { return };
        if let Err(e) = self.bring_here(link.run, now).await {
            tracing::warn!(run = %link.run, error = %e, "cannot take a run to end its step");
            return;
        }
        let Some(active) = self.runs.get_mut(&link.run) else {
            return;
        };
        let Some((index, _)) = active.workflow.step(&link.step) else {
            return;
        };
        let fx = active.child_ended(UnitKey::step(index), &child, now, rand::random::<f64>());
        self.commit(link.run, fx, None);
    }
}
