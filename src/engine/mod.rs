//! The engine: starts runs, schedules their steps, retries, compensates,
//! and resumes whatever was unfinished when the process stopped.
//!
//! [`Engine`] is the handle; the scheduler itself is one task (`actor`)
//! driving pure per-run state machines (`run_state`) and running attempts
//! through a [`Runner`]. Every state change is committed through the
//! group-commit writer of the [`Store`] before anything that depends on it
//! happens.

mod actor;
mod approvals;
mod clock;
mod queue;
mod run_state;
mod runner;
mod start;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use approvals::{Decision, PendingApproval};
pub use clock::{Clock, TokioClock};
pub use run_state::Delivery;
pub use runner::{AttemptRequest, RunFuture, Runner, RunnerError, SandboxRunner, SecretSource};

use crate::digest::Digest;
use crate::model::{AttemptCaps, Event, Millis, ModuleRecord, RunId, RunRecord};
use crate::spec::{self, SpecConfig, SpecErrors, Workflow};
use crate::store::cluster::{Cluster, Load, NodeInfo, Notice, Timing};
use crate::store::{Change, Store, StoreError};
use actor::{Actor, Msg, Node};

/// How the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Attempts running at once, across all runs and tenants.
    pub max_concurrent: usize,
    /// Slots no single tenant may take, so that work of another tenant
    /// arriving while one floods the node starts at once rather than
    /// waiting for a slot to free. At most a sixteenth of
    /// `max_concurrent` is reserved (none below 16 slots), so a small
    /// node does not hold back its only tenant.
    pub reserved_slots: usize,
    /// Runs whose state is kept in memory while they wait. A run started
    /// or resumed beyond this many, with nothing running yet, is parked:
    /// only its queue entries stay in memory, and its state is read back
    /// from the store when its first unit is dispatched.
    pub hot_runs: usize,
    /// What workflow documents may ask for.
    pub spec: SpecConfig,
    /// How the engine joins a cluster, when its store is shared.
    pub node: NodeConfig,
}

impl EngineConfig {
    /// The slots reserved: `reserved_slots`, up to a sixteenth of the
    /// slots.
    fn reserve(&self) -> usize {
        self.reserved_slots.min(self.max_concurrent / 16)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent: 64,
            reserved_slots: 4,
            hot_runs: 10_000,
            spec: SpecConfig::default(),
            node: NodeConfig::default(),
        }
    }
}

/// How an engine on a shared store (PostgreSQL) joins the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's name [default: the host's name and the process id].
    pub node_id: Option<String>,
    /// Where its API listens, as `weft nodes` shows it.
    pub address: String,
    /// Heartbeat interval and timeout.
    pub timing: Timing,
}

/// A name for a node nobody named: the host's name and the process id,
/// and a count for a process's second engine and later.
fn default_node_id() -> String {
    static ENGINES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "weft".into());
    match ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => format!("{host}-{}", std::process::id()),
        n => format!("{host}-{}-{n}", std::process::id()),
    }
}

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The workflow document is invalid.
    #[error("invalid workflow:\n{0}")]
    InvalidWorkflow(SpecErrors),
    /// A document pushed under one name says another.
    #[error("the document is named {document:?}, but was pushed as {path:?}")]
    NameMismatch {
        /// The name it was pushed under.
        path: String,
        /// The `name` in the document.
        document: String,
    },
    /// No workflow of that name.
    #[error("no workflow named {0:?}")]
    UnknownWorkflow(String),
    /// A step names a module that is not stored.
    #[error("step `{step}` runs module `{task}`, which is not stored")]
    UnknownModule {
        /// The step.
        step: String,
        /// What it names.
        task: String,
    },
    /// The input does not satisfy the workflow's input schema.
    #[error("the input does not match the workflow's input_schema:\n{0}")]
    InvalidInput(SpecErrors),
    /// The run is not running (finished, or unknown).
    #[error("run {0} is not running")]
    NotRunning(RunId),
    /// No run with that id.
    #[error("no run {0}")]
    UnknownRun(RunId),
    /// No step of the run's workflow waits for a signal of that name.
    #[error("no step of workflow {workflow:?} (run {run}) waits for a signal named {signal:?}")]
    UnknownSignal {
        /// The run.
        run: RunId,
        /// Its workflow.
        workflow: String,
        /// The signal's name.
        signal: String,
    },
    /// The run's workflow has no approval step of that id.
    #[error("workflow {workflow:?} (run {run}) has no approval step {step:?}")]
    UnknownApproval {
        /// The run.
        run: RunId,
        /// Its workflow.
        workflow: String,
        /// The step asked for.
        step: String,
    },
    /// The approval cannot be decided now.
    #[error("approval {step:?} of run {run} cannot be decided: {reason}")]
    ApprovalRefused {
        /// The run.
        run: RunId,
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
    /// The caller is not one of the people who may decide the approval.
    #[error("{by:?} may not decide approval {step:?} of run {run}; {deciders} may")]
    NotADecider {
        /// The run.
        run: RunId,
        /// The step.
        step: String,
        /// Who tried.
        by: String,
        /// Who may, listed.
        deciders: String,
    },
    /// The run does not accept the signal now.
    #[error("run {run} does not accept signal {signal:?}: {reason}")]
    SignalRefused {
        /// The run.
        run: RunId,
        /// The signal's name.
        signal: String,
        /// Why.
        reason: String,
    },
    /// The run cannot be reset.
    #[error("run {run} cannot be reset: {reason}")]
    CannotReset {
        /// The run.
        run: RunId,
        /// Why.
        reason: String,
    },
    /// The run cannot be retried.
    #[error("run {run} cannot be retried: {reason}")]
    CannotRetry {
        /// The run.
        run: RunId,
        /// Why.
        reason: String,
    },
    /// A tenant's quota does not allow the request now.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl EngineError {
    /// Whether the same request could succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Something that happened to a run, published once it is durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The run.
    pub run: RunId,
    /// The event's position in the run's history.
    pub seq: u32,
    /// The run's tenant.
    pub tenant: Arc<str>,
    /// What happened.
    pub event: Event,
}

/// A request to start a run.
#[derive(Debug, Clone, Default)]
pub struct StartRun {
    /// The tenant.
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// The input.
    pub input: Value,
    /// Higher runs first.
    pub priority: i32,
    /// A client's key for this start: the same key returns the same run.
    pub idempotency_key: Option<String>,
    /// Caps on every attempt's fuel and memory.
    pub caps: Option<AttemptCaps>,
    /// Refuse the start if the tenant has this many unfinished runs.
    pub max_active: Option<u32>,
    /// The run and step that start it, for a sub-workflow's run.
    pub parent: Option<crate::model::ParentLink>,
}

/// What the scheduler is doing right now, for metrics.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Units waiting for a slot.
    pub queued: AtomicUsize,
    /// Attempts running.
    pub running: AtomicUsize,
    /// Unfinished runs.
    pub active_runs: AtomicUsize,
    /// Unfinished runs parked in the store (counted in `active_runs`).
    pub parked_runs: AtomicUsize,
    /// In a cluster: runs this node claimed.
    pub claimed_runs: AtomicU64,
    /// In a cluster: claim queries made, and their total time.
    pub claim_queries: AtomicU64,
    /// Microseconds spent in claim queries.
    pub claim_micros: AtomicU64,
    /// In a cluster: claimed runs that a dead node had held.
    pub reassigned_runs: AtomicU64,
    /// In a cluster: commits refused because the run had moved on.
    pub fenced_commits: AtomicU64,
}

/// Units queued for a slot on this node now: ready, waiting only for a
/// slot (not for their run's or step's own concurrency cap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadyWork {
    /// Units queued, by tenant; tenants with none are left out.
    pub by_tenant: Vec<(String, usize)>,
    /// How long the oldest of them has waited; `None` when none waits.
    pub oldest_age: Option<Duration>,
}

/// Compiled workflows by digest, shared by the handle and the scheduler:
/// a definition is parsed once per process, not once per run or step.
#[derive(Clone, Default)]
pub(crate) struct Workflows {
    compiled: Arc<Mutex<HashMap<Digest, Arc<Workflow>>>>,
    config: SpecConfig,
}

impl Workflows {
    async fn load(&self, store: &dyn Store, tenant: &str, digest: &Digest) -> Result<Arc<Workflow>, EngineError> {
        if let Some(workflow) = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(digest) {
            return Ok(workflow.clone());
        }
        let source = store
            .workflow(tenant, digest)
            .await?
            .ok_or_else(|| EngineError::UnknownWorkflow(digest.to_string()))?;
        let workflow = Arc::new(spec::parse(&source, &self.config).map_err(EngineError::InvalidWorkflow)?);
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*digest, workflow.clone());
        Ok(workflow)
    }
}

/// Joins the cluster of `cluster`'s store as a node, and passes what the
/// database tells every node on to the scheduler.
async fn join(
    cluster: Arc<dyn Cluster>,
    config: &EngineConfig,
    inbox: mpsc::UnboundedSender<Msg>,
) -> Result<Node, EngineError> {
    let load = Arc::new(Load::default());
    let info = NodeInfo {
        node_id: config.node.node_id.clone().unwrap_or_else(default_node_id),
        address: config.node.address.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        capacity: config.max_concurrent as u32,
    };
    let mut notices = cluster.notices();
    let node_id = info.node_id.clone();
    let me = cluster.join(info, config.node.timing, load.clone()).await?;
    tokio::spawn(async move {
        loop {
            let notice = match notices.recv().await {
                Ok(notice @ (Notice::Work | Notice::Moved { .. } | Notice::Rejoined(_) | Notice::Missed)) => notice,
                Ok(Notice::Advanced(_) | Notice::Names) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => Notice::Missed,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if inbox.send(Msg::Notice(notice)).is_err() {
                return;
            }
        }
    });
    Ok(Node::new(cluster, me, &node_id, load))
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    inbox: mpsc::UnboundedSender<Msg>,
    updates: broadcast::Sender<Update>,
    workflows: Workflows,
    stats: Arc<EngineStats>,
    /// Held across check-and-start of idempotent starts, so two requests
    /// with the same key cannot both start a run.
    idempotent_starts: Arc<tokio::sync::Mutex<()>>,
    /// The cluster this engine is a node of, with what it reports.
    cluster: Option<(Arc<dyn Cluster>, Arc<Load>)>,
}

impl Engine {
    /// Starts the scheduler and resumes every unfinished run in `store`.
    /// Returns the engine and how many runs it resumed.
    pub async fn start(
        store: Arc<dyn Store>,
        runner: Arc<dyn Runner>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<(Engine, usize), EngineError> {
        let (inbox, messages) = mpsc::unbounded_channel();
        let (updates, _) = broadcast::channel(16_384);
        let workflows = Workflows {
            compiled: Arc::default(),
            config: config.spec.clone(),
        };
        let node = match store.cluster() {
            Some(cluster) => Some(join(cluster, &config, inbox.clone()).await?),
            None => None,
        };
        let next_id = match node {
            Some(_) => 0,
            None => store.last_run_id().await? + 1,
        };
        let membership = node.as_ref().map(|node| (node.cluster.clone(), node.load.clone()));
        let stats = Arc::new(EngineStats::default());
        let shared = actor::Shared {
            store: store.clone(),
            runner,
            clock: clock.clone(),
            config,
            updates: updates.clone(),
            inbox: inbox.clone(),
            workflows: workflows.clone(),
            stats: stats.clone(),
        };
        let mut actor = Actor::new(shared, next_id, node);
        let resumed = actor.recover().await?;
        tokio::spawn(actor.run(messages));
        Ok((
            Engine {
                store,
                clock,
                inbox,
                updates,
                workflows,
                stats,
                idempotent_starts: Arc::default(),
                cluster: membership,
            },
            resumed,
        ))
    }

    /// The cluster this engine is a node of, and the load it reports;
    /// `None` when it owns its store alone.
    pub fn cluster(&self) -> Option<&(Arc<dyn Cluster>, Arc<Load>)> {
        self.cluster.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A tenant's stored workflow definition, compiled (once per process).
    pub async fn workflow(&self, tenant: &str, digest: &Digest) -> Result<Arc<Workflow>, EngineError> {
        self.workflows.load(&*self.store, tenant, digest).await
    }

    /// What the scheduler is doing now.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// What is queued for a slot now, by tenant, and how long the oldest
    /// unit has waited. Asked of the scheduler, which walks its queue: for
    /// a scrape of the metrics, not for a hot path.
    pub async fn ready_work(&self) -> Result<ReadyWork, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Ready { reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)
    }

    /// The clock the engine runs on.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Stores a module's bytes as a version of a tenant's module, which
    /// becomes its newest; callers validate the component first (the
    /// sandbox's `load`).
    pub async fn put_module(&self, tenant: &str, record: ModuleRecord, bytes: Vec<u8>) -> Result<(), EngineError> {
        self.store
            .commit(vec![
                Change::PutModule {
                    tenant: tenant.into(),
                    digest: record.digest,
                    bytes: Arc::new(bytes),
                },
                Change::PutModuleVersion {
                    tenant: tenant.into(),
                    record: Box::new(record),
                },
            ])
            .await?;
        Ok(())
    }

    /// Checks and stores a workflow document; returns its name and digest.
    pub async fn put_workflow(&self, tenant: &str, source: &str) -> Result<(String, Digest), EngineError> {
        let workflow = self.compile(source, &self.workflows.config)?;
        self.store_workflow(tenant, source, workflow).await
    }

    /// Parses and checks a workflow document against `config` (a
    /// tenant's quota, or the engine's), without storing it.
    pub fn compile(&self, source: &str, config: &SpecConfig) -> Result<Workflow, EngineError> {
        spec::parse(source, config).map_err(EngineError::InvalidWorkflow)
    }

    /// Stores a document [`Engine::compile`] accepted; returns its name
    /// and digest.
    pub async fn store_workflow(
        &self,
        tenant: &str,
        source: &str,
        workflow: Workflow,
    ) -> Result<(String, Digest), EngineError> {
        let digest = Digest::of(source.as_bytes());
        let name = workflow.name.clone();
        self.store
            .commit(vec![Change::PutWorkflow {
                tenant: tenant.into(),
                name: name.clone(),
                digest,
                source: source.into(),
                at: self.clock.now(),
            }])
            .await?;
        self.workflows
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, Arc::new(workflow));
        Ok((name, digest))
    }

    /// The exact module each step of `workflow` runs for `tenant` now.
    pub async fn resolve_modules(&self, tenant: &str, workflow: &Workflow) -> Result<Vec<Digest>, EngineError> {
        start::resolve_modules(&*self.store, tenant, workflow).await
    }

    /// Starts a run of the newest definition of a workflow, pinned to it and
    /// to the modules its steps name now. Returns once the run is durable.
    /// With an idempotency key, a key seen before returns the run it
    /// started and `false`.
    pub async fn start_run(&self, request: StartRun) -> Result<(RunId, bool), EngineError> {
        let Some(key) = &request.idempotency_key else {
            return self.start_new(request).await.map(|id| (id, true));
        };
        let _one_at_a_time = self.idempotent_starts.lock().await;
        if let Some(run) = self.store.idempotent_run(&request.tenant, key).await? {
            return Ok((run, false));
        }
        // The lock holds one process only: another node may have started
        // a run for the key since. The store then refuses this start, and
        // names that run.
        match self.start_new(request).await {
            Ok(run) => Ok((run, true)),
            Err(EngineError::Store(StoreError::Duplicate { run })) => Ok((run, false)),
            Err(e) => Err(e),
        }
    }

    async fn start_new(&self, request: StartRun) -> Result<RunId, EngineError> {
        if !self.store.is_available() {
            // Refused now rather than held until the database is back.
            return Err(StoreError::Unavailable("the database cannot be reached".into()).into());
        }
        let (record, workflow) = start::prepare(&*self.store, &self.workflows, self.clock.now(), &request).await?;
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Start {
                record: Box::new(record),
                workflow,
                idempotency_key: request.idempotency_key,
                max_active: request.max_active,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Cancels a run: running attempts are stopped, nothing else starts.
    pub async fn cancel(&self, run: RunId) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Cancel { run, reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Pauses (`true`) or resumes a run: while paused no new attempt
    /// starts; running attempts finish. Answers once durable.
    pub async fn set_paused(&self, run: RunId, paused: bool) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Pause { run, paused, reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Delivers a signal to a run: the step waiting for `name` takes the
    /// payload as its output, or the signal is kept for the step that
    /// will wait. Answers once that is durable; with an `id` seen before,
    /// changes nothing and answers [`Delivery::Duplicate`].
    pub async fn signal(
        &self,
        run: RunId,
        name: &str,
        id: Option<String>,
        payload: Value,
    ) -> Result<Delivery, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Signal {
                run,
                name: name.to_string(),
                id,
                payload,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Starts a failed or cancelled run again from its failed steps,
    /// keeping the steps that completed.
    pub async fn retry(&self, run: RunId) -> Result<(), EngineError> {
        self.restart(run, None).await
    }

    /// Runs an ended run again from step `from`, which succeeded: it and
    /// everything downstream of it run again (and whatever failed or was
    /// cancelled), with the recorded outputs of everything upstream.
    pub async fn reset(&self, run: RunId, from: &str) -> Result<(), EngineError> {
        self.restart(run, Some(from.to_string())).await
    }

    async fn restart(&self, run: RunId, from: Option<String>) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Restart { run, from, reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Stops starting attempts and waits, up to `grace`, for those running
    /// to finish and be recorded. Returns whether they all did; either
    /// way, call [`Engine::shutdown`] next (what is still running then is
    /// run again after a restart).
    pub async fn drain(&self, grace: Duration) -> bool {
        let (reply, done) = oneshot::channel();
        if self.inbox.send(Msg::Drain { reply }).is_err() {
            return true;
        }
        tokio::time::timeout(grace, done).await.is_ok()
    }

    /// Every durable event of every run, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// Waits until `run` has ended and returns it.
    pub async fn wait(&self, run: RunId) -> Result<RunRecord, EngineError> {
        let (reply, ended) = oneshot::channel();
        self.inbox
            .send(Msg::Watch { run, reply })
            .map_err(|_| EngineError::Stopped)?;
        if let Some(record) = ended.await.map_err(|_| EngineError::Stopped)? {
            return Ok(record);
        }
        if let Some((cluster, _)) = &self.cluster {
            return self.wait_elsewhere(&**cluster, run).await;
        }
        match self.store.run(run).await? {
            Some(record) if record.status.is_final() => Ok(record),
            Some(_) => Err(EngineError::Stopped),
            None => Err(EngineError::NotRunning(run)),
        }
    }

    /// Waits for a run another node holds to end, told by the database
    /// when it advances (and looking every second, should a notice be
    /// lost).
    async fn wait_elsewhere(&self, cluster: &dyn Cluster, run: RunId) -> Result<RunRecord, EngineError> {
        let mut notices = cluster.notices();
        loop {
            match self.store.run(run).await? {
                Some(record) if record.status.is_final() => return Ok(record),
                Some(_) => {}
                None => return Err(EngineError::NotRunning(run)),
            }
            let advanced = async {
                loop {
                    match notices.recv().await {
                        Ok(Notice::Advanced(runs)) if runs.iter().any(|(id, _)| *id == run) => return,
                        Ok(Notice::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), advanced).await;
        }
    }

    /// Stops the scheduler: running attempts are abandoned (a restart runs
    /// them again), and the scheduler's hold on the store is released.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.inbox.send(Msg::Shutdown { reply }).is_ok() {
            let _ = done.await;
        }
    }
}
