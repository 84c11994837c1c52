//! The transitions of wait steps (docs/architecture.md, "Waits"): a wait
//! begins, a sleep ends, a signal is taken or kept, a wait times out. A
//! waiting unit holds no slot and runs no attempt; its timer, if it has
//! one, is the unit's `due`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ActiveRun, Effects};
use crate::model::{EventKind, Failure, KeptSignal, MAX_SIGNALS, Millis, UnitKey, UnitStatus};
use crate::sandbox::Outcome;
use crate::spec::{Approval, StepKind, Template};
use crate::store::Change;

/// What became of a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The step with this id was waiting for it, and took it.
    Taken(String),
    /// No step waits for it yet; the first to wait will take it.
    Kept,
    /// A signal with the same id was accepted before; nothing changed.
    Duplicate,
}

/// Why a signal was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The run has ended.
    Finished,
    /// No step of the workflow waits for a signal of this name.
    Unknown,
    /// Every step that waits for it is done: nothing would read it.
    Done(Vec<String>),
    /// The run has accepted [`MAX_SIGNALS`] signals already.
    TooMany,
}

/// Why an approval could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecidable {
    /// The run has ended.
    Finished,
    /// The workflow has no approval step of that id.
    NotAnApproval,
    /// The step is not waiting for a decision: not reached yet, or done.
    NotWaiting(UnitStatus),
    /// The caller is not among these, who may decide now.
    NotADecider(Vec<String>),
}

/// Who may decide `approval`, which began waiting at `since`, at `now`:
/// its approvers, and its escalation's targets once it escalated.
pub fn deciders(approval: &Approval, since: Millis, now: Millis) -> Vec<String> {
    let mut who = approval.approvers.clone();
    if let Some((after, to)) = &approval.escalate
        && now >= since.saturating_add(after.as_millis() as u64)
    {
        who.extend(to.iter().cloned());
    }
    who
}

impl ActiveRun {
    /// Begins the wait of step `index`, whose needs are met and whose
    /// condition held (or a retried wait, again).
    pub(super) fn begin_wait(&mut self, index: usize, now: Millis, fx: &mut Effects) {
        let key = UnitKey::step(index);
        let workflow = Arc::clone(&self.workflow);
        let step = &workflow.steps[index];
        let (until, signal) = match &step.kind {
            StepKind::Task(_) => return,
            StepKind::Workflow(_) => return self.begin_child(index, now, fx),
            StepKind::Sleep(length) => (Some(now.saturating_add(length.as_millis() as u64)), None),
            StepKind::SleepUntil(template) => match self.time_of(template) {
                Ok(at) if at <= now => return self.end_sleep(key, now, fx),
                Ok(at) => (Some(at), None),
                Err(failure) => return self.fail_step(key, failure, now, fx),
            },
            StepKind::Signal { name, timeout } => {
                if let Some(kept) = self.record.signals.iter().position(|s| s.name == *name) {
                    let kept = self.record.signals.remove(kept);
                    fx.changes.push(Change::PutRun(Box::new(self.record.clone())));
                    return self.take_signal(key, kept.payload, now, fx);
                }
                let until = timeout.map(|t| now.saturating_add(t.as_millis() as u64));
                (until, Some(name.clone()))
            }
            StepKind::Approval(approval) => {
                let first = approval.escalate.as_ref().map(|(after, _)| *after).or(approval.timeout);
                (first.map(|t| now.saturating_add(t.as_millis() as u64)), None)
            }
        };
        let unit = self.unit_mut(key);
        unit.status = UnitStatus::Waiting;
        unit.due = until;
        if step.approval().is_some() {
            unit.since = Some(now);
        }
        fx.timers.extend(until.map(|due| (due, key)));
        let step = step.id.clone();
        self.event(fx, now, EventKind::Waiting { step, until, signal });
    }

    /// The timer of a waiting unit fired: a sleep is over, or a signal did
    /// not come in time.
    pub(super) fn wait_ended(&mut self, key: UnitKey, now: Millis, unit_random: f64, fx: &mut Effects) {
        let workflow = Arc::clone(&self.workflow);
        let step = &workflow.steps[key.step as usize];
        if let StepKind::Approval(approval) = &step.kind {
            return self.approval_timer(key, approval, now, fx);
        }
        let StepKind::Signal { name, timeout } = &step.kind else {
            return self.end_sleep(key, now, fx);
        };
        let attempt = self.unit(key).attempts + 1;
        let waited = humantime::format_duration(timeout.unwrap_or_default());
        let failure = Failure::new("timeout", format!("no signal `{name}` came within {waited}"));
        let unit = self.unit_mut(key);
        unit.attempts = attempt;
        unit.due = None;
        self.wait_failed(key, failure, &Outcome::Timeout, now, unit_random, fx);
    }

    /// A wait of `key` failed as `outcome` (its `attempts` counting it):
    /// it waits again after the step's retry delay when its policy says
    /// so, and fails otherwise.
    pub(super) fn wait_failed(
        &mut self,
        key: UnitKey,
        failure: Failure,
        outcome: &Outcome,
        now: Millis,
        unit_random: f64,
        fx: &mut Effects,
    ) {
        let workflow = Arc::clone(&self.workflow);
        let step = &workflow.steps[key.step as usize];
        let attempt = self.unit(key).attempts;
        if !step.retry.retries(outcome, attempt) || self.failure.is_some() {
            return self.fail_unit(key, failure, now, fx);
        }
        let due = now.saturating_add(step.retry.delay(attempt, unit_random).as_millis() as u64);
        let unit = self.unit_mut(key);
        unit.status = UnitStatus::Retrying;
        unit.due = Some(due);
        unit.error = Some(failure);
        fx.timers.push((due, key));
        let step = step.id.clone();
        self.event(fx, now, EventKind::RetryScheduled { step, item: None, due });
    }

    /// A signal named `name` arrived, with an id if its sender gave one.
    /// The step waiting for it (the first in the workflow's order, when
    /// several do) takes it; if none waits yet but one will, it is kept.
    pub fn signal(
        &mut self,
        name: &str,
        id: Option<String>,
        payload: Value,
        now: Millis,
    ) -> Result<(Effects, Delivery), Refusal> {
        if id.as_ref().is_some_and(|id| self.record.signal_ids.contains(id)) {
            return Ok((Effects::default(), Delivery::Duplicate));
        }
        if self.record.status.is_final() {
            return Err(Refusal::Finished);
        }
        let workflow = Arc::clone(&self.workflow);
        let readers: Vec<usize> = workflow
            .order
            .iter()
            .copied()
            .filter(|i| workflow.steps[*i].signal() == Some(name))
            .collect();
        if readers.is_empty() {
            return Err(Refusal::Unknown);
        }
        let open: Vec<usize> = readers
            .iter()
            .copied()
            .filter(|i| !self.steps[*i].status.is_final())
            .collect();
        if open.is_empty() {
            let done = readers.iter().map(|i| workflow.steps[*i].id.clone()).collect();
            return Err(Refusal::Done(done));
        }
        if self.record.signals_received >= MAX_SIGNALS {
            return Err(Refusal::TooMany);
        }
        let mut fx = Effects::default();
        self.record.signals_received += 1;
        self.record.signal_ids.extend(id.clone());
        let taker = open.into_iter().find(|i| self.steps[*i].status == UnitStatus::Waiting);
        let step = taker.map(|i| workflow.steps[i].id.clone());
        let signal = name.to_string();
        self.event(&mut fx, now, EventKind::SignalReceived { signal, id, step });
        let delivery = match taker {
            Some(index) => {
                fx.changes.push(Change::PutRun(Box::new(self.record.clone())));
                self.take_signal(UnitKey::step(index), payload, now, &mut fx);
                Delivery::Taken(workflow.steps[index].id.clone())
            }
            None => {
                let name = name.to_string();
                self.record.signals.push(KeptSignal { name, payload });
                fx.changes.push(Change::PutRun(Box::new(self.record.clone())));
                Delivery::Kept
            }
        };
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        Ok((fx, delivery))
    }

    /// An approval's timer fired: its escalation is due, or its timeout.
    fn approval_timer(&mut self, key: UnitKey, approval: &Approval, now: Millis, fx: &mut Effects) {
        let unit = self.unit(key);
        let since = unit.since.unwrap_or(now);
        let at = |length: std::time::Duration| since.saturating_add(length.as_millis() as u64);
        if let Some((after, to)) = &approval.escalate
            && unit.due == Some(at(*after))
        {
            let until = approval.timeout.map(at);
            self.unit_mut(key).due = until;
            fx.timers.extend(until.map(|due| (due, key)));
            let step = self.workflow.steps[key.step as usize].id.clone();
            let to = to.clone();
            return self.event(fx, now, EventKind::ApprovalEscalated { step, to });
        }
        let waited = humantime::format_duration(approval.timeout.unwrap_or_default());
        let unit = self.unit_mut(key);
        unit.due = None;
        unit.attempts += 1;
        let failure = Failure::new("rejected", format!("nobody decided within {waited}"));
        self.fail_unit(key, failure, now, fx);
    }

    /// `by` approves (`approve`) or rejects approval step `step`, with an
    /// optional comment: an approval is the step's output, a rejection its
    /// failure (code `rejected`).
    pub fn decide(
        &mut self,
        step: &str,
        approve: bool,
        by: &str,
        comment: Option<String>,
        now: Millis,
    ) -> Result<Effects, Undecidable> {
        if self.record.status.is_final() {
            return Err(Undecidable::Finished);
        }
        let workflow = Arc::clone(&self.workflow);
        let Some((index, approval)) = workflow
            .step(step)
            .and_then(|(index, s)| s.approval().map(|a| (index, a)))
        else {
            return Err(Undecidable::NotAnApproval);
        };
        let key = UnitKey::step(index);
        let unit = self.unit(key);
        if unit.status != UnitStatus::Waiting {
            return Err(Undecidable::NotWaiting(unit.status));
        }
        let deciders = deciders(approval, unit.since.unwrap_or(now), now);
        if !deciders.iter().any(|d| d.trim().eq_ignore_ascii_case(by.trim())) {
            return Err(Undecidable::NotADecider(deciders));
        }
        let mut fx = Effects::default();
        let decided = EventKind::ApprovalDecided {
            step: step.to_string(),
            approved: approve,
            by: by.to_string(),
            comment: comment.clone(),
        };
        self.event(&mut fx, now, decided);
        let unit = self.unit_mut(key);
        unit.due = None;
        unit.attempts += 1;
        if approve {
            unit.output = Some(json!({"approved": true, "by": by, "comment": comment, "at": now}));
            unit.error = None;
            self.finish_unit(key, UnitStatus::Succeeded, now, &mut fx);
        } else {
            let message = match &comment {
                Some(comment) => format!("rejected by {by}: {comment}"),
                None => format!("rejected by {by}"),
            };
            self.fail_unit(key, Failure::new("rejected", message), now, &mut fx);
        }
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        Ok(fx)
    }

    /// A waiting step takes a signal: its payload is the step's output.
    fn take_signal(&mut self, key: UnitKey, payload: Value, now: Millis, fx: &mut Effects) {
        let unit = self.unit_mut(key);
        unit.output = Some(payload);
        unit.error = None;
        unit.due = None;
        self.finish_unit(key, UnitStatus::Succeeded, now, fx);
    }

    /// A sleep is over: the step succeeds with `null`.
    fn end_sleep(&mut self, key: UnitKey, now: Millis, fx: &mut Effects) {
        let unit = self.unit_mut(key);
        unit.output = Some(Value::Null);
        unit.due = None;
        self.finish_unit(key, UnitStatus::Succeeded, now, fx);
    }

    /// The time a `sleep_until` names, in milliseconds since the epoch.
    fn time_of(&self, template: &Template) -> Result<Millis, Failure> {
        let steps = self.scope_steps(template.exprs().iter().flat_map(|e| e.steps().to_vec()));
        let value = template
            .render(&self.run_scope(&steps))
            .map_err(|e| Failure::new("expression_error", e.to_string()))?;
        crate::spec::parse_time(&value).map_err(|message| Failure::new("expression_error", message))
    }
}
