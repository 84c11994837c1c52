//! The seam between the scheduler and the sandbox: a [`Runner`] runs one
//! attempt. The real one loads the pinned module and runs it in the
//! sandbox; tests use a fake that answers from a script.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::digest::Digest;
use crate::sandbox::KvRead;
use crate::sandbox::{Attempt, AttemptContext, AttemptReport, Limits, Module, Sandbox};
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
    loading: Arc<Loading>,
}

/// A module being read and compiled, shared by every attempt that needs
/// it meanwhile: the first attempts of a new module would otherwise each
/// compile it (64 at once took seconds on two cores).
type Loading = Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<Result<Arc<Module>, RunnerError>>>>>;

impl SandboxRunner {
    /// A runner over `sandbox` that reads modules and kv from `store`.
    pub fn new(sandbox: Sandbox, store: Arc<dyn Store>) -> SandboxRunner {
        SandboxRunner {
            sandbox,
            kv: Arc::new(StoreKv(store.clone())),
            store,
            loading: Arc::default(),
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
        let loading = self.loading.clone();
        Box::pin(async move {
            let module = match sandbox.cached(&request.module) {
                Some(module) => module,
                None => load_once(&loading, &sandbox, &*store, &request).await?,
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

/// Reads and compiles `request`'s module, once however many attempts ask
/// for it at the same time.
async fn load_once(
    loading: &Loading,
    sandbox: &Sandbox,
    store: &dyn Store,
    request: &AttemptRequest,
) -> Result<Arc<Module>, RunnerError> {
    let cell = loading
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(request.module)
        .or_default()
        .clone();
    let loaded = cell
        .get_or_init(|| async {
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
                .map_err(|e| RunnerError { message: e.to_string() })
        })
        .await
        .clone();
    // Compiled modules live in the sandbox's cache; a failure is tried
    // afresh by the next attempt.
    loading
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&request.module);
    loaded
}
