//! The cost of one outbound HTTP call made by a task, against the same
//! call made by the host itself with reqwest, to the same local server.
//!
//! The task is `misbehave` in its `http_flood` mode: one attempt makes N
//! GETs (then one refused at the cap). One call's cost is the attempt's
//! time less that of the same attempt capped at zero requests, over N. The
//! sandbox opens a connection per request (nothing is shared between
//! requests, let alone attempts), so the baseline is reqwest with its pool
//! off; the pooled figure is shown beside it. Rounds alternate; each
//! figure is the median of the rounds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::json;

use super::report::Report;
use super::{Options, median};
use crate::sandbox::http::{AllowList, HttpLimits, HttpPolicy};
use crate::sandbox::{Attempt, Limits, MemoryKv, Module, Sandbox, SandboxConfig};

/// Measures and reports the HTTP call figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (rounds, calls) = if options.quick { (3, 50) } else { (7, 200) };
    report.section(&format!(
        "http: one outbound call from a task against reqwest in the host ({rounds} rounds of {calls} calls to a local server)"
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Router::new().route("/ping", get(|| async { axum::Json(json!({"pong": true})) }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let sandbox = Sandbox::new(SandboxConfig {
        allow_private_http: true,
        ..SandboxConfig::default()
    })?;
    let module = sandbox.load(&options.module("misbehave")?)?;
    let url = format!("http://{address}/ping");
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let pooled = reqwest::Client::new();

    let (mut task, mut direct, mut reused) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        let empty = flood(&sandbox, &module, address, 0).await?;
        let full = flood(&sandbox, &module, address, calls).await?;
        let from_task = full.saturating_sub(empty) / calls;
        let from_host = time_calls(&fresh, &url, calls).await? / calls;
        let from_pool = time_calls(&pooled, &url, calls).await? / calls;
        // The first round warms every path up and is not counted.
        if round > 0 {
            task.push(from_task);
            direct.push(from_host);
            reused.push(from_pool);
        }
    }
    server.abort();
    let (task, direct, reused) = (median(task), median(direct), median(reused));
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    report.figure(
        "http_call_host_us",
        "reqwest in the host, a new connection per call",
        micros(direct),
        "µs",
    );
    report.figure(
        "http_call_host_pooled_us",
        "reqwest in the host, keep-alive",
        micros(reused),
        "µs",
    );
    report.figure(
        "http_call_task_us",
        "from a task, through every check",
        micros(task),
        "µs",
    );
    report.figure(
        "http_call_overhead_ratio",
        "ratio task / host (both a new connection per call)",
        task.as_secs_f64() / direct.as_secs_f64(),
        "x",
    );
    Ok(())
}

/// One attempt of `misbehave` flooding `address` up to `calls` requests.
async fn flood(sandbox: &Sandbox, module: &Arc<Module>, address: SocketAddr, calls: u32) -> anyhow::Result<Duration> {
    let input = json!({"mode": "http_flood", "url": format!("http://{address}/ping")}).to_string();
    let allow = AllowList::parse(&[format!("http://{address}")]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let attempt = Attempt {
        input: &input,
        limits: Limits::default(),
        context: super::context("flood", 1),
        kv: Arc::new(MemoryKv::new()),
        http: HttpPolicy {
            allow,
            headers: Vec::new(),
            limits: HttpLimits {
                requests: calls,
                ..HttpLimits::default()
            },
        },
        secrets: Default::default(),
        redact: Default::default(),
    };
    let started = Instant::now();
    let report = sandbox.run(module, attempt).await?;
    let took = started.elapsed();
    let made = report.http.iter().filter(|c| c.status == Some(200)).count();
    anyhow::ensure!(
        made == calls as usize,
        "the task made {made} of {calls} calls: {:?}",
        report.outcome
    );
    Ok(took)
}

async fn time_calls(client: &reqwest::Client, url: &str, calls: u32) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..calls {
        let response = client.get(url).send().await?.error_for_status()?;
        response.bytes().await?;
    }
    Ok(started.elapsed())
}
