//! The sandbox: runs one attempt of a task component with nothing granted
//! and every resource capped, and says how it ended.
//!
//! One [`Sandbox`] owns one wasmtime `Engine` (component model, fuel, epoch
//! interruption, pooling allocator), the `Linker` with everything a task
//! may import, a cache of compiled [`Module`]s keyed by digest, and the
//! epoch ticker thread. Every attempt gets a fresh `Store` with:
//!
//! - a fuel budget (`out_of_fuel` when spent);
//! - a memory cap through a `ResourceLimiter` (`memory_limit`);
//! - a wall-clock deadline, checked on every epoch tick for running code
//!   and by a timer around blocking host calls (`timeout`);
//! - a turn on the CPU: guest code runs only while the attempt holds a
//!   token of the CPU gate (`cpu.rs`), handed out fairly among tenants;
//! - WASI 0.2 with no files, environment, arguments or sockets, and
//!   stdout/stderr captured under one byte cap;
//! - `wasi:http` outgoing requests refused unless the step's allow-list
//!   and caps let them through (`http/`).
//!
//! The result is an [`AttemptReport`]: the classified [`Outcome`], fuel
//! used, wall time, the logs, and the kv writes to commit if the attempt
//! succeeded.

mod capture;
pub mod compiled;
mod cpu;
mod error;
mod host;
pub mod http;
mod kv;
mod limits;
mod module;
mod outcome;
pub mod redact;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

pub use capture::{AttemptLogs, Level, LogLine};
pub use error::{LoadError, SandboxError};
pub use host::AttemptContext;
pub use kv::{KvRead, KvWrite, MemoryKv};
pub use limits::{
    DEFAULT_FUEL, DEFAULT_MAX_LOG, DEFAULT_MAX_OUTPUT, DEFAULT_MEMORY, DEFAULT_TIMEOUT, KvLimits, Limits,
    parse_duration, parse_size,
};
pub use module::Module;
pub use outcome::Outcome;

use crate::digest::Digest;
use capture::LogSink;
use cpu::CpuGate;
use host::{GuestLimiter, HostState};
use http::{HttpCall, HttpHooks, HttpPolicy};
use kv::KvBuffer;

/// How a [`Sandbox`] is set up: the ceilings every attempt lives under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Attempts that may run at once; more wait for a slot. Sizes the
    /// pooling allocator.
    pub max_concurrent: u32,
    /// The most memory any attempt may be given (bytes).
    pub max_memory: u64,
    /// How often running guests are checked against their deadline and
    /// yield to other work: timeouts are this precise, and an attempt
    /// waits about this long for a core held by another tenant's.
    pub epoch_tick: Duration,
    /// Attempts whose guest code may run at the same moment, each on a
    /// thread of the async runtime; the rest wait their tenant's turn
    /// (see `cpu.rs`). By default one less than the machine's cores (at
    /// least one), which keeps a core for the scheduler, the store's
    /// writer and HTTP (and a database on the same machine): with every
    /// core running guests, a light run under a flood took twice as long
    /// on two cores (see docs/architecture.md, Fairness).
    pub cpus: usize,
    /// Caps on kv use per attempt.
    pub kv: KvLimits,
    /// Whether tasks may reach loopback, link-local and private addresses
    /// that their step's allow-list names (never otherwise).
    pub allow_private_http: bool,
    /// Where compiled components are kept across restarts, and the most
    /// bytes they may take (`compiled.rs`); `None` keeps them in memory
    /// only.
    pub compiled_cache: Option<(std::path::PathBuf, u64)>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_concurrent: 64,
            max_memory: 1 << 30,
            epoch_tick: Duration::from_millis(1),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            kv: KvLimits::default(),
            allow_private_http: false,
            compiled_cache: None,
        }
    }
}

/// One attempt to run.
pub struct Attempt<'a> {
    /// The step's input, JSON text.
    pub input: &'a str,
    /// What the attempt may consume.
    pub limits: Limits,
    /// Who and where it is, as the task sees through `context`.
    pub context: AttemptContext,
    /// Committed kv state for the task to read.
    pub kv: Arc<dyn KvRead>,
    /// Where it may send HTTP requests, and how much (nothing by default).
    pub http: HttpPolicy,
    /// The secrets its task may read through the `secrets` import.
    pub secrets: Arc<HashMap<String, String>>,
    /// Hides the values of every secret the attempt was given (those above
    /// and those in its HTTP headers) in its report.
    pub redact: redact::Redactor,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptReport {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Fuel consumed, instantiation included.
    pub fuel_used: u64,
    /// Wall time, instantiation included.
    #[serde(with = "duration_micros")]
    pub duration: Duration,
    /// What it logged and printed.
    pub logs: AttemptLogs,
    /// kv writes to commit with the result: empty unless the outcome is
    /// `ok`, since a failed attempt leaves no trace.
    pub kv_writes: Vec<KvWrite>,
    /// Its outbound HTTP requests, refused ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpCall>,
}

/// Runs task attempts in isolation. Cheap to clone; clones share the
/// engine, the module cache and the slots.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    modules: Mutex<HashMap<Digest, Arc<Module>>>,
    disk: Option<compiled::DiskCache>,
    slots: tokio::sync::Semaphore,
    cpu: Arc<CpuGate>,
    config: SandboxConfig,
    _ticker: Ticker,
}

impl Sandbox {
    /// Creates the engine, the linker and the epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        host::link(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let disk = match &config.compiled_cache {
            Some((dir, max_bytes)) => Some(compiled::DiskCache::open(dir, *max_bytes, &engine).map_err(|e| {
                SandboxError::Engine(format!(
                    "the compiled-module cache {} cannot be used: {e}",
                    dir.display()
                ))
            })?),
            None => None,
        };
        let ticker = Ticker::start(engine.clone(), config.epoch_tick);
        let cpu = Arc::new(CpuGate::new(config.cpus, {
            let engine = engine.clone();
            // Every running guest's deadline is the next epoch.
            move || engine.increment_epoch()
        }));
        Ok(Sandbox {
            inner: Arc::new(Inner {
                engine,
                linker,
                modules: Mutex::new(HashMap::new()),
                disk,
                slots: tokio::sync::Semaphore::new(config.max_concurrent as usize),
                cpu,
                config,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Validates and compiles a component, or returns the cached module
    /// with the same digest. Compiling takes from milliseconds to seconds
    /// depending on size; call it off the async executor for large inputs.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<Module>, LoadError> {
        let digest = Digest::of(bytes);
        match self.load_compiled(&digest)? {
            Some(module) => Ok(module),
            None => self.compile_as(digest, bytes),
        }
    }

    /// Validates and compiles a component that [`Sandbox::load_compiled`]
    /// just found neither in memory nor on disk, and keeps it in both.
    pub fn compile(&self, bytes: &[u8]) -> Result<Arc<Module>, LoadError> {
        self.compile_as(Digest::of(bytes), bytes)
    }

    fn compile_as(&self, digest: Digest, bytes: &[u8]) -> Result<Arc<Module>, LoadError> {
        let component = module::compile(&self.inner.engine, bytes)?;
        if let Some(disk) = &self.inner.disk {
            disk.put(&digest, &component);
        }
        self.keep(digest, component)
    }

    /// The module with this digest if it was compiled before: in memory,
    /// or on disk (read, not compiled: milliseconds, and no need for the
    /// component's bytes). `None` when it must be loaded from its bytes.
    /// Blocks while it reads from disk.
    pub fn load_compiled(&self, digest: &Digest) -> Result<Option<Arc<Module>>, LoadError> {
        if let Some(module) = self.cached(digest) {
            return Ok(Some(module));
        }
        let engine = &self.inner.engine;
        match self.inner.disk.as_ref().and_then(|disk| disk.get(engine, digest)) {
            Some(component) => self.keep(*digest, component).map(Some),
            None => Ok(None),
        }
    }

    /// Prepares a compiled component and keeps it in memory.
    fn keep(&self, digest: Digest, component: wasmtime::component::Component) -> Result<Arc<Module>, LoadError> {
        let module = Arc::new(module::prepare(
            &self.inner.engine,
            &self.inner.linker,
            component,
            digest,
        )?);
        let mut modules = self.inner.modules.lock().unwrap_or_else(|e| e.into_inner());
        Ok(modules.entry(digest).or_insert(module).clone())
    }

    /// What the on-disk cache of compiled modules has done, if there is one.
    pub fn compiled_cache(&self) -> Option<&compiled::CacheStats> {
        self.inner.disk.as_ref().map(compiled::DiskCache::stats)
    }

    /// The compiled module with this digest, if loaded before.
    pub fn cached(&self, digest: &Digest) -> Option<Arc<Module>> {
        let modules = self.inner.modules.lock().unwrap_or_else(|e| e.into_inner());
        modules.get(digest).cloned()
    }

    /// Runs one attempt in a fresh store. Waits for a free slot when
    /// `max_concurrent` attempts are already running.
    pub async fn run(&self, module: &Module, attempt: Attempt<'_>) -> Result<AttemptReport, SandboxError> {
        let limits = attempt.limits;
        if limits.memory > self.inner.config.max_memory {
            return Err(SandboxError::LimitTooHigh {
                limit: "memory",
                requested: limits.memory,
                maximum: self.inner.config.max_memory,
            });
        }
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| SandboxError::Host("the sandbox is shutting down".into()))?;

        let logs = LogSink::new(limits.max_log);
        let (mut store, journal) = self.new_store(attempt.http.clone(), &attempt, &logs)?;
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let started = Instant::now();
        // The epoch check catches guests that compute past the deadline;
        // the timer catches guests blocked in a host call (e.g. a sleep),
        // or waiting for a core.
        let guest = async {
            let task = module.pre.instantiate_async(&mut store).await?;
            task.call_run(&mut store, attempt.input).await
        };
        let call = tokio::time::timeout(limits.timeout, self.inner.cpu.run(&attempt.context.tenant, guest)).await;
        let duration = started.elapsed();

        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let outcome = match call {
            Err(_elapsed) => Outcome::Timeout,
            Ok(Ok(returned)) => outcome::returned(
                returned.map_err(|e| (e.code, e.message, e.retryable)),
                limits.max_output,
            ),
            Ok(Err(error)) => {
                if is_pool_exhausted(&error) {
                    return Err(SandboxError::Host(format!("{error:#}")));
                }
                outcome::failed(&error, store.data().limiter.denied)
            }
        };
        let state = store.into_data();
        let kv_writes = if outcome.is_ok() {
            state.kv.into_writes()
        } else {
            Vec::new()
        };
        let mut report = AttemptReport {
            outcome,
            fuel_used,
            duration,
            logs: logs.take(),
            kv_writes,
            http: journal.calls(),
        };
        attempt.redact.report(&mut report);
        Ok(report)
    }

    fn new_store(
        &self,
        http: HttpPolicy,
        attempt: &Attempt<'_>,
        logs: &LogSink,
    ) -> Result<(Store<HostState>, http::Journal), SandboxError> {
        let limits = attempt.limits;
        // Nothing is granted: no preopens, env, args or network; stdin is empty.
        let wasi = WasiCtxBuilder::new()
            .stdout(logs.stdout())
            .stderr(logs.stderr())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory as usize)
            .table_elements(TABLE_ELEMENTS)
            .build();
        let (http_hooks, journal) = HttpHooks::new(http, self.inner.config.allow_private_http, logs.clone());
        let state = HostState {
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks,
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(store_limits),
            context: Arc::new(attempt.context.clone()),
            logs: logs.clone(),
            kv: KvBuffer::new(attempt.kv.clone(), attempt.context.tenant.clone(), self.inner.config.kv),
            secrets: attempt.secrets.clone(),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Compiled code keeps its fuel count in a register and writes it
        // back only at calls, returns and fuel checks, not when it yields
        // at an epoch tick; an attempt cut off at its deadline in a loop
        // that calls nothing would report the fuel of its last call. So
        // the guest also stops every FUEL_FLUSH units (and is polled on
        // at once), which writes the count back.
        store
            .fuel_async_yield_interval(Some(FUEL_FLUSH))
            .map_err(|e| SandboxError::Host(format!("cannot set the fuel interval: {e:#}")))?;
        store
            .set_fuel(limits.fuel)
            .map_err(|e| SandboxError::Host(format!("cannot set fuel: {e:#}")))?;
        Ok((store, journal))
    }
}

/// Fuel between the guest's stops to write its fuel count back: a few
/// milliseconds of computing, so a timed-out attempt's reported fuel is
/// short by at most that, and the stops cost nothing measurable.
const FUEL_FLUSH: u64 = 100_000_000;

/// Table elements an attempt may have (function references); far above
/// what real tasks use, far below what would hurt the host.
const TABLE_ELEMENTS: usize = 1 << 20;

fn engine_config(config: &SandboxConfig) -> Config {
    let slots = config.max_concurrent;
    let mut pool = PoolingAllocationConfig::default();
    // A Rust task instantiates about five core instances (its module plus
    // the shims wit-component adds), with one memory and a few tables.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_memory_size(config.max_memory as usize);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

fn is_pool_exhausted(error: &wasmtime::Error) -> bool {
    error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some()
}

/// Advances the engine's epoch every tick until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Durations in reports are whole microseconds.
mod duration_micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}
