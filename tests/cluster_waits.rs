//! Waits on a cluster of real `weft serve` nodes on one PostgreSQL: a run
//! started through one node takes its signal through a second and its
//! approval through a third, then runs a sub-workflow; each step ends once.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use cluster::{Api, Cluster};

const PARENT: &str = "
name: waiting
steps:
  - {id: paid, wait_for: {signal: payment, timeout: 1h}}
  - {id: ok, needs: [paid], approval: {approvers: [ada], timeout: 1h}}
  - {id: shipping, needs: [ok], workflow: packing, input: '${{ steps.paid.output }}'}
output: {shipping: '${{ steps.shipping.output }}', by: '${{ steps.ok.output.by }}'}
";

const CHILD: &str = "
name: packing
steps:
  - {id: settle, sleep: 200ms}
output: {packed: '${{ input.amount }}'}
";

/// Waits until step `index` of run `id` is `status`, asking any node.
async fn until_step(api: &Api, id: u64, index: usize, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = api.run(id).await;
        if run["steps"][index]["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "step {index} never became {status}: {run:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_an_approval_and_a_child_run_through_different_nodes() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    cluster.setup(&[]).await;
    cluster.push("packing", CHILD).await;
    cluster.push("waiting", PARENT).await;
    let api = cluster.api();
    let run = api.start_on(0, "waiting", json!({})).await.id;

    until_step(&api, run, 0, "waiting").await;
    let path = format!("/v1/runs/{run}/signals/payment");
    let (status, body) = api
        .call(
            1,
            Some(api.token()),
            Method::POST,
            &path,
            cluster::Body::Json(json!({"amount": 1999})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("taken")),
        "{body}"
    );

    until_step(&api, run, 1, "waiting").await;
    let (status, listed) = api
        .call(2, Some(api.token()), Method::GET, "/v1/approvals", cluster::Body::None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["approvals"][0]["run"], run, "{listed}");
    let path = format!("/v1/runs/{run}/approvals/ok");
    let decision = json!({"decision": "approve", "by": "ada"});
    let (status, body) = api
        .call(2, Some(api.token()), Method::POST, &path, cluster::Body::Json(decision))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let runs = api.wait_final(&[run], Duration::from_secs(30)).await;
    let done = &runs[&run];
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(
        done["output"],
        json!({"shipping": {"packed": 1999}, "by": "ada"}),
        "{done:#}"
    );
    let child = done["steps"][2]["child"].as_u64().expect("the step names its child");
    let child_run = api.run(child).await;
    assert_eq!(child_run["parent"], json!({"run": run, "step": "shipping", "depth": 1}));
    let events = api.events(run).await;
    for step in ["paid", "ok", "shipping"] {
        let finished: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "step_finished" && e["step"] == step)
            .collect();
        assert_eq!(finished.len(), 1, "{step} finished once: {events:#?}");
    }
}
