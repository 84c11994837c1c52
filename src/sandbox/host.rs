//! The host side of the task world: the one `bindgen!` over `wit/`, the
//! per-attempt store state, and the `log`, `context` and `kv` imports
//! (`wasi:http` is `http/`).

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::capture::{Level, LogSink};
use super::http::HttpHooks;
use super::kv::{KvBuffer, KvRefusal};

wasmtime::component::bindgen!({
    path: "wit",
    world: "task",
    imports: { "weft:task/kv.get": async },
    exports: { default: async },
});

use self::weft::task::{context, kv, log, secrets, types};

/// The identity of an attempt, as the task sees it through `context`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttemptContext {
    /// The tenant that owns the run; also the kv namespace.
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// The run's id.
    pub run_id: String,
    /// The step's id.
    pub step_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The item's index, for a `for_each` step.
    pub item_index: Option<u32>,
}

/// Everything one attempt's `Store` holds. Built fresh for every attempt
/// and dropped with it.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: HttpHooks,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) context: Arc<AttemptContext>,
    pub(crate) logs: LogSink,
    pub(crate) kv: KvBuffer,
    /// The secrets the step lists, by name.
    pub(crate) secrets: Arc<std::collections::HashMap<String, String>>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Links WASI 0.2, `wasi:http` and the weft interfaces: everything a task
/// may import.
pub(crate) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Task::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

/// `StoreLimits` that remember whether they ever said no, so that a trap
/// after a refused growth can be classified as the memory limit.
pub(crate) struct GuestLimiter {
    limits: StoreLimits,
    pub(crate) denied: bool,
}

impl GuestLimiter {
    pub(crate) fn new(limits: StoreLimits) -> GuestLimiter {
        GuestLimiter { limits, denied: false }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.table_growing(current, desired, maximum)?;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.logs.line(level, &message);
    }
}

impl context::Host for HostState {
    fn current(&mut self) -> context::Info {
        let context = &*self.context;
        context::Info {
            tenant: context.tenant.clone(),
            workflow: context.workflow.clone(),
            run_id: context.run_id.clone(),
            step_id: context.step_id.clone(),
            attempt: context.attempt,
            item_index: context.item_index,
        }
    }
}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> Option<String> {
        self.secrets.get(&name).cloned()
    }
}

impl kv::Host for HostState {
    /// Reads through to the store, which may be across the network:
    /// async, so a slow read waits without holding a thread.
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        self.kv.get(&key).await.map_err(Into::into)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        self.kv.set(key, value).map_err(Into::into)
    }

    fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        self.kv.delete(key).map_err(Into::into)
    }
}

impl From<KvRefusal> for kv::KvError {
    fn from(refusal: KvRefusal) -> Self {
        match refusal {
            KvRefusal::InvalidKey(max) => kv::KvError::InvalidKey(max),
            KvRefusal::ValueTooLarge(max) => kv::KvError::ValueTooLarge(max),
            KvRefusal::TooManyWrites(max) => kv::KvError::TooManyWrites(max),
            KvRefusal::Unavailable(why) => kv::KvError::Unavailable(why),
        }
    }
}
