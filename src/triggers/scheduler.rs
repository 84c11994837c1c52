//! Every node's scheduler loop. Each pass reads the schedules, and for
//! each one due decides what fires, claims the decision with a
//! compare-and-set on the schedule's revision, then starts one run per
//! instant with the idempotency key `weft:schedule:NAME:INSTANT_MS`.
//!
//! Any number of nodes may run the loop on one store: the compare-and-set
//! lets one node's decision stand, and the key makes a second start of
//! the same instant (a node that claimed and died, then another that took
//! its claim over) return the run the first one started. So each instant
//! starts at most one run, and a claimed instant is started by some node
//! even if the claimer dies.

use std::sync::Arc;
use std::time::Duration;

use super::schedule::{Overlap, ScheduleState, StoredSchedule};
use crate::engine::{Engine, EngineError};
use crate::model::{Millis, RunId};
use crate::store::{Expect, ObjectKind, Store, StoreError, StoredObject};

/// How often a pass runs.
pub const TICK: Duration = Duration::from_millis(250);
/// How long a claimed fire is left to its claimer before another node
/// starts it.
const CLAIM_TIMEOUT: Millis = 10_000;
/// The most schedules one pass reads.
const MAX_SCHEDULES: usize = 10_000;

/// The idempotency key of a schedule's run for `instant`.
pub fn fire_key(name: &str, instant: Millis) -> String {
    format!("weft:schedule:{name}:{instant}")
}

/// Runs passes every [`TICK`] until the task is dropped.
pub async fn run(engine: Engine) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = pass(&engine).await {
            tracing::warn!(error = %e, "the scheduler could not read the schedules; it tries again");
        }
    }
}

/// One pass over every schedule.
pub async fn pass(engine: &Engine) -> Result<(), StoreError> {
    let store = engine.store().clone();
    let schedules = store.objects(ObjectKind::Schedule, None, "", MAX_SCHEDULES).await?;
    for object in schedules {
        if let Err(e) = mind(engine, &store, object).await {
            tracing::warn!(error = %e, "a schedule could not be fired; the next pass tries again");
        }
    }
    Ok(())
}

/// Fires what is due of one schedule.
async fn mind(engine: &Engine, store: &Arc<dyn Store>, object: StoredObject) -> Result<(), StoreError> {
    let stored: StoredSchedule = match serde_json::from_value(object.value.clone()) {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(tenant = %object.tenant, schedule = %object.name, error = %e, "a stored schedule does not decode");
            return Ok(());
        }
    };
    if stored.spec.paused {
        return Ok(());
    }
    let now = engine.now();
    let mut state = stored.state.clone();
    let fires = if state.firing.is_empty() {
        decide(store, &stored, &mut state, now).await?
    } else if state.claimed_at.is_some_and(|at| at + CLAIM_TIMEOUT <= now) {
        // The node that claimed these did not finish: start them here.
        state.firing.clone()
    } else {
        return Ok(());
    };
    if fires.is_empty() {
        if state != stored.state {
            save(store, &object, &stored, state, object.revision).await?;
        }
        return Ok(());
    }
    state.firing = fires.clone();
    state.claimed_at = Some(now);
    let Some(revision) = save(store, &object, &stored, state.clone(), object.revision).await? else {
        return Ok(()); // another node decided first
    };
    for instant in fires {
        match start(engine, store, &object, &stored, instant).await {
            Ok(run) => {
                state.last_run = Some(run.0);
                state.last_fire = Some(instant);
                state.fired += 1;
                state.last_error = None;
                tracing::info!(tenant = %object.tenant, schedule = %object.name, instant, run = run.0, "schedule fired");
            }
            Err(Unstarted::Later(e)) => return Err(StoreError::Unavailable(e.to_string())),
            Err(Unstarted::Never(e)) => {
                tracing::warn!(tenant = %object.tenant, schedule = %object.name, instant, error = %e, "a schedule's run did not start");
                state.last_error = Some(format!("the fire at {instant} started no run: {e}"));
            }
        }
    }
    state.firing.clear();
    state.claimed_at = None;
    save(store, &object, &stored, state, revision).await?;
    Ok(())
}

/// Moves `state` on to `now`; returns the instants to start.
async fn decide(
    store: &Arc<dyn Store>,
    stored: &StoredSchedule,
    state: &mut ScheduleState,
    now: Millis,
) -> Result<Vec<Millis>, StoreError> {
    let timing = match stored.spec.timing() {
        Ok(timing) => timing,
        Err(e) => {
            state.last_error = Some(e.to_string());
            return Ok(Vec::new());
        }
    };
    let due = match state.next_fire {
        None => {
            state.next_fire = timing.after(now);
            return Ok(Vec::new());
        }
        Some(next) if next <= now => Some(timing.due(next, now, stored.spec.catch_up)),
        Some(_) => None,
    };
    if due.is_none() && state.buffered.is_none() {
        return Ok(Vec::new());
    }
    let mut busy = match state.last_run {
        Some(id) => store.run(RunId(id)).await?.is_some_and(|run| !run.status.is_final()),
        None => false,
    };
    let mut fires = Vec::new();
    if let Some(buffered) = state.buffered.filter(|_| !busy) {
        fires.push(buffered);
        state.buffered = None;
        busy = true;
    }
    if let Some(due) = due {
        state.missed += due.missed;
        state.next_fire = due.next;
        for instant in due.fire {
            match stored.spec.overlap {
                _ if !busy => fires.push(instant),
                Overlap::Allow => fires.push(instant),
                Overlap::BufferOne => {
                    if state.buffered.replace(instant).is_some() {
                        state.skipped += 1;
                    }
                }
                Overlap::Skip => state.skipped += 1,
            }
            busy = true;
        }
    }
    Ok(fires)
}

/// Stores `state` if the schedule is still at `revision`; its new
/// revision, or `None` when it moved.
async fn save(
    store: &Arc<dyn Store>,
    object: &StoredObject,
    stored: &StoredSchedule,
    state: ScheduleState,
    revision: u64,
) -> Result<Option<u64>, StoreError> {
    let stored = StoredSchedule {
        spec: stored.spec.clone(),
        state,
    };
    stored
        .put(&**store, &object.tenant, &object.name, Expect::Revision(revision))
        .await
}

/// Starts the run of one instant, under its tenant's quotas.
async fn start(
    engine: &Engine,
    store: &Arc<dyn Store>,
    object: &StoredObject,
    stored: &StoredSchedule,
    instant: Millis,
) -> Result<RunId, Unstarted> {
    let tenant = match store.tenant(&object.tenant).await {
        Ok(Some(tenant)) if !tenant.disabled => tenant,
        Ok(Some(_)) => return Err(Unstarted::Never("the tenant is disabled".into())),
        Ok(None) => return Err(Unstarted::Never("the tenant does not exist".into())),
        Err(e) => return Err(Unstarted::Later(e.into())),
    };
    let request = super::start_request(
        &tenant,
        &stored.spec.workflow,
        stored.spec.input.clone(),
        Some(fire_key(&object.name, instant)),
    );
    match engine.start_run(request).await {
        Ok((run, _)) => Ok(run),
        Err(e) if e.is_retryable() => Err(Unstarted::Later(e)),
        Err(e) => Err(Unstarted::Never(e.to_string())),
    }
}

/// Why a fire started no run.
enum Unstarted {
    /// The store could not be reached: the claim stands, and a later
    /// pass (here or on another node) starts the run.
    Later(EngineError),
    /// The start was refused (no such workflow, an input that no longer
    /// fits it, a quota, a disabled tenant): the fire is spent.
    Never(String),
}
