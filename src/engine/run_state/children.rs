//! The transitions of `workflow` steps (docs/architecture.md,
//! "Sub-workflows"): the step asks for a child run, records it once
//! started, and ends as the child ends; a parent that is cancelled or
//! fails asks for its waiting children to be cancelled.

use serde_json::Value;

use super::{ActiveRun, Effects};
use crate::model::{
    AttemptCaps, EventKind, Failure, MAX_DEPTH, Millis, ParentLink, RunId, RunRecord, RunStatus, UnitKey, UnitStatus,
};
use crate::sandbox::Outcome;

/// A child run a `workflow` step asks the scheduler to start.
#[derive(Debug, Clone)]
pub(crate) struct ChildStart {
    /// The parent's unit that waits for it.
    pub key: UnitKey,
    /// The tenant (the parent's).
    pub tenant: String,
    /// The workflow to run.
    pub workflow: String,
    /// The child's input: the step's rendered `input`.
    pub input: Value,
    /// Names this child uniquely: a second start with it finds the first.
    pub idempotency_key: String,
    /// Higher runs first (the parent's).
    pub priority: i32,
    /// The parent's caps on attempts.
    pub caps: Option<AttemptCaps>,
    /// Where it comes from.
    pub parent: ParentLink,
}

impl ActiveRun {
    /// Begins `workflow` step `index`: it waits, and a child run is asked
    /// for once that is durable.
    pub(super) fn begin_child(&mut self, index: usize, now: Millis, fx: &mut Effects) {
        let key = UnitKey::step(index);
        let depth = self.record.parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_DEPTH {
            let message = format!("sub-workflows nest at most {MAX_DEPTH} deep; this child would be {depth} deep");
            return self.fail_step(key, Failure::new("too_deep", message), now, fx);
        }
        let start = match self.child_start(key) {
            Ok(start) => start,
            Err(failure) => return self.fail_step(key, failure, now, fx),
        };
        let unit = self.unit_mut(key);
        unit.status = UnitStatus::Waiting;
        unit.due = None;
        unit.child = None;
        unit.since = Some(now);
        fx.children.push(start);
        let step = self.workflow.steps[index].id.clone();
        self.event(
            fx,
            now,
            EventKind::Waiting {
                step,
                until: None,
                signal: None,
            },
        );
    }

    /// What starting the child of `key` takes; the same every time it is
    /// asked for during one attempt, so a repeat finds the first child.
    pub(super) fn child_start(&self, key: UnitKey) -> Result<ChildStart, Failure> {
        let step = &self.workflow.steps[key.step as usize];
        let workflow = step.child_workflow().unwrap_or_default().to_string();
        let input = serde_json::from_str(&self.input_for(key)?).unwrap_or(Value::Null);
        let attempt = self.unit(key).attempts + 1;
        Ok(ChildStart {
            key,
            tenant: self.record.tenant.clone(),
            workflow,
            input,
            idempotency_key: format!("weft:child:{}:{}:{attempt}", self.record.id, step.id),
            priority: self.record.priority,
            caps: self.record.caps,
            parent: ParentLink {
                run: self.record.id,
                step: step.id.clone(),
                depth: self.record.parent.as_ref().map_or(0, |p| p.depth) + 1,
            },
        })
    }

    /// The child of `key` started as run `child`; recorded, unless the step
    /// stopped waiting meanwhile (then the child is cancelled).
    pub fn child_started(&mut self, key: UnitKey, child: RunId, now: Millis) -> Effects {
        let mut fx = Effects::default();
        let unit = self.unit(key);
        if unit.child == Some(child) {
            return fx; // recorded already: the child ended first
        }
        if self.record.status.is_final() || unit.status != UnitStatus::Waiting {
            fx.cancel_children.push(child);
            return fx;
        }
        self.unit_mut(key).child = Some(child);
        let step = self.workflow.steps[key.step as usize].id.clone();
        self.event(&mut fx, now, EventKind::ChildStarted { step, run: child });
        self.flush(&mut fx);
        fx
    }

    /// The child of `key` could not start: the step fails.
    pub fn child_refused(&mut self, key: UnitKey, failure: Failure, now: Millis) -> Effects {
        let mut fx = Effects::default();
        if self.record.status.is_final() || self.unit(key).status != UnitStatus::Waiting {
            return fx;
        }
        self.unit_mut(key).attempts += 1;
        self.fail_unit(key, failure, now, &mut fx);
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        fx
    }

    /// Child run `child` of `key` ended: its output is the step's output,
    /// its failure or cancellation the step's failure (retried when the
    /// step says so, with a new child).
    pub fn child_ended(&mut self, key: UnitKey, child: &RunRecord, now: Millis, unit_random: f64) -> Effects {
        let mut fx = Effects::default();
        let unit = self.unit(key);
        if self.record.status.is_final() || unit.status != UnitStatus::Waiting || child.status == RunStatus::Running {
            return fx;
        }
        match unit.child {
            Some(id) if id == child.id => {}
            // A child may end before the news of its start comes back: it
            // is this wait's if it was created since the wait began.
            None if child.created_at >= unit.since.unwrap_or(Millis::MAX) => {
                self.unit_mut(key).child = Some(child.id);
                let step = self.workflow.steps[key.step as usize].id.clone();
                self.event(&mut fx, now, EventKind::ChildStarted { step, run: child.id });
            }
            _ => return fx,
        }
        let attempt = self.unit(key).attempts + 1;
        self.unit_mut(key).attempts = attempt;
        let failure = match child.status {
            RunStatus::Running => return fx,
            RunStatus::Succeeded => {
                let unit = self.unit_mut(key);
                unit.output = Some(child.output.clone().unwrap_or(Value::Null));
                unit.error = None;
                self.finish_unit(key, UnitStatus::Succeeded, now, &mut fx);
                self.advance(now, &mut fx);
                self.flush(&mut fx);
                return fx;
            }
            RunStatus::Failed => {
                let error = child.error.clone().unwrap_or_else(|| Failure::new("failed", "failed"));
                let at = error.step.map(|s| format!(" in step {s}")).unwrap_or_default();
                Failure::new(
                    "child_failed",
                    format!(
                        "child run {} of `{}` failed{at}: {}: {}",
                        child.id, child.workflow, error.code, error.message
                    ),
                )
            }
            RunStatus::Cancelled => Failure::new(
                "child_cancelled",
                format!("child run {} of `{}` was cancelled", child.id, child.workflow),
            ),
        };
        let outcome = Outcome::GuestError {
            code: failure.code.clone(),
            message: failure.message.clone(),
            retryable: true,
        };
        self.wait_failed(key, failure, &outcome, now, unit_random, &mut fx);
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        fx
    }

    /// The child runs its `workflow` steps wait for.
    pub(super) fn waiting_children(&self) -> Vec<RunId> {
        (0..self.steps.len())
            .filter(|&i| self.workflow.steps[i].child_workflow().is_some())
            .filter(|&i| self.steps[i].status == UnitStatus::Waiting)
            .filter_map(|i| self.steps[i].child)
            .collect()
    }

    /// For a run read back from the store: the `workflow` steps waiting
    /// for a child that was asked for but not recorded (asked again; the
    /// key finds it if it started), and those waiting for a recorded child
    /// (to be checked: it may have ended meanwhile).
    pub(super) fn children_to_recover(&self, fx: &mut Effects) {
        for index in 0..self.steps.len() {
            if self.workflow.steps[index].child_workflow().is_none() || self.steps[index].status != UnitStatus::Waiting
            {
                continue;
            }
            let key = UnitKey::step(index);
            match self.steps[index].child {
                Some(child) => fx.check_children.push((key, child)),
                None => fx.children.extend(self.child_start(key).ok()),
            }
        }
    }
}
