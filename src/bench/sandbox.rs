//! Per-attempt overhead of the sandbox on `hello`, against bare wasmtime.
//!
//! Baseline: what a plain wasmtime embedding does per call — a default
//! `Engine`, a fresh `Store` with an empty WASI context, instantiate the
//! same component through `InstancePre`, call `run` (typed, synchronous).
//! A second baseline adds the pooling allocator weft uses, to show what
//! the limits cost apart from the allocator's gain. weft: `Sandbox::run`
//! with every limit on — fuel, memory limiter, epoch deadline and timer,
//! captured stdout/stderr, kv buffer, context, output check, report.
//! The loops alternate in rounds; each figure is the median of the rounds'
//! means.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, ComponentType, Lift, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::report::{Report, Target};
use super::{Options, median};
use crate::sandbox::{Attempt, Limits, MemoryKv, Sandbox, SandboxConfig};

const INPUT: &str = r#"{"name": "bench"}"#;

/// Measures and reports the sandbox figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (rounds, per_round) = if options.quick { (3, 500) } else { (7, 2_000) };
    report.section(&format!(
        "sandbox: cost of one attempt of `hello` ({rounds} rounds of {per_round}, median of round means)"
    ));
    let bytes = options.module("hello")?;
    // Timed on a thread of its own, outside the multi-threaded runtime, as
    // a plain embedding would call it.
    let (bare, pooled, ours) = tokio::task::spawn_blocking(move || time_all(&bytes, rounds, per_round)).await??;
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    report.figure(
        "sandbox_bare_us",
        "bare wasmtime (new Store + instantiate + call)",
        micros(bare),
        "µs",
    );
    report.figure(
        "sandbox_bare_pooled_us",
        "bare wasmtime, pooling allocator",
        micros(pooled),
        "µs",
    );
    report.figure("sandbox_weft_us", "weft sandbox, every limit on", micros(ours), "µs");
    report.target(
        "sandbox_overhead_ratio",
        "ratio weft / bare wasmtime",
        ours.as_secs_f64() / bare.as_secs_f64(),
        "x",
        Target::AtMost(1.3),
    );
    report.figure(
        "sandbox_overhead_ratio_pooled",
        "ratio weft / bare pooling (the limits' own cost)",
        ours.as_secs_f64() / pooled.as_secs_f64(),
        "x",
    );
    Ok(())
}

fn time_all(bytes: &[u8], rounds: usize, per_round: u32) -> anyhow::Result<(Duration, Duration, Duration)> {
    let bare_default = BareWasmtime::new(Engine::default(), bytes).map_err(plain)?;
    let mut pooled = wasmtime::Config::new();
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::pooling());
    let bare_pooled = Engine::new(&pooled)
        .and_then(|engine| BareWasmtime::new(engine, bytes))
        .map_err(plain)?;

    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let module = sandbox.load(bytes)?;
    let kv = Arc::new(MemoryKv::new());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let weft_attempt = || -> anyhow::Result<()> {
        let attempt = Attempt {
            input: INPUT,
            limits: Limits::default(),
            context: super::context("hello", 1),
            kv: kv.clone(),
            http: Default::default(),
            secrets: Default::default(),
            redact: Default::default(),
        };
        let report = runtime.block_on(sandbox.run(&module, attempt))?;
        anyhow::ensure!(report.outcome.is_ok(), "hello did not succeed: {:?}", report.outcome);
        Ok(())
    };

    for _ in 0..per_round / 10 {
        bare_default.attempt().map_err(plain)?;
        bare_pooled.attempt().map_err(plain)?;
        weft_attempt()?;
    }
    let (mut bare, mut pool, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare.push(time(per_round, || bare_default.attempt().map_err(plain))?);
        pool.push(time(per_round, || bare_pooled.attempt().map_err(plain))?);
        ours.push(time(per_round, weft_attempt)?);
    }
    Ok((median(bare), median(pool), median(ours)))
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct TaskError {
    #[allow(dead_code)]
    code: String,
    #[allow(dead_code)]
    message: String,
    #[allow(dead_code)]
    retryable: bool,
}

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A plain wasmtime embedding of the same component.
struct BareWasmtime {
    engine: Engine,
    pre: wasmtime::component::InstancePre<Bare>,
    run: wasmtime::component::ComponentExportIndex,
}

impl BareWasmtime {
    fn new(engine: Engine, bytes: &[u8]) -> wasmtime::Result<BareWasmtime> {
        let component = Component::new(&engine, bytes)?;
        let mut linker: Linker<Bare> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        stub_weft_imports(&engine, &component, &mut linker)?;
        let pre = linker.instantiate_pre(&component)?;
        let Some(run) = component.get_export_index(None, "run") else {
            wasmtime::bail!("the component exports no `run`");
        };
        Ok(BareWasmtime { engine, pre, run })
    }

    fn attempt(&self) -> wasmtime::Result<()> {
        let mut store = Store::new(
            &self.engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        let instance = self.pre.instantiate(&mut store)?;
        let run = instance.get_typed_func::<(&str,), (Result<String, TaskError>,)>(&mut store, &self.run)?;
        let (result,) = run.call(&mut store, (INPUT,))?;
        wasmtime::ensure!(result.is_ok(), "hello did not succeed");
        Ok(())
    }
}

/// Defines the component's `weft:task` functions as traps (`hello` calls
/// none of them). `define_unknown_imports_as_traps` would do it, but it
/// also stubs what a WASI interface re-exports from another (the `error`
/// of `wasi:io/streams`) when the component imports a newer WASI 0.2 than
/// the linker names, and then the types no longer match.
fn stub_weft_imports(engine: &Engine, component: &Component, linker: &mut Linker<Bare>) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if !name.starts_with("weft:task/") {
            continue;
        }
        let mut stubs = linker.instance(name)?;
        for (function, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let what = format!("{name}#{function}");
                stubs.func_new(function, move |_, _, _, _| {
                    wasmtime::bail!("{what} is not linked in the bare baseline")
                })?;
            }
        }
    }
    Ok(())
}

/// wasmtime's error as ours.
fn plain(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}

fn time(per_round: u32, mut attempt: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..per_round {
        attempt()?;
    }
    Ok(started.elapsed() / per_round)
}
