//! A schedule on a cluster of three real `weft serve` nodes on one
//! PostgreSQL: all three run the scheduler, and each instant starts one
//! run; with every node killed over several instants, the restarted
//! cluster fires the latest missed one once.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use cluster::{Api, Body, Cluster};

const TICK: &str = "
name: tick
steps:
  - {id: settle, sleep: 10ms}
";

async fn get(api: &Api, node: usize, path: &str) -> Value {
    let (status, body) = api
        .call(node, Some(api.token()), Method::GET, path, Body::None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The schedule's state, and the runs of `tick`, as `node` sees them.
async fn fires_and_runs(api: &Api, node: usize) -> (Value, usize) {
    let schedule = get(api, node, "/v1/schedules/every_second").await;
    let runs = get(api, node, "/v1/runs?workflow=tick&limit=500").await;
    (schedule["state"].clone(), runs["runs"].as_array().unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_start_one_run_per_instant_and_catch_up_once_after_all_died() {
    let Some(mut cluster) = Cluster::start(3).await else {
        return;
    };
    cluster.setup(&[]).await;
    cluster.push("tick", TICK).await;
    let api = cluster.api();
    let schedule = json!({"cron": "* * * * * *", "workflow": "tick", "overlap": "allow",
        "catch_up": "latest", "grace": "1500ms"});
    let (status, body) = api
        .call(
            1,
            Some(api.token()),
            Method::PUT,
            "/v1/schedules/every_second",
            Body::Json(schedule),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");

    tokio::time::sleep(Duration::from_millis(5_300)).await;
    let (state, runs) = fires_and_runs(&api, 2).await;
    let fired = state["fired"].as_u64().unwrap();
    assert!((4..=6).contains(&fired), "about one fire a second: {state}");
    assert_eq!(runs as u64, fired, "three schedulers, one run per instant: {state}");
    assert_eq!(state["missed"], 0, "{state}");

    // Every node down for about four instants.
    for i in 0..3 {
        cluster.kill(i);
    }
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    for i in 0..3 {
        cluster.restart(i).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (state, runs) = fires_and_runs(&api, 0).await;
    let missed = state["missed"].as_u64().unwrap();
    assert!(
        (2..=6).contains(&missed),
        "the instants of the outage are missed: {state}"
    );
    assert!(
        state["fired"].as_u64().unwrap() >= fired + 2,
        "the latest missed one and the new ones: {state}"
    );
    assert_eq!(
        runs as u64,
        state["fired"].as_u64().unwrap(),
        "still one run per fire: {state}"
    );
    if std::env::var_os("WEFT_TEST_LOGS").is_some() {
        cluster.dump_logs();
    }
}
