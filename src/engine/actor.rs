//! The scheduler loop: one task owns every active run, the ready queue,
//! the retry timers and the attempts in flight, so no state is shared and
//! nothing is locked.
//!
//! A transition's changes go to the group-commit writer; what depends on
//! them being durable (queueing the units they made ready, arming timers,
//! telling watchers, answering a caller) happens when the commit comes
//! back. A dependent therefore never starts before its need's result (and
//! kv writes) are on disk, while commits of many runs still share an fsync.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

mod children;
mod cluster;
mod msg;
mod permits;
mod restart;
mod waits;

pub(crate) use cluster::Node;
pub(crate) use msg::Msg;

use super::queue::{FairQueue, Queued};
use super::run_state::{ActiveRun, ChildStart, Delivery, Effects, StoredRun};
use super::runner::{AttemptRequest, Runner, RunnerError};
use super::{Clock, EngineConfig, EngineError, EngineStats, ReadyWork, Update, Workflows};
use crate::model::{AttemptCaps, Event, Millis, RunId, RunRecord, UnitKey, UnitStatus};
use crate::sandbox::{AttemptContext, AttemptLogs, AttemptReport, Limits, Outcome};
use crate::store::cluster::Notice;
use crate::store::{Change, Store, StoreError};

/// What a transition does once its changes are durable.
pub(crate) struct After {
    ready: Vec<UnitKey>,
    timers: Vec<(Millis, UnitKey)>,
    events: Vec<(u32, Event)>,
    finished: bool,
    children: Vec<ChildStart>,
    cancel_children: Vec<RunId>,
    check_children: Vec<(UnitKey, RunId)>,
    /// A child run that ended: its record, for its parent.
    ended_child: Option<Box<RunRecord>>,
    /// The run's first commit in this process (its start or resumption).
    first: bool,
    reply: Option<Reply>,
}

pub(crate) enum Reply {
    Started(oneshot::Sender<Result<RunId, EngineError>>),
    Done(oneshot::Sender<Result<(), EngineError>>),
    Signal(oneshot::Sender<Result<Delivery, EngineError>>, Delivery),
}

pub(crate) struct Actor {
    shared: Shared,
    next_id: u64,
    /// Boxed: a map grows by doubling, and a backlog of pending runs
    /// would pay for twice their full size in empty slots.
    runs: HashMap<RunId, Box<ActiveRun>>,
    /// Unfinished runs kept only in the store and the queue (see
    /// `EngineConfig::hot_runs`); loaded when a unit of theirs comes up.
    parked: HashSet<RunId>,
    queue: FairQueue,
    /// Units held back by their run's or step's concurrency cap, or by
    /// their run being paused, by run: only an attempt of the same run
    /// finishing (or the run's resumption) can free them.
    deferred: HashMap<RunId, Vec<Queued>>,
    /// How many units `deferred` holds, kept as it changes so the stats
    /// need not count them on every turn of the loop.
    deferred_len: usize,
    timers: BinaryHeap<Reverse<(Millis, RunId, UnitKey)>>,
    tasks: HashMap<(RunId, UnitKey), JoinHandle<()>>,
    seq: u64,
    /// Unfinished runs per tenant, for the concurrent-runs quota.
    active_by_tenant: HashMap<String, u32>,
    /// Commits sent to the writer and not yet answered.
    commits_in_flight: usize,
    /// Set while draining: nothing new starts, and this is answered once
    /// nothing runs and every commit is durable.
    draining: Option<oneshot::Sender<()>>,
    /// Callers waiting for a run to end, told when its end is durable.
    watchers: HashMap<RunId, Vec<oneshot::Sender<Option<RunRecord>>>>,
    /// When to try dispatching again after the store could not be read.
    stalled_until: Option<Millis>,
    /// This node's membership of a cluster; `None` when it owns the store.
    node: Option<Node>,
}

/// How long dispatch waits after a failed read of a parked run.
const STALL_RETRY_MS: Millis = 500;

/// How often a node in a cluster looks for runs to claim without being
/// told (notifications can be lost while a connection is down).
const CLAIM_POLL: Duration = Duration::from_secs(1);

/// How long a stopping scheduler waits for its last commits.
const LAST_COMMITS: Duration = Duration::from_secs(5);

/// What the scheduler shares with the engine handle.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub runner: Arc<dyn Runner>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub updates: broadcast::Sender<Update>,
    pub inbox: mpsc::UnboundedSender<Msg>,
    pub workflows: Workflows,
    pub stats: Arc<EngineStats>,
}

impl Actor {
    pub fn new(shared: Shared, next_id: u64, node: Option<Node>) -> Actor {
        let queue = FairQueue::new(shared.config.max_concurrent, shared.config.reserve());
        let queue = if node.is_some() { queue.with_permits() } else { queue };
        Actor {
            shared,
            next_id,
            runs: HashMap::new(),
            parked: HashSet::new(),
            queue,
            deferred: HashMap::new(),
            deferred_len: 0,
            timers: BinaryHeap::new(),
            tasks: HashMap::new(),
            seq: 0,
            active_by_tenant: HashMap::new(),
            commits_in_flight: 0,
            draining: None,
            watchers: HashMap::new(),
            stalled_until: None,
            node,
        }
    }

    /// Resumes every unfinished run in the store; in a cluster, claims
    /// what no live node holds, up to this node's capacity (later claims
    /// take the rest).
    pub async fn recover(&mut self) -> Result<usize, EngineError> {
        if self.node.is_some() {
            return Ok(self.claim_now().await);
        }
        let now = self.shared.clock.now();
        let active = self.shared.store.active_runs().await?;
        for id in &active {
            let Some(record) = self.shared.store.run(*id).await? else {
                continue;
            };
            let (run, fx) = ActiveRun::restore(self.read_rest(record).await?, now);
            self.insert(run);
            self.commit_as(*id, fx, None, true);
        }
        Ok(active.len())
    }

    pub async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Msg>) {
        let mut poll = tokio::time::interval(CLAIM_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch().await;
            self.ask_permits();
            self.claim_if_room();
            self.publish_stats();
            if self.tasks.is_empty()
                && self.commits_in_flight == 0
                && let Some(reply) = self.draining.take()
            {
                let _ = reply.send(());
            }
            let next_due = self
                .timers
                .peek()
                .map(|Reverse((due, _, _))| *due)
                .into_iter()
                .chain(self.stalled_until.take())
                .min();
            let wait = async {
                match next_due {
                    Some(due) => {
                        tokio::time::sleep(Duration::from_millis(due.saturating_sub(self.shared.clock.now()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            let clustered = self.node.is_some();
            tokio::select! {
                message = inbox.recv() => match message {
                    Some(Msg::Shutdown { reply }) => {
                        self.stop(&mut inbox).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(Msg::Drain { reply }) => self.drain(reply),
                    Some(message) => self.handle(message).await,
                    None => return,
                },
                () = wait => self.fire_timers().await,
                _ = poll.tick(), if clustered => self.notice(Notice::Work),
            }
        }
    }

    /// Abandons running attempts; in a cluster, waits (briefly) for the
    /// commits on their way and hands every run back.
    async fn stop(&mut self, inbox: &mut mpsc::UnboundedReceiver<Msg>) {
        for (_, task) in self.tasks.drain() {
            task.abort();
            let _ = task.await;
        }
        if self.node.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + LAST_COMMITS;
        while self.commits_in_flight > 0 {
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Ok(Some(Msg::Committed { run, after, result })) => self.committed(run, after, result),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.leave().await;
    }

    fn drain(&mut self, reply: oneshot::Sender<()>) {
        self.draining = Some(reply);
        self.hand_back_idle();
    }

    async fn handle(&mut self, message: Msg) {
        let now = self.shared.clock.now();
        match message {
            Msg::Start {
                mut record,
                workflow,
                idempotency_key,
                max_active,
                reply,
            } => {
                let active = self.active_by_tenant.get(&record.tenant).copied().unwrap_or(0);
                if let Some(max) = max_active.filter(|max| active >= *max) {
                    let reason = format!("{active} runs are unfinished; the quota allows {max} at once");
                    let _ = reply.send(Err(EngineError::QuotaExceeded(reason)));
                    return;
                }
                record.id = match self.new_run_id().await {
                    Ok(id) => id,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let id = record.id;
                let tenant = record.tenant.clone();
                let (run, mut fx) = ActiveRun::start(*record, workflow, now);
                if let Some(key) = idempotency_key {
                    fx.changes.push(Change::PutIdempotencyKey { tenant, key, run: id });
                }
                self.insert(run);
                // The first units are queued now, not once the start is
                // durable: their attempts overlap the start's commit, and
                // under load their results join it in one group commit
                // instead of waiting for a second (docs/architecture.md,
                // "Fairness"). Commits keep their order, so no result is
                // durable before its run; a start that fails drops the run.
                let first = match self.is_handed_off(id) {
                    true => Vec::new(),
                    false => std::mem::take(&mut fx.ready),
                };
                self.commit_as(id, fx, Some(Reply::Started(reply)), true);
                self.enqueue(id, first);
            }
            Msg::Restart { run, from, reply } => match self.restart(run, from.as_deref(), now).await {
                Ok(fx) => self.commit(run, fx, Some(Reply::Done(reply))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Msg::Cancel { run, reply } => {
                if let Err(e) = self.bring_here(run, now).await {
                    let _ = reply.send(Err(e));
                    return;
                }
                let Some(active) = self.runs.get_mut(&run) else {
                    let _ = reply.send(Err(EngineError::NotRunning(run)));
                    return;
                };
                let fx = active.cancel(now);
                let running: Vec<(RunId, UnitKey)> = self.tasks.keys().filter(|(r, _)| *r == run).copied().collect();
                for task in running {
                    if let Some(handle) = self.tasks.remove(&task) {
                        handle.abort();
                        self.attempt_ended(task.0, task.1, Duration::ZERO);
                    }
                }
                self.commit(run, fx, Some(Reply::Done(reply)));
            }
            Msg::Pause { run, paused, reply } => {
                if let Err(e) = self.bring_here(run, now).await {
                    let _ = reply.send(Err(e));
                    return;
                }
                let Some(fx) = self
                    .runs
                    .get_mut(&run)
                    .and_then(|active| active.set_paused(paused, now))
                else {
                    let _ = reply.send(Err(EngineError::NotRunning(run)));
                    return;
                };
                if !paused {
                    let held = self.take_deferred(run);
                    self.queue.extend(held);
                }
                self.commit(run, fx, Some(Reply::Done(reply)));
            }
            Msg::Signal {
                run,
                name,
                id,
                payload,
                reply,
            } => self.signal(run, &name, id, payload, reply, now).await,
            Msg::Decide { run, decision, reply } => self.decide(run, decision, reply, now).await,
            Msg::ChildStarted { parent, key, result } => self.child_started(parent, key, result, now).await,
            Msg::ChildEnded { child } => self.child_ended(*child, now).await,
            Msg::Attempt {
                run,
                key,
                started_at,
                result,
            } => {
                let ran = self.tasks.remove(&(run, key)).is_some();
                let freed = self.take_deferred(run);
                self.queue.extend(freed);
                let report = result.unwrap_or_else(|e| host_failure(&e));
                if ran {
                    self.attempt_ended(run, key, report.duration);
                }
                let Some(active) = self.runs.get_mut(&run) else { return };
                let node = self.node.as_ref().map(|node| node.node_id.clone());
                let ran = (started_at, node.as_deref());
                let fx = active.attempt_finished(key, report, ran, now, rand::random::<f64>());
                self.commit(run, fx, None);
            }
            Msg::Committed { run, after, result } => self.committed(run, after, result),
            Msg::Notice(notice) => self.notice(notice),
            Msg::Adopt { adopted, room } => self.adopt(adopted, room),
            Msg::Permits { tenant, granted } => self.permits_granted(tenant, granted),
            Msg::Ready { reply } => {
                let (by_tenant, oldest) = self.queue.ready();
                let _ = reply.send(ReadyWork {
                    by_tenant: by_tenant.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
                    oldest_age: oldest.map(|since| Duration::from_millis(now.saturating_sub(since))),
                });
            }
            Msg::Watch { run, reply } => {
                if self.runs.contains_key(&run) || self.parked.contains(&run) {
                    self.watchers.entry(run).or_default().push(reply);
                } else {
                    let _ = reply.send(None);
                }
            }
            Msg::Shutdown { .. } | Msg::Drain { .. } => unreachable!("handled by the loop"),
        }
    }

    fn insert(&mut self, run: ActiveRun) {
        *self.active_by_tenant.entry(run.record.tenant.clone()).or_default() += 1;
        self.runs.insert(run.record.id, Box::new(run));
    }

    fn remove(&mut self, id: RunId) {
        self.parked.remove(&id);
        let removed = self.runs.remove(&id);
        if let Some(run) = &removed
            && let Some(count) = self.active_by_tenant.get_mut(&run.record.tenant)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.active_by_tenant.remove(&run.record.tenant);
            }
        }
        self.take_deferred(id);
        if let Some(node) = &mut self.node {
            node.forget(id);
        }
        // Removed once its end is durable: the record in memory is the
        // stored one, so a waiter need not read it back.
        let ended = removed.map(|run| run.record).filter(|record| record.status.is_final());
        for watcher in self.watchers.remove(&id).unwrap_or_default() {
            let _ = watcher.send(ended.clone());
        }
    }

    /// Removes and returns `run`'s deferred units.
    fn take_deferred(&mut self, run: RunId) -> Vec<Queued> {
        let units = self.deferred.remove(&run).unwrap_or_default();
        self.deferred_len -= units.len();
        units
    }

    fn publish_stats(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.publish_load();
        let stats = &self.shared.stats;
        stats.queued.store(self.queue.len() + self.deferred_len, Relaxed);
        stats.running.store(self.tasks.len(), Relaxed);
        stats.active_runs.store(self.runs.len() + self.parked.len(), Relaxed);
        stats.parked_runs.store(self.parked.len(), Relaxed);
    }

    fn committed(&mut self, run: RunId, after: After, result: Result<(), StoreError>) {
        self.commits_in_flight -= 1;
        let first = after.first;
        if let Some(active) = self.runs.get_mut(&run) {
            active.commits -= 1;
        }
        match &result {
            Err(StoreError::Fenced(_)) => self.fenced(run),
            // Another node started the run for the key: this one (its start
            // and all that followed) is left out, and the caller told.
            Err(StoreError::Duplicate { run: key_run }) => tracing::debug!(%run, %key_run, "a duplicate start"),
            // The state in memory ran ahead of the disk; a restart resumes
            // from what is durable.
            Err(e) => tracing::error!(run = %run, error = %e, "commit failed"),
            Ok(()) => {}
        }
        match after.reply {
            Some(Reply::Started(reply)) => {
                let _ = reply.send(result.clone().map(|()| run).map_err(EngineError::from));
                if result.is_err() {
                    // Not stored, and the caller is told so: its attempts,
                    // already under way, record nothing.
                    self.abandon(run);
                    return;
                }
            }
            Some(Reply::Done(reply)) => {
                let _ = reply.send(result.clone().map_err(EngineError::from));
            }
            Some(Reply::Signal(reply, delivery)) => {
                let _ = reply.send(result.clone().map(|()| delivery).map_err(EngineError::from));
            }
            None => {}
        }
        if result.is_err() {
            return;
        }
        if self.handed_off(run) {
            // Started here for any node to claim: only its start is told.
            let tenant: Arc<str> = self
                .runs
                .get(&run)
                .map_or("".into(), |a| a.record.tenant.as_str().into());
            for (seq, event) in after.events {
                let tenant = Arc::clone(&tenant);
                let _ = self.shared.updates.send(Update {
                    run,
                    seq,
                    tenant,
                    event,
                });
            }
            self.lose(run);
            return;
        }
        self.enqueue(run, after.ready);
        self.mind_children(run, after.children, after.cancel_children, after.check_children);
        if let Some(child) = after.ended_child {
            let _ = self.shared.inbox.send(Msg::ChildEnded { child });
        }
        let tenant: Arc<str> = self
            .runs
            .get(&run)
            .map_or("".into(), |active| active.record.tenant.as_str().into());
        for (due, key) in after.timers {
            self.timers.push(Reverse((due, run, key)));
        }
        for (seq, event) in after.events {
            let _ = self.shared.updates.send(Update {
                run,
                seq,
                tenant: Arc::clone(&tenant),
                event,
            });
        }
        if after.finished {
            self.remove(run);
        } else if first {
            self.park_if_cold(run);
        }
    }

    /// Queues units of `run` for a slot.
    fn enqueue(&mut self, run: RunId, keys: Vec<UnitKey>) {
        if keys.is_empty() {
            return;
        }
        let (priority, tenant, limit) = match self.runs.get(&run) {
            Some(active) => (
                active.record.priority,
                Arc::from(active.record.tenant.as_str()),
                active.record.caps.map_or(0, |caps| caps.concurrent_attempts),
            ),
            None => (0, Arc::from(""), 0),
        };
        let since = self.shared.clock.now();
        for key in keys {
            self.seq += 1;
            self.queue.push(Queued {
                priority,
                seq: self.seq,
                run,
                key,
                tenant: Arc::clone(&tenant),
                limit,
                since,
            });
        }
    }

    /// Forgets a run whose start did not become durable. Its attempts
    /// under way finish (their slots are counted back as usual) and find
    /// no run to record into; what is queued of it is dropped when it
    /// comes up.
    fn abandon(&mut self, run: RunId) {
        self.handed_off(run);
        self.remove(run);
    }

    /// Parks a run just started or resumed, if more runs than the hot
    /// limit are in memory and nothing of it runs or is on its way to the
    /// store: its state is exactly what is durable.
    fn park_if_cold(&mut self, id: RunId) {
        if self.runs.len() <= self.shared.config.hot_runs {
            return;
        }
        let Some(run) = self.runs.get(&id) else { return };
        // A run waiting on a timer (a retry, a sleep) parks too: the timer
        // stays armed and reads it back when it fires.
        if run.running == 0 && run.commits == 0 {
            self.runs.remove(&id);
            self.parked.insert(id);
        }
    }

    /// Reads the rest of a stored run: its definition, units and event
    /// count.
    async fn read_rest(&self, record: RunRecord) -> Result<StoredRun, EngineError> {
        cluster::read_stored(&*self.shared.store, &self.shared.workflows, record).await
    }

    /// Reads a parked run back from the store. Its queued units are in the
    /// queue already.
    async fn unpark(&mut self, id: RunId) {
        if !self.parked.remove(&id) {
            return;
        }
        let loaded = match self.shared.store.run(id).await {
            Ok(Some(record)) => self.read_rest(record).await,
            Ok(None) => Err(EngineError::UnknownRun(id)),
            Err(e) => Err(e.into()),
        };
        match loaded {
            Ok(stored) => {
                let (run, _queued_already) = ActiveRun::rebuild(stored, self.shared.clock.now());
                self.runs.insert(id, Box::new(run));
            }
            Err(e) => {
                // Left to the next start, which resumes it from the store.
                tracing::error!(run = %id, error = %e, "cannot read a parked run back");
                self.parked.insert(id);
            }
        }
    }

    fn commit(&mut self, run: RunId, fx: Effects, reply: Option<Reply>) {
        self.commit_as(run, fx, reply, false);
    }

    /// [`Actor::commit`], marking the run's first commit in this process.
    fn commit_as(&mut self, run: RunId, mut fx: Effects, reply: Option<Reply>, first: bool) {
        if let Some(hold) = self.hold(run) {
            fx.changes.push(hold);
        }
        let mut ended_child = None;
        if let Some(active) = self.runs.get_mut(&run) {
            active.commits += 1;
            if fx.finished && active.record.parent.is_some() {
                ended_child = Some(Box::new(active.record.clone()));
            }
        }
        let after = After {
            ready: fx.ready,
            timers: fx.timers,
            events: fx.events,
            finished: fx.finished,
            children: fx.children,
            cancel_children: fx.cancel_children,
            check_children: fx.check_children,
            ended_child,
            first,
            reply,
        };
        let inbox = self.shared.inbox.clone();
        self.commits_in_flight += 1;
        self.shared.store.submit(
            fx.changes,
            Box::new(move |result| {
                let _ = inbox.send(Msg::Committed { run, after, result });
            }),
        );
    }

    /// Starts queued units while slots are free.
    async fn dispatch(&mut self) {
        let now = self.shared.clock.now();
        while self.draining.is_none() && self.tasks.len() < self.shared.config.max_concurrent {
            let Some(queued) = self.queue.pop() else { break };
            self.unpark(queued.run).await;
            if self.parked.contains(&queued.run) {
                // The store could not be read: keep the unit queued and
                // try again shortly, rather than lose it.
                self.queue.push(queued);
                self.stalled_until = Some(now + STALL_RETRY_MS);
                break;
            }
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
            // A paused run's units wait here until it is resumed.
            if over_run_limit || over_step_limit || active.record.paused {
                self.deferred_len += 1;
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
                limits: capped(step.limits, active.record.caps),
                context: AttemptContext {
                    tenant: active.record.tenant.clone(),
                    workflow: active.record.workflow.clone(),
                    run_id: active.record.id.to_string(),
                    step_id: step.id.clone(),
                    attempt: active.unit(key).attempts + 1,
                    item_index: key.item,
                },
                http: step.http.clone(),
                secrets: step.secrets.clone(),
            };
            active.attempt_started(key);
            self.queue.started(&queued);
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

/// A step's limits, lowered to the run's caps.
fn capped(mut limits: Limits, caps: Option<AttemptCaps>) -> Limits {
    if let Some(caps) = caps {
        limits.fuel = limits.fuel.min(caps.fuel);
        limits.memory = limits.memory.min(caps.memory);
    }
    limits
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
        http: Vec::new(),
    }
}
