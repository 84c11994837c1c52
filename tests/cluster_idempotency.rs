//! Idempotent starts on a cluster of three real `weft serve` nodes on one
//! PostgreSQL (`tests/common/cluster.rs`): the same `Idempotency-Key` sent
//! to every node at the same moment starts one run, whichever nodes
//! answer, and the runs the other nodes began leave no trace.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use cluster::Cluster;

const NODES: usize = 3;
const KEYS: usize = 20;

/// One quick step: its result follows the start closely, so a start
/// refused after its first attempt ran is tested too.
const GREET: &str = "
name: greet
steps:
  - id: hello
    task: hello
    input:
      name: ${{ input.name }}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_every_node_at_once_starts_one_run() {
    let Some(cluster) = Cluster::start(NODES).await else {
        return;
    };
    cluster.setup(&["hello"]).await;
    cluster.push("greet", GREET).await;
    let api = cluster.api();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Key by key, one request to each node, all sent at once: each node
    // takes its keyed starts one at a time, in the order they came, so
    // the nodes meet on the same key.
    let mut requests = tokio::task::JoinSet::new();
    for k in 0..KEYS {
        for node in 0..NODES {
            let request = http
                .post(format!("{}/v1/workflows/greet/runs", cluster.url(node)))
                .bearer_auth(api.token())
                .header("Idempotency-Key", format!("key-{k}"))
                .json(&json!({"input": {"name": format!("k{k}")}}));
            requests.spawn(async move {
                let response = request.send().await.expect("the node answers");
                let status = response.status();
                let body: Value = response.json().await.expect("a JSON answer");
                (k, node, status, body)
            });
        }
    }
    let mut answers: HashMap<usize, Vec<(usize, StatusCode, u64)>> = HashMap::new();
    while let Some(answer) = requests.join_next().await {
        let (k, node, status, body) = answer.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "key-{k} on node {node}: {status} {body}"
        );
        let id = body["id"].as_u64().unwrap_or_else(|| panic!("no run id in {body}"));
        answers.entry(k).or_default().push((node, status, id));
    }

    let mut runs = HashSet::new();
    for (k, answers) in &answers {
        let ids: HashSet<u64> = answers.iter().map(|&(_, _, id)| id).collect();
        assert_eq!(ids.len(), 1, "key-{k} was answered with several runs: {answers:?}");
        let created = answers
            .iter()
            .filter(|&&(_, status, _)| status == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "key-{k}: one answer says the run was started: {answers:?}");
        runs.extend(ids);
    }
    assert_eq!(runs.len(), KEYS);
    println!("{KEYS} keys x {NODES} nodes: one run each");

    // Every run ends (the node that started it runs it), and nothing of
    // the runs the other nodes began is stored: not the run, nor a
    // result that followed its start.
    let ids: Vec<u64> = runs.iter().copied().collect();
    let ended = api.wait_final(&ids, Duration::from_secs(60)).await;
    for (id, run) in &ended {
        assert_eq!(run["status"], "succeeded", "run {id}: {run:#}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listed = api.get("/v1/runs?workflow=greet&limit=500", false).await;
    let listed: HashSet<u64> = listed["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["id"].as_u64().expect("an id"))
        .collect();
    assert_eq!(listed, runs, "the tenant's runs are the keys' runs, one each");
    let count = |sql: &str| cluster.pg().psql(sql).trim().to_string();
    assert_eq!(count("select count(*) from runs"), KEYS.to_string());
    assert_eq!(count("select count(*) from idempotency_keys"), KEYS.to_string());
    for table in ["units", "attempts", "events", "idempotency_keys"] {
        let orphans = count(&format!(
            "select count(*) from {table} t where not exists
                (select 1 from runs r where r.tenant = t.tenant and r.run_id = t.run_id)"
        ));
        assert_eq!(orphans, "0", "{table} rows of runs never stored");
    }
}
