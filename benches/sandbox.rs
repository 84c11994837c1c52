//! Per-attempt overhead of the sandbox on `hello`, next to bare wasmtime
//! measured in the same run.
//!
//!     cargo bench --bench sandbox
//!
//! Baseline: what a plain wasmtime embedding does per call — a default
//! `Engine`, a fresh `Store` with an empty WASI context, instantiate the
//! same component through `InstancePre`, call `run` (typed, synchronous).
//! A second baseline does the same on an engine with the pooling allocator,
//! to show what the limits cost apart from the allocator's gain.
//! weft: `Sandbox::run` with every limit on — fuel, memory limiter, epoch
//! deadline and timer, captured stdout/stderr, kv buffer, context, output
//! check, report. Both loops alternate in rounds; the figure is the median
//! of the rounds' means.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{ComponentType, Lift, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weft::sandbox::{Attempt, Limits, MemoryKv};

const ROUNDS: usize = 7;
const PER_ROUND: u32 = 2_000;
const INPUT: &str = r#"{"name": "bench"}"#;

#[derive(ComponentType, Lift)]
#[component(record)]
#[allow(dead_code)]
struct TaskError {
    code: String,
    message: String,
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

fn main() -> wasmtime::Result<()> {
    let bytes = common::guest_bytes("hello");

    // Bare wasmtime, with its defaults and with the pooling allocator weft
    // uses (which alone makes instantiation cheaper).
    let bare_default = BareWasmtime::new(Engine::default(), &bytes)?;
    let mut pooled = wasmtime::Config::new();
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::pooling());
    let bare_pooled = BareWasmtime::new(Engine::new(&pooled)?, &bytes)?;

    // weft.
    let sandbox = common::sandbox();
    let module = sandbox.load(&bytes).expect("loading hello");
    let kv = Arc::new(MemoryKv::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let weft_attempt = || {
        let attempt = Attempt {
            input: INPUT,
            limits: Limits::default(),
            context: common::context(1),
            kv: kv.clone(),
        };
        let report = runtime.block_on(sandbox.run(&module, attempt)).expect("running hello");
        assert!(report.outcome.is_ok());
    };

    for _ in 0..200 {
        bare_default.attempt()?;
        bare_pooled.attempt()?;
        weft_attempt();
    }
    let (mut bare, mut pool, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(time(|| bare_default.attempt().expect("bare attempt")));
        pool.push(time(|| bare_pooled.attempt().expect("bare pooled attempt")));
        ours.push(time(weft_attempt));
    }
    let (bare, pool, ours) = (median(bare), median(pool), median(ours));
    let ratio = |baseline: Duration| ours.as_secs_f64() / baseline.as_secs_f64();

    println!(
        "sandbox per-attempt cost on `hello` ({ROUNDS} rounds of {PER_ROUND}, median of round means, {} cores)",
        cores()
    );
    println!(
        "  bare wasmtime, defaults (new Store + instantiate + call): {:>7.1} µs",
        micros(bare)
    );
    println!(
        "  bare wasmtime, pooling allocator:                         {:>7.1} µs",
        micros(pool)
    );
    println!(
        "  weft sandbox, all limits on:                              {:>7.1} µs",
        micros(ours)
    );
    println!("  ratio weft / bare defaults:  {:.2}  (target <= 1.30)", ratio(bare));
    println!(
        "  ratio weft / bare pooling:   {:.2}  (the cost of the limits, capture and async alone)",
        ratio(pool)
    );
    Ok(())
}

/// A plain wasmtime embedding of the same component.
struct BareWasmtime {
    engine: Engine,
    pre: wasmtime::component::InstancePre<Bare>,
    run: wasmtime::component::ComponentExportIndex,
}

impl BareWasmtime {
    fn new(engine: Engine, bytes: &[u8]) -> wasmtime::Result<BareWasmtime> {
        let component = wasmtime::component::Component::new(&engine, bytes)?;
        let mut linker: Linker<Bare> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        linker.define_unknown_imports_as_traps(&component)?;
        let pre = linker.instantiate_pre(&component)?;
        let run = component.get_export_index(None, "run").expect("hello exports run");
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
        assert!(result.is_ok());
        Ok(())
    }
}

fn time(mut attempt: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..PER_ROUND {
        attempt();
    }
    started.elapsed() / PER_ROUND
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
