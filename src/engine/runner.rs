//! The seam between the scheduler and the sandbox: a [`Runner`] runs one
//! attempt. The real one loads the pinned module and runs it in the
//! sandbox; tests use a fake that answers from a script.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::digest::Digest;
use crate::sandbox::http::{HttpPolicy, InjectedHeaders};
use crate::sandbox::redact::Redactor;
use crate::sandbox::{Attempt, AttemptContext, AttemptLogs, AttemptReport, KvRead, Limits, Module, Outcome, Sandbox};
use crate::spec::{Piece, StepHttp};
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
    /// Where it may send HTTP requests, with the step's header templates.
    pub http: Arc<StepHttp>,
    /// The secrets its task may read.
    pub secrets: Vec<String>,
}

/// Where the runner gets the values of a tenant's secrets.
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync + 'static {
    /// The values of `names` for `tenant`, or what is wrong (a name that
    /// is not set is an error naming it).
    async fn reveal(&self, tenant: &str, names: &[String]) -> Result<HashMap<String, String>, String>;
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
    secrets: Option<Arc<dyn SecretSource>>,
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
            secrets: None,
        }
    }

    /// Gives attempts the secrets their steps use from `secrets`; without
    /// it, a step that uses one fails `secret_missing`.
    pub fn with_secrets(mut self, secrets: Arc<dyn SecretSource>) -> SandboxRunner {
        self.secrets = Some(secrets);
        self
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
        let secrets = self.secrets.clone();
        Box::pin(async move {
            let module = match sandbox.cached(&request.module) {
                Some(module) => module,
                None => load_once(&loading, &sandbox, &*store, &request).await?,
            };
            let (mut policy, readable, redact) = match prepare(secrets.as_deref(), &request).await {
                Ok(prepared) => prepared,
                Err(refusal) => return Ok(refusal),
            };
            if !policy.allow.is_empty() {
                within_quotas(&*store, &request.context.tenant, &mut policy).await?;
            }
            let attempt = Attempt {
                input: &request.input,
                limits: request.limits,
                context: request.context,
                kv,
                http: policy,
                secrets: Arc::new(readable),
                redact,
            };
            sandbox
                .run(&module, attempt)
                .await
                .map_err(|e| RunnerError { message: e.to_string() })
        })
    }
}

/// Lowers a step's HTTP policy to its tenant's quotas as they are now:
/// checked when the workflow was pushed, they may have narrowed since
/// (`PATCH /v1/admin/tenants/{id}`). A tenant with no record (`weft run`'s
/// `local`) has no quotas to apply.
async fn within_quotas(store: &dyn Store, tenant: &str, policy: &mut HttpPolicy) -> Result<(), RunnerError> {
    let record = store.tenant(tenant).await.map_err(|e| RunnerError {
        message: format!("cannot read tenant {tenant:?}'s quotas: {e}"),
    })?;
    if let Some(record) = record {
        let quotas = record.quotas;
        // Parsed when the quotas were set; a list that no longer parses
        // allows nothing.
        let cap = crate::sandbox::http::AllowList::parse(&quotas.http_allow).unwrap_or_default();
        policy.allow = policy.allow.inside(&cap);
        policy.limits.requests = policy.limits.requests.min(quotas.max_http_requests);
        policy.limits.sent = policy.limits.sent.min(quotas.max_http_sent);
        policy.limits.received = policy.limits.received.min(quotas.max_http_received);
    }
    Ok(())
}

/// The attempt's HTTP policy with its headers' secrets filled in, the
/// secrets its task may read, and what to redact; or, when a secret cannot
/// be had, the attempt's report: failed, `secret_missing`, not retried.
async fn prepare(
    source: Option<&dyn SecretSource>,
    request: &AttemptRequest,
) -> Result<(HttpPolicy, HashMap<String, String>, Redactor), AttemptReport> {
    let mut names: Vec<String> = request.http.secrets().map(str::to_string).collect();
    names.extend(request.secrets.iter().cloned());
    names.sort();
    names.dedup();
    let values = match (names.is_empty(), source) {
        (true, _) => HashMap::new(),
        (false, None) => return Err(secret_missing("this server keeps no secrets".into())),
        (false, Some(source)) => source
            .reveal(&request.context.tenant, &names)
            .await
            .map_err(secret_missing)?,
    };
    let mut headers = Vec::with_capacity(request.http.headers.len());
    for rule in &request.http.headers {
        let mut text = String::new();
        for piece in &rule.value {
            match piece {
                Piece::Text(part) => text.push_str(part),
                Piece::Secret(name) => text.push_str(values.get(name).map_or("", String::as_str)),
            }
        }
        let mut value = http::HeaderValue::from_str(&text).map_err(|_| {
            secret_missing(format!(
                "the {} header cannot hold the value of its secret (a secret in a header must be visible ASCII)",
                rule.name
            ))
        })?;
        value.set_sensitive(true);
        headers.push(InjectedHeaders {
            on: rule.on.clone(),
            headers: vec![(rule.name.clone(), value)],
        });
    }
    let policy = HttpPolicy {
        allow: request.http.allow.clone(),
        headers,
        limits: request.http.limits,
    };
    let redact = Redactor::new(values.values().map(String::as_str));
    let readable = request
        .secrets
        .iter()
        .filter_map(|name| values.get(name).map(|value| (name.clone(), value.clone())))
        .collect();
    Ok((policy, readable, redact))
}

fn secret_missing(message: String) -> AttemptReport {
    AttemptReport {
        outcome: Outcome::GuestError {
            code: "secret_missing".into(),
            message,
            retryable: false,
        },
        fuel_used: 0,
        duration: std::time::Duration::ZERO,
        logs: AttemptLogs::default(),
        kv_writes: Vec::new(),
        http: Vec::new(),
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
            // Compiled before (by this node or, on disk, before a restart):
            // the component's bytes are not even read from the store.
            let loader = sandbox.clone();
            let digest = request.module;
            let compiled = tokio::task::spawn_blocking(move || loader.load_compiled(&digest))
                .await
                .map_err(|e| RunnerError { message: e.to_string() })?
                .map_err(|e| RunnerError { message: e.to_string() })?;
            if let Some(module) = compiled {
                return Ok(module);
            }
            let bytes = store
                .module(&request.context.tenant, &request.module)
                .await
                .map_err(|e| RunnerError { message: e.to_string() })?
                .ok_or_else(|| RunnerError {
                    message: format!("module {} is not stored", request.module),
                })?;
            // Compiling takes milliseconds to seconds: off the executor.
            let loader = sandbox.clone();
            let module = tokio::task::spawn_blocking(move || loader.compile(&bytes))
                .await
                .map_err(|e| RunnerError { message: e.to_string() })?
                .map_err(|e| RunnerError { message: e.to_string() })?;
            if module.digest() != request.module {
                return Err(RunnerError {
                    message: format!(
                        "the store's bytes for module {} hash to {}: it is damaged",
                        request.module,
                        module.digest()
                    ),
                });
            }
            Ok(module)
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
