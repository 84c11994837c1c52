//! The seam between the scheduler and the sandbox: a [`Runner`] runs one
//! attempt. The real one loads the pinned module and runs it in the
//! sandbox; tests use a fake that answers from a script.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::digest::Digest;
use crate::sandbox::KvRead;
use crate::sandbox::{Attempt, AttemptContext, AttemptReport, Limits, Sandbox};
use crate::store::Store;

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
    store: Arc<dyn Store>,
    kv: Arc<StoreKv>,
}

impl SandboxRunner {
    /// A runner over `sandbox` that reads modules and kv from `store`.
    pub fn new(sandbox: Sandbox, store: Arc<dyn Store>) -> SandboxRunner {
        SandboxRunner {
            sandbox,
            kv: Arc::new(StoreKv(store.clone())),
            store,
        }
    }
}

/// The sandbox's kv reads, answered by the store.
struct StoreKv(Arc<dyn Store>);

#[async_trait::async_trait]
impl KvRead for StoreKv {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.kv_get(tenant, key).await.map_err(|e| e.to_string())
    }
}

impl Runner for SandboxRunner {
    fn run(&self, request: AttemptRequest) -> RunFuture {
        let sandbox = self.sandbox.clone();
        let store = self.store.clone();
        let kv: Arc<dyn KvRead> = self.kv.clone();
        Box::pin(async move {
            let module = match sandbox.cached(&request.module) {
                Some(module) => module,
                None => {
                    let bytes = store
                        .module(&request.context.tenant, &request.module)
                        .await
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
