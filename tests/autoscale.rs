//! The metrics an autoscaler reads (a Kubernetes HPA or KEDA), through the
//! real `weft serve` binary: while one tenant's runs wait for a slot,
//! `/metrics` reports them as that tenant's ready units and the oldest's
//! age; once they have drained, both read 0.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/mod.rs"]
mod common;
#[allow(dead_code)] // the API tests' server; this binary uses a part of it
#[path = "api/server.rs"]
mod server;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use backend::TestStore;
use server::{Body, Server};

/// Attempt slots on the server: few, so the flood waits.
const SLOTS: &str = "2";
/// Runs the flooding tenant starts at once.
const FLOOD: usize = 24;

const NAP: &str = "name: nap\nsteps:\n  - {id: nap, task: misbehave, input: {mode: sleep, ms: 150}}\n";

on_both_backends! {
    async fn ready_work_and_its_age_follow_a_flood_and_drop_to_zero(store: TestStore) {
        let server = Server::on(&store, &["--max-concurrent-attempts", SLOTS]);
        let token = server.tenant("flood", json!({})).await;
        server.upload(&token, &["misbehave"]).await;
        server.push(&token, "nap", NAP).await;
        let mut runs = Vec::with_capacity(FLOOD);
        for _ in 0..FLOOD {
            runs.push(server.start_run(&token, "nap", json!({})).await);
        }

        // Two run at once and the rest wait; the oldest has waited at
        // least since the last start was answered.
        let began = Instant::now();
        let (ready, oldest) = loop {
            let metrics = scrape(&server).await;
            let ready = value(&metrics, r#"weft_ready_units{tenant="flood"}"#);
            let oldest = value(&metrics, "weft_oldest_ready_seconds");
            if ready.is_some_and(|n| n > 0.0) && oldest.is_some_and(|s| s > 0.0) {
                break (ready.unwrap(), oldest.unwrap());
            }
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "{:?}: no ready work reported while {FLOOD} runs share {SLOTS} slots:\n{metrics}",
                store.backend
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!(
            "{:?}: {ready} units ready for tenant flood, the oldest {oldest:.3} s old",
            store.backend
        );
        assert!(ready <= FLOOD as f64, "{ready} units ready of {FLOOD} runs");

        for run in runs {
            let done = server.wait(&token, run).await;
            assert_eq!(done["status"], "succeeded", "{done}");
        }
        let metrics = scrape(&server).await;
        assert_eq!(
            value(&metrics, r#"weft_ready_units{tenant="flood"}"#),
            Some(0.0),
            "the drained tenant still reads 0, not nothing:\n{metrics}"
        );
        assert_eq!(value(&metrics, "weft_oldest_ready_seconds"), Some(0.0), "{metrics}");
    }
}

async fn scrape(server: &Server) -> String {
    let (status, body) = server.call(None, Method::GET, "/metrics", Body::None).await;
    assert!(status.is_success(), "{status}: {body}");
    body.as_str().expect("metrics are text").to_string()
}

/// The value of the sample named `series` (name and labels, exactly as
/// printed).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}
