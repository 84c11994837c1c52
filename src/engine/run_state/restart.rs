//! Starting an ended run again: *retry* runs what failed or was cancelled,
//! *reset* runs again from a step that succeeded — that step and
//! everything downstream of it — with the recorded outputs of everything
//! upstream (docs/architecture.md, "Reset"). Either way the history keeps
//! the earlier attempts: attempt numbers go on, and an event marks the
//! restart.

use super::{ActiveRun, Effects, StoredRun};
use crate::model::{EventKind, Millis, RunStatus, UnitKey, UnitRecord, UnitStatus};
use crate::store::Change;

impl ActiveRun {
    /// A failed or cancelled run, started again from where it stopped:
    /// units that failed or were cancelled run again (their attempt numbers
    /// go on), finished ones keep their results. Refused when a
    /// compensation already ran, since that undid work the retry would
    /// build on.
    pub fn retry(stored: StoredRun, now: Millis) -> Result<(ActiveRun, Effects), String> {
        let StoredRun {
            record,
            workflow,
            mut units,
            next_event,
        } = stored;
        for (key, unit) in &units {
            let Some(step) = workflow.steps.get(key.step as usize) else {
                continue;
            };
            let ran = !matches!(unit.status, UnitStatus::Pending | UnitStatus::Skipped);
            if key.item.is_none() && step.is_compensation() && ran {
                return Err(format!(
                    "compensation step `{}` already ran ({}); start a new run instead",
                    step.id, unit.status
                ));
            }
        }
        let mut reset = Vec::new();
        for (key, unit) in &mut units {
            let Some(step) = workflow.steps.get(key.step as usize) else {
                continue;
            };
            let again = match unit.status {
                UnitStatus::Failed | UnitStatus::Cancelled => true,
                UnitStatus::Skipped => step.is_compensation(),
                _ => false,
            };
            if !again {
                continue;
            }
            unit.status = match key.item {
                Some(_) => UnitStatus::Ready,
                None if unit.items.is_some() => UnitStatus::Running,
                None => UnitStatus::Pending,
            };
            unit.error = None;
            unit.due = None;
            reset.push(*key);
        }
        let stored = StoredRun {
            record,
            workflow,
            units,
            next_event,
        };
        Ok(ActiveRun::reopen(
            stored,
            Effects::default(),
            EventKind::RunRetried,
            reset,
            now,
        ))
    }

    /// An ended run, started again from step `from`, which succeeded: it
    /// and every step downstream of it run again, as do steps that failed
    /// or were cancelled (and theirs); the others keep their results, so
    /// the re-run reads the recorded outputs of everything upstream.
    /// Compensations that ran stand (their work is not undone) and may run
    /// again if a step they compensate fails again.
    pub fn reset(stored: StoredRun, from: &str, now: Millis) -> Result<(ActiveRun, Effects), String> {
        let StoredRun {
            mut record,
            workflow,
            mut units,
            next_event,
        } = stored;
        let (from_index, from_step) = workflow
            .step(from)
            .ok_or_else(|| format!("its workflow `{}` has no step `{from}`", record.workflow))?;
        if from_step.is_compensation() {
            return Err(format!(
                "`{from}` is a compensation step; reset from a step it compensates, or one before"
            ));
        }
        let status_of = |index: usize| {
            units
                .iter()
                .find(|(key, _)| *key == UnitKey::step(index))
                .map_or(UnitStatus::Pending, |(_, unit)| unit.status)
        };
        let status = status_of(from_index);
        if status != UnitStatus::Succeeded {
            return Err(format!(
                "step `{from}` is {status}; a run resets from a step that succeeded"
            ));
        }
        let n = workflow.steps.len();
        let mut again: Vec<bool> = (0..n)
            .map(|i| {
                i == from_index
                    || workflow.steps[i].is_compensation()
                    || matches!(status_of(i), UnitStatus::Failed | UnitStatus::Cancelled)
            })
            .collect();
        for &index in &workflow.order {
            if workflow.steps[index].needs.iter().any(|&need| again[need]) {
                again[index] = true;
            }
        }
        let mut fx = Effects::default();
        let mut steps_again = Vec::new();
        for (key, unit) in &mut units {
            if !again.get(key.step as usize).copied().unwrap_or(false) {
                continue;
            }
            // Attempt numbers go on, so the earlier attempts stay recorded.
            *unit = UnitRecord {
                attempts: unit.attempts,
                ..UnitRecord::pending()
            };
            match key.item {
                None => steps_again.push(*key),
                // Items are expanded again when their step begins; until
                // then the store shows them pending.
                Some(_) => fx.changes.push(Change::PutUnit {
                    tenant: record.tenant.clone(),
                    run: record.id,
                    key: *key,
                    record: unit.clone(),
                }),
            }
        }
        record.paused = false;
        let stored = StoredRun {
            record,
            workflow,
            units,
            next_event,
        };
        let event = EventKind::RunReset { from: from.to_string() };
        Ok(ActiveRun::reopen(stored, fx, event, steps_again, now))
    }

    /// Runs `stored`, an ended run whose units `again` were set back, once
    /// more: running, with `event` marking why, after the changes in `fx`.
    fn reopen(
        mut stored: StoredRun,
        mut fx: Effects,
        event: EventKind,
        again: Vec<UnitKey>,
        now: Millis,
    ) -> (ActiveRun, Effects) {
        let record = &mut stored.record;
        record.status = RunStatus::Running;
        record.error = None;
        record.output = None;
        record.updated_at = now;
        let (mut run, rebuilt) = ActiveRun::rebuild(stored, now);
        fx.ready.extend(rebuilt.ready);
        fx.timers.extend(rebuilt.timers);
        fx.children.extend(rebuilt.children);
        fx.check_children.extend(rebuilt.check_children);
        fx.changes.extend(rebuilt.changes);
        fx.changes.push(Change::PutRun(Box::new(run.record.clone())));
        run.event(&mut fx, now, event);
        run.dirty.extend(again);
        run.advance(now, &mut fx);
        run.flush(&mut fx);
        (run, fx)
    }
}
