//! The scheduler's side of waits (docs/architecture.md, "Waits"): timers
//! firing, for parked runs too, signals delivered to a run, and approvals
//! decided.

use std::cmp::Reverse;

use serde_json::Value;
use tokio::sync::oneshot;

use super::{Actor, Reply};
use crate::engine::run_state::{Delivery, Refusal, Undecidable};
use crate::engine::{Decision, EngineError};
use crate::model::{MAX_SIGNALS, Millis, RunId, UnitStatus};

impl Actor {
    /// Fires every timer that is due: retries, sleeps that end, signals
    /// that time out. A parked run is read back first.
    pub(super) async fn fire_timers(&mut self) {
        let now = self.shared.clock.now();
        while let Some(Reverse((due, run, key))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            self.unpark(run).await;
            if let Some(active) = self.runs.get_mut(&run) {
                let fx = active.timer_fired(key, due, now, rand::random::<f64>());
                self.commit(run, fx, None);
            } else if self.parked.contains(&run) {
                // The store could not be read: try this timer again shortly.
                self.timers.push(Reverse((now + super::STALL_RETRY_MS, run, key)));
                break;
            }
        }
    }

    /// Decides an approval step of `run`, answering once it is durable.
    pub(super) async fn decide(
        &mut self,
        run: RunId,
        decision: Decision,
        reply: oneshot::Sender<Result<(), EngineError>>,
        now: Millis,
    ) {
        if let Err(e) = self.bring_here(run, now).await {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(active) = self.runs.get_mut(&run) else {
            let _ = reply.send(Err(EngineError::NotRunning(run)));
            return;
        };
        let Decision {
            step,
            approve,
            by,
            comment,
        } = decision;
        let refused = |reason: String| EngineError::ApprovalRefused {
            run,
            step: step.clone(),
            reason,
        };
        let error = match active.decide(&step, approve, &by, comment, now) {
            Ok(fx) => return self.commit(run, fx, Some(Reply::Done(reply))),
            Err(Undecidable::Finished) => EngineError::NotRunning(run),
            Err(Undecidable::NotAnApproval) => EngineError::UnknownApproval {
                run,
                workflow: active.workflow.name.clone(),
                step,
            },
            Err(Undecidable::NotWaiting(UnitStatus::Pending)) => refused("the run has not reached it yet".into()),
            Err(Undecidable::NotWaiting(status)) => refused(format!("it is {status}: it was decided already")),
            Err(Undecidable::NotADecider(deciders)) => EngineError::NotADecider {
                run,
                step,
                by,
                deciders: deciders.join(", "),
            },
        };
        let _ = reply.send(Err(error));
    }

    /// Delivers a signal to `run`, answering once what it did is durable.
    pub(super) async fn signal(
        &mut self,
        run: RunId,
        name: &str,
        id: Option<String>,
        payload: Value,
        reply: oneshot::Sender<Result<Delivery, EngineError>>,
        now: Millis,
    ) {
        if let Err(e) = self.bring_here(run, now).await {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(active) = self.runs.get_mut(&run) else {
            // Ended: a repeat of a signal it took is still a duplicate, so
            // a sender retrying after a lost answer hears success.
            let answer = match self.shared.store.run(run).await {
                Ok(Some(record)) if id.is_some_and(|id| record.signal_ids.contains(&id)) => Ok(Delivery::Duplicate),
                Ok(_) => Err(EngineError::NotRunning(run)),
                Err(e) => Err(e.into()),
            };
            let _ = reply.send(answer);
            return;
        };
        let refused = |reason: String| EngineError::SignalRefused {
            run,
            signal: name.to_string(),
            reason,
        };
        match active.signal(name, id, payload, now) {
            // A duplicate goes through the writer too, so it is answered
            // only after the first delivery is durable.
            Ok((fx, delivery)) => self.commit(run, fx, Some(Reply::Signal(reply, delivery))),
            Err(Refusal::Finished) => {
                let _ = reply.send(Err(EngineError::NotRunning(run)));
            }
            Err(Refusal::Unknown) => {
                let _ = reply.send(Err(EngineError::UnknownSignal {
                    run,
                    workflow: active.workflow.name.clone(),
                    signal: name.to_string(),
                }));
            }
            Err(Refusal::Done(steps)) => {
                let steps = steps.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
                let _ = reply.send(Err(refused(format!(
                    "the steps that wait for it ({steps}) are done, so nothing would read it"
                ))));
            }
            Err(Refusal::TooMany) => {
                let _ = reply.send(Err(refused(format!(
                    "the run has accepted {MAX_SIGNALS} signals, the most one run may"
                ))));
            }
        }
    }
}
