//! A server with a backlog: resident memory per pending run, and the time
//! a restart takes to resume every interrupted run.
//!
//! The server gets one attempt slot, held by a task that sleeps, so every
//! run started after it waits in the queue: started and durable, with
//! nothing run yet. Memory is the server's resident set (`VmRSS`) after
//! the backlog is queued, less before, per run. Recovery SIGKILLs that
//! server and times a new one from spawning the process to it listening,
//! which it does only once every unfinished run is back in its scheduler;
//! the baseline is the same start over an empty store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::machine::resident_bytes;
use super::report::{Report, Target};
use super::server::{Server, UNLIMITED};
use super::{ONE_STEP, Options};

/// The runs recovery resumes.
const INTERRUPTED: usize = 10_000;

const BLOCKER: &str = "name: blocker\nsteps:
  - {id: hold, task: misbehave, timeout: 1h, input: {mode: sleep, ms: 3600000}}
";

/// Measures and reports resident memory per pending run.
pub async fn memory(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let pending = if options.quick { 10_000 } else { 100_000 };
    report.section(&format!(
        "memory: resident set of `weft serve` with {pending} runs queued behind a busy slot"
    ));
    let dir = options.scratch()?;
    let (server, token) = backlogged_server(options, dir.path()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_bytes(server.pid()).context("cannot read the server's resident memory")?;
    let server = queue(server, &token, pending).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = resident_bytes(server.pid()).context("cannot read the server's resident memory")?;
    report.figure(
        "rss_idle_server_bytes",
        "resident memory of the server, nothing queued",
        before as f64,
        "B",
    );
    report.figure(
        "rss_backlog_server_bytes",
        &format!("resident memory with {pending} runs queued"),
        after as f64,
        "B",
    );
    report.target(
        "rss_per_pending_run_bytes",
        "resident memory per pending run",
        after.saturating_sub(before) as f64 / pending as f64,
        "B",
        Target::AtMost(1024.0),
    );
    report.note("pending_runs", json!(pending));
    let store = std::fs::metadata(dir.path().join(crate::store::redb::STORE_FILE)).map_or(0, |m| m.len());
    report.figure(
        "store_bytes_per_pending_run",
        "store file size per pending run (on disk, for scale)",
        store as f64 / pending as f64,
        "B",
    );
    server.kill().await
}

/// Measures and reports the time to resume interrupted runs.
pub async fn recovery(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    report.section(&format!(
        "recovery: `weft serve` restarted after SIGKILL with {INTERRUPTED} runs in flight"
    ));
    let empty = options.scratch()?;
    let baseline = Server::start(&options.weft, empty.path(), &[]).await?;
    let baseline_s = baseline.started_in.as_secs_f64();
    baseline.kill().await?;

    let dir = options.scratch()?;
    let (server, token) = backlogged_server(options, dir.path()).await?;
    queue(server, &token, INTERRUPTED).await?.kill().await?;
    let restarted = Server::start(&options.weft, dir.path(), &["--max-concurrent-attempts", "1"]).await?;
    anyhow::ensure!(
        restarted.resumed > INTERRUPTED,
        "the restarted server resumed {} runs, not the {} interrupted",
        restarted.resumed,
        INTERRUPTED + 1
    );
    report.figure(
        "start_empty_s",
        "process start to listening, empty store",
        baseline_s,
        "s",
    );
    report.target(
        "resume_10k_s",
        &format!("process start to {} runs resumed and listening", restarted.resumed),
        restarted.started_in.as_secs_f64(),
        "s",
        Target::AtMost(2.0),
    );
    report.note("resumed_runs", json!(restarted.resumed));
    restarted.kill().await
}

/// A server on `data` whose one attempt slot is held by a sleeping task,
/// with a tenant that can run `one`; returns it and the tenant's key.
async fn backlogged_server(options: &Options, data: &std::path::Path) -> anyhow::Result<(Server, String)> {
    let server = Server::start(&options.weft, data, &["--max-concurrent-attempts", "1"]).await?;
    let token = server.tenant("bench", UNLIMITED).await?;
    for module in ["hello", "misbehave"] {
        server.upload(&token, module, options.module(module)?).await?;
    }
    server.push(&token, "one", ONE_STEP).await?;
    server.push(&token, "blocker", BLOCKER).await?;
    server.start_run(&token, "blocker", &json!({}), false).await?;
    Ok((server, token))
}

/// Starts `n` runs of `one`, 64 requests at a time, and returns the server
/// once every one is durable.
async fn queue(server: Server, token: &str, n: usize) -> anyhow::Result<Server> {
    const SUBMITTERS: usize = 64;
    let server = Arc::new(server);
    let token: Arc<str> = token.into();
    let mut submitters = tokio::task::JoinSet::new();
    for submitter in 0..SUBMITTERS {
        let (server, token) = (server.clone(), token.clone());
        let share = n / SUBMITTERS + usize::from(submitter < n % SUBMITTERS);
        submitters.spawn(async move {
            for _ in 0..share {
                server.start_run(&token, "one", &json!({}), false).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = submitters.join_next().await {
        done??;
    }
    Arc::try_unwrap(server).map_err(|_| anyhow::anyhow!("the server is still shared"))
}
