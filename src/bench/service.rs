//! Runs per second and submit-to-completion latency over HTTP, with a
//! closed-loop load generator at 1, 16 and 128 concurrent clients on
//! loopback.
//!
//! Each client starts a 1-step `hello` run with `?wait=60s` (the server
//! answers once the run's end is durable) and starts the next as soon as
//! the answer comes. Baseline: the same clients calling `GET /healthz`,
//! the cost of HTTP alone on this machine. The load generator shares the
//! machine's cores with the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::report::{Report, Target};
use super::server::{Server, UNLIMITED};
use super::{ONE_STEP, Options};

/// The concurrency levels measured.
const CLIENTS: [usize; 3] = [1, 16, 128];

/// Measures and reports the service figures.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (warmup, measured) = if options.quick {
        (Duration::from_millis(300), Duration::from_secs(2))
    } else {
        (Duration::from_secs(1), Duration::from_secs(8))
    };
    report.section(&format!(
        "service: 1-step `hello` runs over HTTP on loopback, closed loop, {} s per level",
        measured.as_secs_f64()
    ));
    let dir = options.scratch()?;
    let server = Arc::new(Server::start(&options.weft, dir.path(), &[]).await?);
    let token: Arc<str> = server.tenant("bench", UNLIMITED).await?.into();
    let hello = options.module("hello")?;
    server.upload(&token, "hello", hello).await?;
    server.push(&token, "one", ONE_STEP).await?;

    for clients in CLIENTS {
        let (health, runs) = health_and_runs(&server, &token, clients, warmup, measured).await?;
        let c = clients;
        report.figure(
            &format!("http_healthz_per_s_c{c}"),
            &format!("{c:>3} clients: bare HTTP round trips/s (GET /healthz)"),
            health.rate,
            "/s",
        );
        report.figure(
            &format!("http_healthz_p50_ms_c{c}"),
            &format!("{c:>3} clients: bare HTTP round trip p50"),
            health.percentile(0.50),
            "ms",
        );
        report.figure(
            &format!("http_runs_per_s_c{c}"),
            &format!("{c:>3} clients: durable runs/s, submit to completion"),
            runs.rate,
            "/s",
        );
        report.figure(
            &format!("http_runs_ratio_c{c}"),
            &format!("{c:>3} clients: ratio runs / bare round trips"),
            runs.rate / health.rate,
            "x",
        );
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)] {
            report.figure(
                &format!("http_{name}_ms_c{c}"),
                &format!("{c:>3} clients: submit-to-completion {name}"),
                runs.percentile(q),
                "ms",
            );
        }
    }
    let figure = |key: &str| report.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    let (rate, p50, p99, p999) = (
        figure("http_runs_per_s_c128"),
        figure("http_p50_ms_c16"),
        figure("http_p99_ms_c16"),
        figure("http_p999_ms_c16"),
    );
    report.target(
        "http_runs_per_s",
        "HTTP runs/s, 128 clients",
        rate,
        "/s",
        Target::AtLeast(5_000.0),
    );
    report.target(
        "http_p50_ms",
        "HTTP submit-to-completion p50, 16 clients",
        p50,
        "ms",
        Target::AtMost(2.0),
    );
    report.target(
        "http_p99_ms",
        "HTTP submit-to-completion p99, 16 clients",
        p99,
        "ms",
        Target::AtMost(10.0),
    );
    report.note("http_p999_ms", json!(p999));
    if let Ok(server) = Arc::try_unwrap(server) {
        server.kill().await?;
    }
    Ok(())
}

/// What a closed loop measured.
pub(super) struct Measured {
    /// Calls per second over the measured period.
    pub(super) rate: f64,
    /// Every call's latency in the measured period, sorted.
    latencies: Vec<Duration>,
}

impl Measured {
    /// A latency percentile, in milliseconds.
    pub(super) fn percentile(&self, q: f64) -> f64 {
        percentile(&self.latencies, q).as_secs_f64() * 1e3
    }
}

/// The `q` quantile of sorted samples (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `clients` closed loops of `GET /healthz` (the baseline), then of 1-step
/// runs of `one` started with `?wait`, on `server`.
pub(super) async fn health_and_runs(
    server: &Arc<Server>,
    token: &Arc<str>,
    clients: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<(Measured, Measured)> {
    let health = {
        let server = server.clone();
        let url: Arc<str> = format!("{}/healthz", server.url).into();
        closed_loop(clients, warmup, measured, move || {
            let (server, url) = (server.clone(), url.clone());
            async move {
                let response = server.http.get(&*url).send().await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "/healthz answered {}",
                    response.status()
                );
                Ok(())
            }
        })
        .await?
    };
    let runs = {
        let (server, token) = (server.clone(), token.clone());
        closed_loop(clients, warmup, measured, move || {
            let (server, token) = (server.clone(), token.clone());
            async move {
                let run = server.start_run(&token, "one", &json!({}), true).await?;
                anyhow::ensure!(run["status"] == "succeeded", "a run did not succeed: {run}");
                Ok(())
            }
        })
        .await?
    };
    Ok((health, runs))
}

/// `clients` callers each making `call` again as soon as it returns: for
/// `warmup` unrecorded, then for `measured`.
pub(super) async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    measured: Duration,
    call: F,
) -> anyhow::Result<Measured>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now() + warmup;
    let end = start + measured;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let call = call.clone();
        callers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                call().await?;
                if sent >= start {
                    latencies.push(sent.elapsed());
                }
            }
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = callers.join_next().await {
        latencies.extend(done??);
    }
    latencies.sort();
    Ok(Measured {
        rate: latencies.len() as f64 / measured.as_secs_f64(),
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Duration::from_millis(500));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(990));
        assert_eq!(percentile(&samples, 0.999), Duration::from_millis(999));
        assert_eq!(percentile(&samples[..1], 0.999), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
