//! Fairness among tenants on a cluster: the fairness section's figure
//! (`fairness.rs`) with two `weft serve` nodes on one PostgreSQL instead
//! of one engine in process, over HTTP.
//!
//! The heavy tenant keeps [`FLOOD`] runs unfinished across both nodes,
//! each one attempt of `misbehave` burning about 40 ms of CPU (the
//! iterations calibrated on this machine first), so both nodes hold every
//! slot it may and have more queued. The light tenant starts the `hello`
//! 1-step workflow with `?wait`, one run at a time, on the nodes in turn;
//! the figure is the median from request to answer (durable end), and the
//! ratio the one under the flood over the one idle. Both nodes share this
//! machine's cores with the database, so the ratio bounds what each
//! node's fair queue gives a light tenant while its cores are busy, not
//! how a larger cluster spreads load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use super::fairness::{FLOOD, calibrate};
use super::report::{Report, Target};
use super::server::{Server, UNLIMITED};
use super::{ONE_STEP, Options};
use crate::sandbox::{Sandbox, SandboxConfig};

/// The heavy tenant's workflow, within a server's default fuel cap.
const HEAVY: &str = "name: burn\nsteps:
  - id: burn
    task: misbehave
    limits: {fuel: 10000000000}
    input: {mode: burn, iterations: '${{ input.iterations }}'}
";

/// The nodes [`measure`] wants.
pub(super) const NODES: usize = 2;

/// Measures and reports the cluster's fairness figures on `nodes` (fresh
/// ones, on a database of their own), whose tenant `token` can run
/// `misbehave`.
pub(super) async fn measure(
    options: &Options,
    nodes: &[Arc<Server>],
    token: &Arc<str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let samples = if options.quick { 12 } else { 40 };
    let iterations = calibrate(&Sandbox::new(SandboxConfig::default())?, &options.module("misbehave")?).await?;
    let (idle, flooded) = latency(options, nodes, token, iterations, samples).await?;
    report.figure(
        "cluster_fairness_idle_ms",
        &format!("{NODES} nodes: light tenant's 1-step run, idle (median of {samples})"),
        idle.as_secs_f64() * 1e3,
        "ms",
    );
    report.figure(
        "cluster_fairness_flooded_ms",
        &format!("{NODES} nodes: the same while another tenant keeps {FLOOD} CPU-bound runs going"),
        flooded.as_secs_f64() * 1e3,
        "ms",
    );
    report.target(
        "cluster_fairness_ratio",
        &format!("{NODES} nodes: ratio flooded / idle"),
        flooded.as_secs_f64() / idle.as_secs_f64(),
        "x",
        Target::AtMost(5.0),
    );
    Ok(())
}

/// The light tenant's median latency idle, then under the flood.
async fn latency(
    options: &Options,
    nodes: &[Arc<Server>],
    token: &Arc<str>,
    iterations: u64,
    samples: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let first = &nodes[0];
    let light: Arc<str> = first.tenant("light", UNLIMITED).await?.into();
    first.upload(&light, "hello", options.module("hello")?).await?;
    first.push(&light, "one", ONE_STEP).await?;
    first.push(token, "burn", HEAVY).await?;
    // Compiles `hello` on each node and warms the caches.
    for _ in 0..3 {
        for node in nodes {
            node.start_run(&light, "one", &json!({}), true).await?;
        }
    }
    let idle = median(nodes, &light, samples).await?;

    let flooding = Arc::new(AtomicBool::new(true));
    let flood = tokio::spawn(flood(nodes.to_vec(), token.clone(), iterations, flooding.clone()));
    // The flood is in place once its first attempts (which compile
    // `misbehave` on each node) are done and the queues are full.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let flooded = median(nodes, &light, samples).await;
    flooding.store(false, Ordering::Relaxed);
    flood.await??;
    Ok((idle, flooded?))
}

/// The median time of `samples` light runs, on the nodes in turn.
async fn median(nodes: &[Arc<Server>], token: &str, samples: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let began = Instant::now();
        let run = nodes[i % nodes.len()].start_run(token, "one", &json!({}), true).await?;
        anyhow::ensure!(run["status"] == "succeeded", "the light run did not succeed: {run}");
        times.push(began.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Keeps [`FLOOD`] heavy runs unfinished, on the nodes in turn, until
/// `flooding` is cleared; the runs still going are left to the nodes.
async fn flood(
    nodes: Vec<Arc<Server>>,
    token: Arc<str>,
    iterations: u64,
    flooding: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(FLOOD));
    let mut runs = JoinSet::new();
    let mut next = 0usize;
    while flooding.load(Ordering::Relaxed) {
        let Ok(permit) = tokio::time::timeout(Duration::from_millis(50), slots.clone().acquire_owned()).await else {
            continue;
        };
        let node = nodes[next % nodes.len()].clone();
        next += 1;
        let token = token.clone();
        runs.spawn(async move {
            let ran = node
                .start_run(&token, "burn", &json!({"iterations": iterations}), true)
                .await;
            drop(permit);
            ran.map(drop)
        });
        while let Some(done) = runs.try_join_next() {
            done??;
        }
    }
    runs.abort_all();
    Ok(())
}
