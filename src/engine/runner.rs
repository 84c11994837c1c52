//! The seam between the scheduler and the sandbox: a [`Runner`] runs one
//! attempt. The real one loads the pinned module and runs it in the
//! sandbox; tests use a fake that answers from a script.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::db::Db;
use crate::digest::Digest;
use crate::sandbox::{Attempt, AttemptContext, AttemptReport, Limits, Sandbox};

/// One attempt to run.
#[derive(Debug, Clone)]
pub struct AttemptRequest {
    /// The exact module.
    pub module: Digest,
    /// The input, JSON text.
    pub input: String,
    /// Its limits.
    pub limits: Limits,
    /// Who and where.
    pub context: AttemptContext,
}

/// Why an attempt could not be run at all (not the task's doing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunnerError {
    /// What went wrong.
    pub message: String,
}

/// The future a runner returns.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<AttemptReport, RunnerError>> + Send>>;

/// Runs attempts.
pub trait Runner: Send + Sync + 'static {
    /// Runs one attempt to its end.
    fn run(&self, request: AttemptRequest) -> RunFuture;
}

/// Runs attempts in the sandbox, loading modules from the store.
pub struct SandboxRunner {
    sandbox: Sandbox,
    db: Db,
    kv: Arc<Db>,
}

impl SandboxRunner {
    /// A runner over `sandbox` that reads modules and kv from `db`.
    pub fn new(sandbox: Sandbox, db: Db) -> SandboxRunner {
        SandboxRunner {
            sandbox,
            kv: Arc::new(db.clone()),
            db,
        }
    }
}

impl Runner for SandboxRunner {
    fn run(&self, request: AttemptRequest) -> RunFuture {
        let sandbox = self.sandbox.clone();
        let db = self.db.clone();
        let kv = self.kv.clone();
        Box::pin(async move {
            let module = match sandbox.cached(&request.module) {
                Some(module) => module,
                None => {
                    let bytes = db
                        .module(&request.module)
                        .map_err(|e| RunnerError { message: e.to_string() })?
                        .ok_or_else(|| RunnerError {
                            message: format!("module {} is not stored", request.module),
                        })?;
                    // Compiling takes milliseconds to seconds: off the executor.
                    let loader = sandbox.clone();
                    tokio::task::spawn_blocking(move || loader.load(&bytes))
                        .await
                        .map_err(|e| RunnerError { message: e.to_string() })?
                        .map_err(|e| RunnerError { message: e.to_string() })?
                }
            };
            let attempt = Attempt {
                input: &request.input,
                limits: request.limits,
                context: request.context,
                kv,
            };
            sandbox
                .run(&module, attempt)
                .await
                .map_err(|e| RunnerError { message: e.to_string() })
        })
    }
}
