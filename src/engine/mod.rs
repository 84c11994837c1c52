//! The engine: starts runs, schedules their steps, retries, compensates,
//! and resumes whatever was unfinished when the process stopped.
//!
//! [`Engine`] is the handle; the scheduler itself is one task (`actor`)
//! driving pure per-run state machines (`run_state`) and running attempts
//! through a [`Runner`]. Every state change is committed through the
//! group-commit writer of [`Db`] before anything that depends on it
//! happens.

mod actor;
mod clock;
mod run_state;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use clock::{Clock, TokioClock};
pub use runner::{AttemptRequest, RunFuture, Runner, RunnerError, SandboxRunner};

use crate::db::{Change, Db, DbError};
use crate::digest::Digest;
use crate::model::{Event, EventKind, RunId, RunRecord, RunStatus};
use crate::spec::{self, SpecConfig, SpecErrors, TaskRef, Workflow};
use actor::{Actor, Msg};

/// How the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Attempts running at once, across all runs.
    pub max_concurrent: usize,
    /// What workflow documents may ask for.
    pub spec: SpecConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent: 64,
            spec: SpecConfig::default(),
        }
    }
}

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The workflow document is invalid.
    #[error("invalid workflow:\n{0}")]
    InvalidWorkflow(SpecErrors),
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
    #[error("the input does not match the workflow's input_schema: {}", .0.join("; "))]
    InvalidInput(Vec<String>),
    /// The run is not running (finished, or unknown).
    #[error("run {0} is not running")]
    NotRunning(RunId),
    /// The store failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl EngineError {
    /// Whether the same request could succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Db(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Something that happened to a run, published once it is durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The run.
    pub run: RunId,
    /// What happened.
    pub event: Event,
}

/// A request to start a run.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// The tenant.
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// The input.
    pub input: Value,
    /// Higher runs first.
    pub priority: i32,
}

/// Compiled workflows by digest, shared by the handle and the scheduler:
/// a definition is parsed once per process, not once per run or step.
#[derive(Clone, Default)]
pub(crate) struct Workflows {
    compiled: Arc<Mutex<HashMap<Digest, Arc<Workflow>>>>,
    config: SpecConfig,
}

impl Workflows {
    fn load(&self, db: &Db, digest: &Digest) -> Result<Arc<Workflow>, EngineError> {
        if let Some(workflow) = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(digest) {
            return Ok(workflow.clone());
        }
        let source = db
            .workflow(digest)?
            .ok_or_else(|| EngineError::UnknownWorkflow(digest.to_string()))?;
        let workflow = Arc::new(spec::parse(&source, &self.config).map_err(EngineError::InvalidWorkflow)?);
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*digest, workflow.clone());
        Ok(workflow)
    }
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Db,
    clock: Arc<dyn Clock>,
    inbox: mpsc::UnboundedSender<Msg>,
    updates: broadcast::Sender<Update>,
    workflows: Workflows,
}

impl Engine {
    /// Starts the scheduler and resumes every unfinished run in `db`.
    /// Returns the engine and how many runs it resumed.
    pub fn start(
        db: Db,
        runner: Arc<dyn Runner>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<(Engine, usize), EngineError> {
        let (inbox, messages) = mpsc::unbounded_channel();
        let (updates, _) = broadcast::channel(16_384);
        let workflows = Workflows {
            compiled: Arc::default(),
            config: config.spec,
        };
        let next_id = db.last_run_id()? + 1;
        let shared = actor::Shared {
            db: db.clone(),
            runner,
            clock: clock.clone(),
            config,
            updates: updates.clone(),
            inbox: inbox.clone(),
            workflows: workflows.clone(),
        };
        let mut actor = Actor::new(shared, next_id);
        let resumed = actor.recover()?;
        tokio::spawn(actor.run(messages));
        Ok((
            Engine {
                db,
                clock,
                inbox,
                updates,
                workflows,
            },
            resumed,
        ))
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a module's bytes under `name` for `tenant`; callers validate
    /// the component first (the sandbox's `load`).
    pub async fn put_module(&self, tenant: &str, name: &str, bytes: Vec<u8>) -> Result<Digest, EngineError> {
        let digest = Digest::of(&bytes);
        self.db
            .commit(vec![
                Change::PutModule {
                    digest,
                    bytes: Arc::new(bytes),
                },
                Change::NameModule {
                    tenant: tenant.into(),
                    name: name.into(),
                    digest,
                },
            ])
            .await?;
        Ok(digest)
    }

    /// Checks and stores a workflow document; returns its name and digest.
    pub async fn put_workflow(&self, tenant: &str, source: &str) -> Result<(String, Digest), EngineError> {
        let workflow = spec::parse(source, &self.workflows.config).map_err(EngineError::InvalidWorkflow)?;
        let digest = Digest::of(source.as_bytes());
        let name = workflow.name.clone();
        self.db
            .commit(vec![Change::PutWorkflow {
                tenant: tenant.into(),
                name: name.clone(),
                digest,
                source: source.into(),
            }])
            .await?;
        self.workflows
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, Arc::new(workflow));
        Ok((name, digest))
    }

    /// Starts a run of the newest definition of a workflow, pinned to it and
    /// to the modules its steps name now. Returns once the run is durable.
    pub async fn start_run(&self, request: StartRun) -> Result<RunId, EngineError> {
        let digest = self
            .db
            .workflow_named(&request.tenant, &request.workflow)?
            .ok_or_else(|| EngineError::UnknownWorkflow(request.workflow.clone()))?;
        let workflow = self.workflows.load(&self.db, &digest)?;
        workflow
            .check_input(&request.input)
            .map_err(EngineError::InvalidInput)?;
        let mut modules = Vec::with_capacity(workflow.steps.len());
        for step in &workflow.steps {
            let digest = match &step.task {
                TaskRef::Digest(d) => self.db.module(d)?.map(|_| *d),
                TaskRef::Name { .. } => self.db.module_named(&request.tenant, &step.task.to_string())?,
            };
            modules.push(digest.ok_or_else(|| EngineError::UnknownModule {
                step: step.id.clone(),
                task: step.task.to_string(),
            })?);
        }
        let now = self.clock.now();
        let record = RunRecord {
            id: RunId(0),
            tenant: request.tenant,
            workflow: workflow.name.clone(),
            workflow_digest: digest,
            modules,
            input: request.input,
            priority: request.priority,
            status: RunStatus::Running,
            output: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Start {
                record: Box::new(record),
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

    /// Every durable event of every run, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// Waits until `run` has ended and returns it.
    pub async fn wait(&self, run: RunId) -> Result<RunRecord, EngineError> {
        let mut updates = self.subscribe();
        loop {
            match self.db.run(run)? {
                Some(record) if record.status.is_final() => return Ok(record),
                Some(_) => {}
                None => return Err(EngineError::NotRunning(run)),
            }
            loop {
                match updates.recv().await {
                    Ok(Update { run: r, event }) if r == run && matches!(event.kind, EventKind::RunFinished { .. }) => {
                        break;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Err(EngineError::Stopped),
                }
            }
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
