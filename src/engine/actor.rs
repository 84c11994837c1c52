//! The scheduler loop: one task owns every active run, the ready queue,
//! the retry timers and the attempts in flight, so no state is shared and
//! nothing is locked.
//!
//! A transition's changes go to the group-commit writer; what depends on
//! them being durable (queueing the units they made ready, arming timers,
//! telling watchers, answering a caller) happens when the commit comes
//! back. A dependent therefore never starts before its need's result (and
//! kv writes) are on disk, while commits of many runs still share an fsync.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::run_state::{ActiveRun, Effects};
use super::runner::{AttemptRequest, Runner, RunnerError};
use super::{Clock, EngineConfig, EngineError, Update, Workflows};
use crate::db::{Db, DbError};
use crate::model::{Event, Millis, RunId, RunRecord, UnitKey, UnitStatus};
use crate::sandbox::{AttemptContext, AttemptLogs, AttemptReport, Outcome};

pub(crate) enum Msg {
    Start {
        record: Box<RunRecord>,
        reply: oneshot::Sender<Result<RunId, EngineError>>,
    },
    Cancel {
        run: RunId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Attempt {
        run: RunId,
        key: UnitKey,
        started_at: Millis,
        result: Result<AttemptReport, RunnerError>,
    },
    Committed {
        run: RunId,
        after: After,
        result: Result<(), DbError>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// What a transition does once its changes are durable.
pub(crate) struct After {
    ready: Vec<UnitKey>,
    timers: Vec<(Millis, UnitKey)>,
    events: Vec<Event>,
    finished: bool,
    reply: Option<Reply>,
}

pub(crate) enum Reply {
    Started(oneshot::Sender<Result<RunId, EngineError>>),
    Cancelled(oneshot::Sender<Result<(), EngineError>>),
}

#[derive(PartialEq, Eq)]
struct Queued {
    priority: i32,
    seq: u64,
    run: RunId,
    key: UnitKey,
}

impl Ord for Queued {
    /// Higher priority first, then older first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) struct Actor {
    shared: Shared,
    next_id: u64,
    runs: HashMap<RunId, ActiveRun>,
    queue: BinaryHeap<Queued>,
    /// Units held back by their run's or step's concurrency cap, by run:
    /// only an attempt of the same run finishing can free their slot.
    deferred: HashMap<RunId, Vec<Queued>>,
    timers: BinaryHeap<Reverse<(Millis, RunId, UnitKey)>>,
    tasks: HashMap<(RunId, UnitKey), JoinHandle<()>>,
    seq: u64,
}

/// What the scheduler shares with the engine handle.
pub(crate) struct Shared {
    pub db: Db,
    pub runner: Arc<dyn Runner>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub updates: broadcast::Sender<Update>,
    pub inbox: mpsc::UnboundedSender<Msg>,
    pub workflows: Workflows,
}

impl Actor {
    pub fn new(shared: Shared, next_id: u64) -> Actor {
        Actor {
            shared,
            next_id,
            runs: HashMap::new(),
            queue: BinaryHeap::new(),
            deferred: HashMap::new(),
            timers: BinaryHeap::new(),
            tasks: HashMap::new(),
            seq: 0,
        }
    }

    /// Resumes every unfinished run in the store.
    pub fn recover(&mut self) -> Result<usize, EngineError> {
        let now = self.shared.clock.now();
        let active = self.shared.db.active_runs()?;
        for id in &active {
            let Some(record) = self.shared.db.run(*id)? else {
                continue;
            };
            let workflow = self.shared.workflows.load(&self.shared.db, &record.workflow_digest)?;
            let units = self.shared.db.units(*id)?;
            let next_event = self.shared.db.next_event_seq(*id)?;
            let (run, fx) = ActiveRun::restore(record, workflow, units, next_event, now);
            self.runs.insert(*id, run);
            self.commit(*id, fx, None);
        }
        Ok(active.len())
    }

    pub async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Msg>) {
        loop {
            self.dispatch();
            let next_due = self.timers.peek().map(|Reverse((due, _, _))| *due);
            let wait = async {
                match next_due {
                    Some(due) => {
                        tokio::time::sleep(Duration::from_millis(due.saturating_sub(self.shared.clock.now()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = inbox.recv() => match message {
                    Some(Msg::Shutdown { reply }) => {
                        self.stop().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(message) => self.handle(message),
                    None => return,
                },
                () = wait => self.fire_timers(),
            }
        }
    }

    async fn stop(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
            let _ = task.await;
        }
    }

    fn handle(&mut self, message: Msg) {
        let now = self.shared.clock.now();
        match message {
            Msg::Start { mut record, reply } => {
                record.id = RunId(self.next_id);
                self.next_id += 1;
                let id = record.id;
                let workflow = match self.shared.workflows.load(&self.shared.db, &record.workflow_digest) {
                    Ok(workflow) => workflow,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let (run, fx) = ActiveRun::start(*record, workflow, now);
                self.runs.insert(id, run);
                self.commit(id, fx, Some(Reply::Started(reply)));
            }
            Msg::Cancel { run, reply } => {
                let Some(active) = self.runs.get_mut(&run) else {
                    let _ = reply.send(Err(EngineError::NotRunning(run)));
                    return;
                };
                let fx = active.cancel(now);
                let running: Vec<(RunId, UnitKey)> = self.tasks.keys().filter(|(r, _)| *r == run).copied().collect();
                for task in running {
                    if let Some(handle) = self.tasks.remove(&task) {
                        handle.abort();
                    }
                }
                self.commit(run, fx, Some(Reply::Cancelled(reply)));
            }
            Msg::Attempt {
                run,
                key,
                started_at,
                result,
            } => {
                self.tasks.remove(&(run, key));
                self.queue.extend(self.deferred.remove(&run).into_iter().flatten());
                let Some(active) = self.runs.get_mut(&run) else { return };
                let report = result.unwrap_or_else(|e| host_failure(&e));
                let fx = active.attempt_finished(key, report, started_at, now, rand::random::<f64>());
                self.commit(run, fx, None);
            }
            Msg::Committed { run, after, result } => self.committed(run, after, result),
            Msg::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    fn committed(&mut self, run: RunId, after: After, result: Result<(), DbError>) {
        if let Err(e) = &result {
            // The state in memory ran ahead of the disk; a restart resumes
            // from what is durable.
            tracing::error!(run = %run, error = %e, "commit failed");
        }
        match after.reply {
            Some(Reply::Started(reply)) => {
                let _ = reply.send(result.clone().map(|()| run).map_err(EngineError::from));
            }
            Some(Reply::Cancelled(reply)) => {
                let _ = reply.send(result.clone().map_err(EngineError::from));
            }
            None => {}
        }
        if result.is_err() {
            return;
        }
        let priority = self.runs.get(&run).map_or(0, |r| r.record.priority);
        for key in after.ready {
            self.seq += 1;
            self.queue.push(Queued {
                priority,
                seq: self.seq,
                run,
                key,
            });
        }
        for (due, key) in after.timers {
            self.timers.push(Reverse((due, run, key)));
        }
        for event in after.events {
            let _ = self.shared.updates.send(Update { run, event });
        }
        if after.finished {
            self.runs.remove(&run);
            self.deferred.remove(&run);
        }
    }

    fn commit(&mut self, run: RunId, fx: Effects, reply: Option<Reply>) {
        let after = After {
            ready: fx.ready,
            timers: fx.timers,
            events: fx.events,
            finished: fx.finished,
            reply,
        };
        let inbox = self.shared.inbox.clone();
        self.shared.db.write(fx.changes, move |result| {
            let _ = inbox.send(Msg::Committed { run, after, result });
        });
    }

    fn fire_timers(&mut self) {
        let now = self.shared.clock.now();
        while let Some(Reverse((due, run, key))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            if let Some(active) = self.runs.get_mut(&run) {
                let fx = active.timer_fired(key);
                self.commit(run, fx, None);
            }
        }
    }

    /// Starts queued units while slots are free.
    fn dispatch(&mut self) {
        let now = self.shared.clock.now();
        while self.tasks.len() < self.shared.config.max_concurrent {
            let Some(queued) = self.queue.pop() else { break };
            let Some(active) = self.runs.get_mut(&queued.run) else {
                continue;
            };
            let key = queued.key;
            if active.unit(key).status != UnitStatus::Ready || active.record.status.is_final() {
                continue;
            }
            let step = &active.workflow.steps[key.step as usize];
            let over_run_limit = active
                .workflow
                .concurrency
                .is_some_and(|limit| active.running >= limit as usize);
            let over_step_limit = key.item.is_some()
                && step
                    .concurrency
                    .is_some_and(|limit| active.running_items[key.step as usize] >= limit as usize);
            if over_run_limit || over_step_limit {
                self.deferred.entry(queued.run).or_default().push(queued);
                continue;
            }
            let input = match active.input_for(key) {
                Ok(input) => input,
                Err(failure) => {
                    let fx = active.attempt_impossible(key, failure, now);
                    self.commit(queued.run, fx, None);
                    continue;
                }
            };
            let request = AttemptRequest {
                module: active.record.modules[key.step as usize],
                input,
                limits: step.limits,
                context: AttemptContext {
                    tenant: active.record.tenant.clone(),
                    workflow: active.record.workflow.clone(),
                    run_id: active.record.id.to_string(),
                    step_id: step.id.clone(),
                    attempt: active.unit(key).attempts + 1,
                    item_index: key.item,
                },
            };
            active.attempt_started(key);
            let runner = self.shared.runner.clone();
            let inbox = self.shared.inbox.clone();
            let run = queued.run;
            let task = tokio::spawn(async move {
                let result = runner.run(request).await;
                let _ = inbox.send(Msg::Attempt {
                    run,
                    key,
                    started_at: now,
                    result,
                });
            });
            self.tasks.insert((run, key), task);
        }
    }
}

/// An attempt the host could not run counts as a retryable failure: the
/// cause (a missing module, a full pool) may pass.
fn host_failure(error: &RunnerError) -> AttemptReport {
    AttemptReport {
        outcome: Outcome::GuestError {
            code: "host_error".into(),
            message: error.message.clone(),
            retryable: true,
        },
        fuel_used: 0,
        duration: Duration::ZERO,
        logs: AttemptLogs::default(),
        kv_writes: Vec::new(),
    }
}
