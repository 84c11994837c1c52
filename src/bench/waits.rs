//! Waits on a server: resident memory per sleeping run, and the delay
//! between a signal's acknowledgement and its step's completion as a
//! client following the run sees it.
//!
//! Memory is measured as for pending runs (`backlog.rs`): the resident
//! set of `weft serve` after `n` runs of a one-hour `sleep` have started
//! and begun waiting, less before, per run. A sleeping run holds no slot;
//! past the hot-run limit it is parked (kept in the store, a timer in
//! memory). The signal figure follows each run's event stream (SSE): the
//! signal's answer comes once its step's completion is durable, so the
//! delay is the time for that completion to reach a follower; the
//! baseline is the signal's own round trip.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::json;

use super::machine::resident_bytes;
use super::report::{Report, Target};
use super::server::{Server, UNLIMITED};
use super::{Options, median};

const NAP: &str = "name: nap\nsteps:\n  - {id: nap, sleep: 1h}\n";

const SIGNALLED: &str = "name: signalled\nsteps:\n  - {id: go, wait_for: {signal: go}}\n";

/// Measures and reports both figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    memory(options, report).await?;
    signals(options, report).await
}

async fn memory(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let sleeping = if options.quick { 10_000 } else { 100_000 };
    report.section(&format!(
        "waits: resident set of `weft serve` with {sleeping} runs asleep"
    ));
    let dir = options.scratch()?;
    let server = Server::start(&options.weft, dir.path(), &[]).await?;
    let token = server.tenant("bench", UNLIMITED).await?;
    server.push(&token, "nap", NAP).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_bytes(server.pid()).context("cannot read the server's resident memory")?;
    let server = std::sync::Arc::new(server);
    let token: std::sync::Arc<str> = token.into();
    let mut submitters = tokio::task::JoinSet::new();
    const SUBMITTERS: usize = 64;
    for submitter in 0..SUBMITTERS {
        let (server, token) = (server.clone(), token.clone());
        let share = sleeping / SUBMITTERS + usize::from(submitter < sleeping % SUBMITTERS);
        submitters.spawn(async move {
            for _ in 0..share {
                server.start_run(&token, "nap", &json!({}), false).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = submitters.join_next().await {
        done??;
    }
    // Every run's start is durable; its wait begins in the next commit.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after = resident_bytes(server.pid()).context("cannot read the server's resident memory")?;
    report.figure(
        "rss_idle_waits_server_bytes",
        "resident memory of the server, nothing asleep",
        before as f64,
        "B",
    );
    report.target(
        "rss_per_sleeping_run_bytes",
        "resident memory per sleeping run",
        after.saturating_sub(before) as f64 / sleeping as f64,
        "B",
        Target::AtMost(1024.0),
    );
    report.note("sleeping_runs", json!(sleeping));
    std::sync::Arc::try_unwrap(server)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .kill()
        .await
}

async fn signals(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let runs = if options.quick { 50 } else { 300 };
    report.section(&format!(
        "waits: {runs} signals, from acknowledgement to the step's completion on the run's event stream"
    ));
    let dir = options.scratch()?;
    let server = Server::start(&options.weft, dir.path(), &[]).await?;
    let token = server.tenant("bench", UNLIMITED).await?;
    server.push(&token, "signalled", SIGNALLED).await?;
    let (mut delays, mut round_trips) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let run = server.start_run(&token, "signalled", &json!({}), false).await?;
        let id = run["id"].as_u64().context("a start without an id")?;
        let (ack, done, sent) = signal_once(&server, &token, id).await?;
        round_trips.push(ack - sent);
        delays.push(done.saturating_duration_since(ack));
    }
    round_trips.sort();
    delays.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = |samples: &[Duration]| samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    report.figure(
        "signal_round_trip_p50_ms",
        "baseline: a signal's POST, sent to answered (durable), p50",
        ms(median(round_trips)),
        "ms",
    );
    report.target(
        "signal_p50_ms",
        "signal answered to its step's completion seen on the stream, p50",
        ms(median(delays.clone())),
        "ms",
        Target::AtMost(50.0),
    );
    report.target(
        "signal_p99_ms",
        "signal answered to its step's completion seen on the stream, p99",
        ms(p99(&delays)),
        "ms",
        Target::AtMost(200.0),
    );
    server.kill().await
}

/// Follows run `id`'s events, sends its signal once it waits, and returns
/// when the answer came, when the step's completion came on the stream,
/// and when the signal was sent.
async fn signal_once(server: &Server, token: &str, id: u64) -> anyhow::Result<(Instant, Instant, Instant)> {
    let response = server
        .http
        .get(format!("{}/v1/runs/{id}/events", server.url))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .send()
        .await?;
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let mut sent = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .with_context(|| format!("run {id}: no event within 30 s"))?;
        let Some(chunk) = chunk else {
            bail!("run {id}: the event stream ended early")
        };
        text.push_str(&String::from_utf8_lossy(&chunk?));
        if sent.is_none() && text.contains("event: waiting") {
            let at = Instant::now();
            let answer = server
                .http
                .post(format!("{}/v1/runs/{id}/signals/go", server.url))
                .bearer_auth(token)
                .json(&json!({"ok": true}))
                .send()
                .await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "run {id}: the signal was answered {}",
                answer.status()
            );
            sent = Some((at, Instant::now()));
        }
        if let Some((at, ack)) = sent
            && text.contains("event: step_finished")
        {
            return Ok((ack, Instant::now(), at));
        }
    }
}
