//! A module's first attempt after a restart, with the compiled-module
//! cache on disk (`crate::sandbox::compiled`) and without it.
//!
//! Each figure is one restart: a fresh `Sandbox` (a new wasmtime engine,
//! nothing in memory, as a new process has) loads the component as a
//! server's runner does (by digest from the cache, else from its bytes)
//! and runs one attempt. Without the cache the load compiles it; with it, the load
//! reads what an earlier sandbox wrote to the cache directory. The median
//! of a few restarts is reported (a quick run compiles a Python task only
//! once: that takes seconds). Done for `hello` (a small Rust task) and,
//! when given (`--python-module`), a Python task, whose component carries
//! an interpreter: that is where compiling costs seconds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::{Report, Target};
use super::{Options, median};
use crate::digest::Digest;
use crate::sandbox::{Attempt, Limits, MemoryKv, Sandbox, SandboxConfig};

/// Measures and reports the figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let restarts = if options.quick { 3 } else { 5 };
    report.section(&format!(
        "compiled modules: first attempt after a restart, with and without the on-disk cache (median of {restarts})"
    ));
    let hello = options.module("hello")?;
    let dir = options.scratch()?;
    let (cached, uncached) = first_attempts(&hello, r#"{"name": "bench"}"#, dir.path(), restarts, restarts).await?;
    report.figure("hello_first_attempt_uncached_ms", "hello, compiled", ms(uncached), "ms");
    report.figure(
        "hello_first_attempt_cached_ms",
        "hello, read from the cache",
        ms(cached),
        "ms",
    );
    match &options.python_module {
        Some(path) => {
            let python = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let dir = options.scratch()?;
            let compiles = if options.quick { 1 } else { 3 };
            let (cached, uncached) =
                first_attempts(&python, r#"{"name": "bench"}"#, dir.path(), restarts, compiles).await?;
            report.figure(
                "python_first_attempt_uncached_ms",
                &format!("Python task ({} MiB), compiled", python.len() >> 20),
                ms(uncached),
                "ms",
            );
            report.target(
                "python_first_attempt_cached_ms",
                "Python task, read from the cache",
                ms(cached),
                "ms",
                Target::AtMost(50.0),
            );
        }
        None => {
            let reason = "no Python component given (--python-module FILE; build one with guest-sdk/python)";
            report.skipped("python_first_attempt_cached_ms", reason);
            report.note("python_first_attempt_uncached_ms", serde_json::json!(reason));
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median first attempt of `restarts` fresh sandboxes reading the
/// cache in `dir`, and of `compiles` compiling (the first of which fills
/// the cache, as a server's upload does: a Python task's compile takes
/// seconds, so the quick bench compiles it once).
async fn first_attempts(
    bytes: &[u8],
    input: &str,
    dir: &Path,
    restarts: usize,
    compiles: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let cache = Some((dir.to_path_buf(), 4 << 30));
    let mut uncached = vec![first_attempt(cache.clone(), bytes, input).await?];
    let mut cached = Vec::new();
    for round in 0..restarts.max(compiles) {
        if round < restarts {
            cached.push(first_attempt(cache.clone(), bytes, input).await?);
        }
        if round + 1 < compiles {
            uncached.push(first_attempt(None, bytes, input).await?);
        }
    }
    Ok((median(cached), median(uncached)))
}

/// A fresh sandbox's load and first attempt, timed (not the sandbox's
/// own start, which a server does before it listens).
async fn first_attempt(
    cache: Option<(std::path::PathBuf, u64)>,
    bytes: &[u8],
    input: &str,
) -> anyhow::Result<Duration> {
    let sandbox = Sandbox::new(SandboxConfig {
        compiled_cache: cache,
        ..SandboxConfig::default()
    })?;
    // A server knows the digest from the run's plan, and reads the
    // component's bytes only when it was not compiled before.
    let digest = Digest::of(bytes);
    let owned = bytes.to_vec();
    let started = Instant::now();
    let loader = sandbox.clone();
    let module = tokio::task::spawn_blocking(move || match loader.load_compiled(&digest)? {
        Some(module) => Ok(module),
        None => loader.compile(&owned),
    })
    .await??;
    let report = sandbox
        .run(
            &module,
            Attempt {
                input,
                limits: Limits::default(),
                context: super::context("first", 1),
                kv: Arc::new(MemoryKv::new()),
                http: Default::default(),
                secrets: Default::default(),
                redact: Default::default(),
            },
        )
        .await?;
    anyhow::ensure!(report.outcome.is_ok(), "the first attempt failed: {:?}", report.outcome);
    Ok(started.elapsed())
}
