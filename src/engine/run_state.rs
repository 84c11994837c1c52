//! One run's state and its transitions, without I/O: what happens when a
//! run starts, an attempt finishes, a retry timer fires or a cancel comes
//! in. Each transition updates the state in memory and returns [`Effects`]:
//! the changes to commit, and what to do once they are durable (units to
//! queue, timers to arm, events to publish).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::model::{
    AttemptRecord, Event, EventKind, Failure, HttpTally, Millis, RunId, RunRecord, RunStatus, UnitKey, UnitRecord,
    UnitStatus,
};
use crate::sandbox::{AttemptReport, Outcome};
use crate::spec::{IfNeedsSkipped, OnFailure, Scope, Workflow};
use crate::store::Change;

mod children;
mod restart;
mod waits;

pub(crate) use children::ChildStart;

pub(crate) use waits::Refusal;
pub(crate) use waits::Undecidable;
pub use waits::{Delivery, deciders};

/// The most items one `for_each` may expand to.
pub(crate) const MAX_ITEMS: usize = 10_000;

/// What a transition asks of the engine.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// To commit, in order, in one transaction.
    pub changes: Vec<Change>,
    /// Units to queue once committed.
    pub ready: Vec<UnitKey>,
    /// Timers (retries, and waits that end or time out) to arm once
    /// committed.
    pub timers: Vec<(Millis, UnitKey)>,
    /// Events to publish once committed, with their sequence numbers.
    pub events: Vec<(u32, Event)>,
    /// Whether the run ended.
    pub finished: bool,
    /// Child runs to start once committed (`workflow` steps).
    pub children: Vec<ChildStart>,
    /// Child runs to cancel once committed.
    pub cancel_children: Vec<RunId>,
    /// Child runs to look at, which may have ended while nobody held
    /// their parent: (the parent's unit, the child).
    pub check_children: Vec<(UnitKey, RunId)>,
}

/// A run as the store has it: what a restart, a retry or a parked run's
/// turn rebuilds its state from.
pub(crate) struct StoredRun {
    pub record: RunRecord,
    pub workflow: Arc<Workflow>,
    pub units: Vec<(UnitKey, UnitRecord)>,
    /// The sequence number its next event gets.
    pub next_event: u32,
}

/// A run being executed.
pub(crate) struct ActiveRun {
    pub record: RunRecord,
    pub workflow: Arc<Workflow>,
    /// One per step: the step itself (a fan-out's parent).
    pub steps: Vec<UnitRecord>,
    /// Per step: its items' states and values, once expanded.
    pub items: Vec<Vec<(UnitRecord, Value)>>,
    /// Attempts of this run in flight.
    pub running: usize,
    /// Per step: its items' attempts in flight.
    pub running_items: Vec<usize>,
    /// The failure that ends the run, once a step failed for good.
    pub failure: Option<Failure>,
    /// Its commits sent to the writer and not yet answered.
    pub commits: u32,
    next_event: u32,
    dirty: BTreeSet<UnitKey>,
    /// Stored items of fan-outs not expanded (again, after a reset): an
    /// expansion carries their attempt numbers on.
    earlier_items: BTreeMap<UnitKey, UnitRecord>,
}

impl ActiveRun {
    /// A new run: every step pending, then whatever can start is readied.
    pub fn start(record: RunRecord, workflow: Arc<Workflow>, now: Millis) -> (ActiveRun, Effects) {
        let mut run = ActiveRun::empty(record, workflow, 0);
        run.dirty = (0..run.steps.len()).map(UnitKey::step).collect();
        let mut fx = Effects::default();
        fx.changes.push(Change::PutRun(Box::new(run.record.clone())));
        run.event(&mut fx, now, EventKind::RunStarted);
        run.advance(now, &mut fx);
        run.flush(&mut fx);
        (run, fx)
    }

    /// A run read back after a restart. Attempts that were in flight are
    /// queued again (at-least-once); finished units keep their results.
    pub fn restore(stored: StoredRun, now: Millis) -> (ActiveRun, Effects) {
        let (mut run, mut fx) = ActiveRun::rebuild(stored, now);
        run.advance(now, &mut fx);
        run.flush(&mut fx);
        (run, fx)
    }

    /// The state of a stored run, with what was in flight queued again;
    /// nothing is decided yet.
    pub fn rebuild(stored: StoredRun, now: Millis) -> (ActiveRun, Effects) {
        let StoredRun {
            record,
            workflow,
            units,
            next_event,
        } = stored;
        let n = workflow.steps.len();
        let mut run = ActiveRun::empty(record, workflow, next_event);
        let mut stored_items: Vec<Vec<(usize, UnitRecord)>> = vec![Vec::new(); n];
        for (key, unit) in units {
            let step = key.step as usize;
            if step >= n {
                continue;
            }
            match key.item {
                None => run.steps[step] = unit,
                Some(item) => stored_items[step].push((item as usize, unit)),
            }
        }
        let mut fx = Effects::default();
        // Fan-out items are recomputed from the same data (CEL is
        // deterministic), then given their stored states.
        for (step, stored) in stored_items.into_iter().enumerate() {
            if run.steps[step].items.is_some() {
                let values = run.item_values(step).unwrap_or_default();
                let mut items: Vec<(UnitRecord, Value)> =
                    values.into_iter().map(|v| (UnitRecord::pending(), v)).collect();
                for (index, unit) in stored {
                    if let Some(slot) = items.get_mut(index) {
                        slot.0 = unit;
                    }
                }
                run.items[step] = items;
            } else {
                let earlier = stored.into_iter().map(|(i, unit)| (UnitKey::item(step, i), unit));
                run.earlier_items.extend(earlier);
            }
            if run.steps[step].status == UnitStatus::Failed && run.workflow.steps[step].on_failure == OnFailure::Fail {
                let failure = run.steps[step]
                    .error
                    .clone()
                    .unwrap_or_else(|| Failure::new("failed", "failed"));
                run.failure.get_or_insert(Failure {
                    step: Some(run.workflow.steps[step].id.clone()),
                    ..failure
                });
            }
        }
        for key in run.all_keys() {
            let unit = run.unit(key).clone();
            match unit.status {
                UnitStatus::Running | UnitStatus::Ready if !run.is_parent(key) => {
                    run.unit_mut(key).status = UnitStatus::Ready;
                    fx.ready.push(key);
                }
                UnitStatus::Retrying => fx.timers.push((unit.due.unwrap_or(now), key)),
                UnitStatus::Waiting => fx.timers.extend(unit.due.map(|due| (due, key))),
                _ => {}
            }
        }
        run.children_to_recover(&mut fx);
        (run, fx)
    }

    /// Every step pending, nothing running.
    fn empty(record: RunRecord, workflow: Arc<Workflow>, next_event: u32) -> ActiveRun {
        let n = workflow.steps.len();
        ActiveRun {
            record,
            workflow,
            steps: vec![UnitRecord::pending(); n],
            items: vec![Vec::new(); n],
            running: 0,
            running_items: vec![0; n],
            failure: None,
            commits: 0,
            next_event,
            dirty: BTreeSet::new(),
            earlier_items: BTreeMap::new(),
        }
    }

    fn all_keys(&self) -> Vec<UnitKey> {
        let mut keys = Vec::new();
        for step in 0..self.steps.len() {
            keys.push(UnitKey::step(step));
            keys.extend((0..self.items[step].len()).map(|i| UnitKey::item(step, i)));
        }
        keys
    }

    /// Whether `key` is a fan-out parent (never run itself).
    pub fn is_parent(&self, key: UnitKey) -> bool {
        key.item.is_none() && self.steps[key.step as usize].items.is_some()
    }

    pub fn unit(&self, key: UnitKey) -> &UnitRecord {
        match key.item {
            None => &self.steps[key.step as usize],
            Some(i) => &self.items[key.step as usize][i as usize].0,
        }
    }

    fn unit_mut(&mut self, key: UnitKey) -> &mut UnitRecord {
        self.dirty.insert(key);
        match key.item {
            None => &mut self.steps[key.step as usize],
            Some(i) => &mut self.items[key.step as usize][i as usize].0,
        }
    }

    fn set_status(&mut self, key: UnitKey, status: UnitStatus) {
        self.unit_mut(key).status = status;
    }

    fn event(&mut self, fx: &mut Effects, at: Millis, kind: EventKind) {
        let event = Event { at, kind };
        fx.changes.push(Change::AppendEvent {
            tenant: self.record.tenant.clone(),
            run: self.record.id,
            seq: self.next_event,
            event: event.clone(),
        });
        // Notifications go in the event's own commit (`crate::notify`).
        fx.changes.extend(crate::notify::changes(
            &self.workflow,
            &self.record,
            self.next_event,
            &event,
        ));
        fx.events.push((self.next_event, event));
        self.next_event += 1;
    }

    /// Writes every unit changed since the last flush.
    fn flush(&mut self, fx: &mut Effects) {
        for key in std::mem::take(&mut self.dirty) {
            let record = self.unit(key).clone();
            fx.changes.push(Change::PutUnit {
                tenant: self.record.tenant.clone(),
                run: self.record.id,
                key,
                record,
            });
        }
    }

    /// The values expressions of `step` see for the steps it reads.
    fn scope_steps(&self, ids: impl Iterator<Item = String>) -> Map<String, Value> {
        let mut steps = Map::new();
        for id in ids {
            if let Some((index, _)) = self.workflow.step(&id) {
                let unit = &self.steps[index];
                let view = json!({
                    "status": unit.status.to_string(),
                    "output": unit.output.clone().unwrap_or(Value::Null),
                    "error": unit.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
                });
                steps.insert(id, view);
            }
        }
        steps
    }

    /// What an expression outside any `for_each` item sees.
    fn run_scope<'a>(&'a self, steps: &'a Map<String, Value>) -> Scope<'a> {
        Scope {
            input: &self.record.input,
            steps,
            item: None,
            index: None,
        }
    }

    /// The input of the attempt of `key`, as JSON text.
    pub fn input_for(&self, key: UnitKey) -> Result<String, Failure> {
        let step = &self.workflow.steps[key.step as usize];
        let Some(template) = &step.input else {
            return Ok(self.record.input.to_string());
        };
        let steps = self.scope_steps(template.exprs().iter().flat_map(|e| e.steps().to_vec()));
        let item = key.item.map(|i| &self.items[key.step as usize][i as usize].1);
        let scope = Scope {
            input: &self.record.input,
            steps: &steps,
            item,
            index: key.item.map(u64::from),
        };
        template
            .render(&scope)
            .map(|v| v.to_string())
            .map_err(|e| Failure::new("expression_error", e.to_string()))
    }

    fn item_values(&self, step: usize) -> Result<Vec<Value>, Failure> {
        let Some(list) = &self.workflow.steps[step].for_each else {
            return Ok(Vec::new());
        };
        let steps = self.scope_steps(list.steps().iter().cloned());
        let scope = self.run_scope(&steps);
        match list.eval(&scope) {
            Ok(Value::Array(items)) if items.len() > MAX_ITEMS => Err(Failure::new(
                "too_many_items",
                format!("for_each gave {} items; at most {MAX_ITEMS} are allowed", items.len()),
            )),
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Err(Failure::new(
                "expression_error",
                format!(
                    "`{}`: for_each must give a list, not {}",
                    list.source(),
                    crate::spec::expr::describe(&other)
                ),
            )),
            Err(e) => Err(Failure::new("expression_error", e.to_string())),
        }
    }

    /// Decides every pending step whose needs are final, in dependency
    /// order, then ends the run if nothing is left to do.
    fn advance(&mut self, now: Millis, fx: &mut Effects) {
        if self.record.status.is_final() {
            return;
        }
        let workflow = Arc::clone(&self.workflow);
        for &index in &workflow.order {
            let step = &workflow.steps[index];
            if self.steps[index].status != UnitStatus::Pending || step.is_compensation() {
                continue;
            }
            let needs: Vec<UnitStatus> = step.needs.iter().map(|n| self.steps[*n].status).collect();
            if !needs.iter().all(|s| s.is_final()) {
                continue;
            }
            let key = UnitKey::step(index);
            if self.failure.is_some() || needs.contains(&UnitStatus::Cancelled) {
                self.finish_step(key, UnitStatus::Cancelled, now, fx);
                continue;
            }
            if needs.contains(&UnitStatus::Skipped) && step.if_needs_skipped == IfNeedsSkipped::Skip {
                self.finish_step(key, UnitStatus::Skipped, now, fx);
                continue;
            }
            self.begin_step(index, now, fx);
        }
        self.check_finished(now, fx);
    }

    /// A step whose needs are met: check `when`, expand `for_each`, queue.
    fn begin_step(&mut self, index: usize, now: Millis, fx: &mut Effects) {
        let step = &self.workflow.steps[index];
        let key = UnitKey::step(index);
        if let Some(when) = &step.when {
            let steps = self.scope_steps(when.steps().iter().cloned());
            let scope = self.run_scope(&steps);
            match when.eval_bool(&scope) {
                Ok(true) => {}
                Ok(false) => return self.finish_step(key, UnitStatus::Skipped, now, fx),
                Err(e) => return self.fail_step(key, Failure::new("expression_error", e.to_string()), now, fx),
            }
        }
        if step.task().is_none() {
            return self.begin_wait(index, now, fx);
        }
        if step.for_each.is_none() {
            self.set_status(key, UnitStatus::Ready);
            fx.ready.push(key);
            return;
        }
        match self.item_values(index) {
            Err(failure) => self.fail_step(key, failure, now, fx),
            Ok(values) if values.is_empty() => {
                self.unit_mut(key).items = Some(0);
                self.unit_mut(key).output = Some(json!([]));
                self.finish_step(key, UnitStatus::Succeeded, now, fx);
            }
            Ok(values) => {
                let count = values.len();
                let parent = self.unit_mut(key);
                parent.items = Some(count as u32);
                parent.status = UnitStatus::Running;
                self.items[index] = values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (self.fresh_item(UnitKey::item(index, i)), v))
                    .collect();
                self.drop_earlier_items(index, fx);
                for item in 0..count {
                    let item_key = UnitKey::item(index, item);
                    self.set_status(item_key, UnitStatus::Ready);
                    fx.ready.push(item_key);
                }
            }
        }
    }

    /// A new item's record: pending, its attempt numbers going on from an
    /// earlier expansion's.
    fn fresh_item(&mut self, key: UnitKey) -> UnitRecord {
        let attempts = self.earlier_items.remove(&key).map_or(0, |unit| unit.attempts);
        UnitRecord {
            attempts,
            ..UnitRecord::pending()
        }
    }

    /// Items of an earlier expansion of `step` beyond this one's: shown
    /// skipped, with their attempts.
    fn drop_earlier_items(&mut self, step: usize, fx: &mut Effects) {
        let keys: Vec<UnitKey> = self
            .earlier_items
            .range(UnitKey::item(step, 0)..=UnitKey::item(step, u32::MAX as usize))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            if let Some(unit) = self.earlier_items.remove(&key) {
                fx.changes.push(Change::PutUnit {
                    tenant: self.record.tenant.clone(),
                    run: self.record.id,
                    key,
                    record: UnitRecord {
                        status: UnitStatus::Skipped,
                        ..unit
                    },
                });
            }
        }
    }

    /// Marks a unit as dispatched.
    pub fn attempt_started(&mut self, key: UnitKey) {
        self.unit_mut(key).status = UnitStatus::Running;
        self.dirty.remove(&key); // in memory only: a restart queues it again anyway
        self.running += 1;
        if key.item.is_some() {
            self.running_items[key.step as usize] += 1;
        }
    }

    /// An attempt of `key` ended with `report` (started at `started_at`,
    /// on `node` when the engine is one node of a cluster). `unit_random`
    /// in [0, 1) draws the retry jitter.
    pub fn attempt_finished(
        &mut self,
        key: UnitKey,
        report: AttemptReport,
        (started_at, node): (Millis, Option<&str>),
        now: Millis,
        unit_random: f64,
    ) -> Effects {
        let mut fx = Effects::default();
        self.running = self.running.saturating_sub(1);
        if key.item.is_some() {
            self.running_items[key.step as usize] = self.running_items[key.step as usize].saturating_sub(1);
        }
        let attempt = self.unit(key).attempts + 1;
        let step_id = self.workflow.steps[key.step as usize].id.clone();
        let duration_us = report.duration.as_micros() as u64;
        let http = HttpTally::of(&report.http);
        fx.changes.push(Change::PutAttempt {
            tenant: self.record.tenant.clone(),
            run: self.record.id,
            key,
            record: Box::new(AttemptRecord {
                attempt,
                outcome: report.outcome.clone(),
                fuel_used: report.fuel_used,
                started_at,
                duration_us,
                logs: report.logs,
                http: report.http,
                node: node.map(str::to_owned),
            }),
        });
        self.event(
            &mut fx,
            now,
            EventKind::AttemptFinished {
                step: step_id.clone(),
                item: key.item,
                attempt,
                outcome: report.outcome.kind().into(),
                duration_us,
                fuel_used: report.fuel_used,
                http,
            },
        );
        // A unit cancelled while its attempt ran keeps its status; the
        // attempt is recorded for the history only.
        if self.unit(key).status != UnitStatus::Running || self.record.status.is_final() {
            self.flush(&mut fx);
            return fx;
        }
        self.unit_mut(key).attempts = attempt;
        let parent_done = key.item.is_some() && self.steps[key.step as usize].status.is_final();
        match report.outcome {
            Outcome::Ok { output } => {
                let tenant = self.record.tenant.clone();
                fx.changes.extend(report.kv_writes.into_iter().map(|w| Change::Kv {
                    tenant: tenant.clone(),
                    key: w.key,
                    value: w.value,
                }));
                let value = serde_json::from_str(&output).unwrap_or(Value::String(output));
                let unit = self.unit_mut(key);
                unit.output = Some(value);
                unit.error = None;
                self.finish_unit(key, UnitStatus::Succeeded, now, &mut fx);
            }
            outcome => {
                let policy = &self.workflow.steps[key.step as usize].retry;
                let failure = Failure::from_outcome(&outcome);
                if policy.retries(&outcome, attempt) && self.failure.is_none() && !parent_done {
                    let due = now + policy.delay(attempt, unit_random).as_millis() as u64;
                    let unit = self.unit_mut(key);
                    unit.status = UnitStatus::Retrying;
                    unit.due = Some(due);
                    unit.error = Some(failure);
                    fx.timers.push((due, key));
                    self.event(
                        &mut fx,
                        now,
                        EventKind::RetryScheduled {
                            step: step_id,
                            item: key.item,
                            due,
                        },
                    );
                } else {
                    self.fail_unit(key, failure, now, &mut fx);
                }
            }
        }
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        fx
    }

    /// The attempt could not even start (its input did not render).
    pub fn attempt_impossible(&mut self, key: UnitKey, failure: Failure, now: Millis) -> Effects {
        let mut fx = Effects::default();
        self.fail_unit(key, failure, now, &mut fx);
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        fx
    }

    /// A timer armed for `due` fired: a retry is due, or a wait ended or
    /// timed out. `unit_random` in [0, 1) draws a retried wait's jitter.
    pub fn timer_fired(&mut self, key: UnitKey, due: Millis, now: Millis, unit_random: f64) -> Effects {
        let mut fx = Effects::default();
        if self.record.status.is_final() {
            return fx;
        }
        let is_task = self.workflow.steps[key.step as usize].task().is_some();
        match self.unit(key).status {
            UnitStatus::Retrying if is_task => {
                let unit = self.unit_mut(key);
                unit.status = UnitStatus::Ready;
                unit.due = None;
                fx.ready.push(key);
            }
            UnitStatus::Retrying => self.begin_wait(key.step as usize, now, &mut fx),
            // A timer of an earlier wait of the unit is stale.
            UnitStatus::Waiting if self.unit(key).due == Some(due) => self.wait_ended(key, now, unit_random, &mut fx),
            _ => {}
        }
        self.advance(now, &mut fx);
        self.flush(&mut fx);
        fx
    }

    /// Pauses (`true`) or resumes the run: while paused no new attempt
    /// starts (the scheduler holds its units), and running ones finish.
    /// `None` when the run has ended; no changes when it already stands so.
    pub fn set_paused(&mut self, paused: bool, now: Millis) -> Option<Effects> {
        if self.record.status.is_final() {
            return None;
        }
        let mut fx = Effects::default();
        if self.record.paused != paused {
            self.record.paused = paused;
            self.record.updated_at = now;
            fx.changes.push(Change::PutRun(Box::new(self.record.clone())));
            let kind = if paused {
                EventKind::RunPaused
            } else {
                EventKind::RunResumed
            };
            self.event(&mut fx, now, kind);
        }
        Some(fx)
    }

    /// Cancels the run: nothing new starts, and it ends `cancelled`.
    pub fn cancel(&mut self, now: Millis) -> Effects {
        let mut fx = Effects::default();
        if self.record.status.is_final() {
            return fx;
        }
        fx.cancel_children = self.waiting_children();
        for key in self.all_keys() {
            if !self.unit(key).status.is_final() {
                self.set_status(key, UnitStatus::Cancelled);
            }
        }
        self.running = 0;
        self.running_items.iter_mut().for_each(|r| *r = 0);
        self.end(RunStatus::Cancelled, now, &mut fx);
        self.flush(&mut fx);
        fx
    }

    fn finish_unit(&mut self, key: UnitKey, status: UnitStatus, now: Millis, fx: &mut Effects) {
        if key.item.is_none() {
            return self.finish_step(key, status, now, fx);
        }
        self.set_status(key, status);
        let step = key.step as usize;
        let items = &self.items[step];
        if self.steps[step].status.is_final() || !items.iter().all(|(u, _)| u.status.is_final()) {
            return;
        }
        if items.iter().all(|(u, _)| u.status == UnitStatus::Succeeded) {
            let outputs: Vec<Value> = items
                .iter()
                .map(|(u, _)| u.output.clone().unwrap_or(Value::Null))
                .collect();
            self.unit_mut(UnitKey::step(step)).output = Some(Value::Array(outputs));
            self.finish_step(UnitKey::step(step), UnitStatus::Succeeded, now, fx);
        } else {
            self.finish_step(UnitKey::step(step), UnitStatus::Cancelled, now, fx);
        }
    }

    fn fail_unit(&mut self, key: UnitKey, failure: Failure, now: Millis, fx: &mut Effects) {
        if key.item.is_none() {
            return self.fail_step(key, failure, now, fx);
        }
        let step = key.step as usize;
        let unit = self.unit_mut(key);
        unit.status = UnitStatus::Failed;
        unit.error = Some(failure.clone());
        // One item failing fails the fan-out; items not yet run never will.
        for i in 0..self.items[step].len() {
            let item = UnitKey::item(step, i);
            if matches!(
                self.unit(item).status,
                UnitStatus::Pending | UnitStatus::Ready | UnitStatus::Retrying
            ) {
                self.set_status(item, UnitStatus::Cancelled);
            }
        }
        let message = format!("item {}: {}", key.item.unwrap_or_default(), failure.message);
        self.fail_step(UnitKey::step(step), Failure { message, ..failure }, now, fx);
    }

    fn fail_step(&mut self, key: UnitKey, failure: Failure, now: Millis, fx: &mut Effects) {
        let index = key.step as usize;
        self.unit_mut(key).error = Some(failure.clone());
        self.finish_step(key, UnitStatus::Failed, now, fx);
        let step = &self.workflow.steps[index];
        if step.on_failure == OnFailure::Fail && self.failure.is_none() && !step.is_compensation() {
            self.failure = Some(Failure {
                step: Some(step.id.clone()),
                ..failure
            });
            // Nothing new starts, and nothing waiting for a retry retries;
            // attempts already running finish and are recorded.
            for other in 0..self.steps.len() {
                if self.workflow.steps[other].is_compensation() {
                    continue;
                }
                for i in 0..self.items[other].len() {
                    let item = UnitKey::item(other, i);
                    if matches!(
                        self.unit(item).status,
                        UnitStatus::Ready | UnitStatus::Retrying | UnitStatus::Pending
                    ) {
                        self.finish_unit(item, UnitStatus::Cancelled, now, fx);
                    }
                }
                if matches!(
                    self.steps[other].status,
                    UnitStatus::Ready | UnitStatus::Retrying | UnitStatus::Waiting
                ) {
                    self.finish_step(UnitKey::step(other), UnitStatus::Cancelled, now, fx);
                }
            }
        }
        // Compensations of this step run now.
        let workflow = Arc::clone(&self.workflow);
        for (c, compensation) in workflow.steps.iter().enumerate() {
            if compensation.compensates.contains(&index) && self.steps[c].status == UnitStatus::Pending {
                self.begin_step(c, now, fx);
            }
        }
    }

    fn finish_step(&mut self, key: UnitKey, status: UnitStatus, now: Millis, fx: &mut Effects) {
        let unit = self.unit(key);
        if status == UnitStatus::Cancelled && unit.status == UnitStatus::Waiting {
            fx.cancel_children.extend(unit.child);
        }
        self.set_status(key, status);
        let step = self.workflow.steps[key.step as usize].id.clone();
        self.event(fx, now, EventKind::StepFinished { step, status });
    }

    /// Ends the run when nothing can happen any more.
    fn check_finished(&mut self, now: Millis, fx: &mut Effects) {
        let busy = self
            .steps
            .iter()
            .zip(&self.workflow.steps)
            .any(|(unit, step)| match unit.status {
                UnitStatus::Ready | UnitStatus::Running | UnitStatus::Retrying | UnitStatus::Waiting => true,
                UnitStatus::Pending => !step.is_compensation(),
                _ => false,
            });
        if busy || self.running > 0 {
            return;
        }
        for index in 0..self.steps.len() {
            if self.steps[index].status == UnitStatus::Pending {
                self.finish_step(UnitKey::step(index), UnitStatus::Skipped, now, fx);
            }
        }
        if let Some(failure) = self.failure.clone() {
            self.record.error = Some(failure);
            return self.end(RunStatus::Failed, now, fx);
        }
        match self.render_output() {
            Ok(output) => {
                self.record.output = Some(output);
                self.end(RunStatus::Succeeded, now, fx);
            }
            Err(failure) => {
                self.record.error = Some(failure);
                self.end(RunStatus::Failed, now, fx);
            }
        }
    }

    fn render_output(&self) -> Result<Value, Failure> {
        let Some(template) = &self.workflow.output else {
            let mut outputs = Map::new();
            for (step, unit) in self.workflow.steps.iter().zip(&self.steps) {
                if let (UnitStatus::Succeeded, Some(output)) = (unit.status, &unit.output) {
                    outputs.insert(step.id.clone(), output.clone());
                }
            }
            return Ok(Value::Object(outputs));
        };
        let steps = self.scope_steps(template.exprs().iter().flat_map(|e| e.steps().to_vec()));
        let scope = self.run_scope(&steps);
        template
            .render(&scope)
            .map_err(|e| Failure::new("output_error", e.to_string()))
    }

    fn end(&mut self, status: RunStatus, now: Millis, fx: &mut Effects) {
        self.record.status = status;
        self.record.updated_at = now;
        fx.changes.push(Change::PutRun(Box::new(self.record.clone())));
        self.event(fx, now, EventKind::RunFinished { status });
        fx.finished = true;
    }
}
