//! PostgreSQL stopped (`pg_ctl stop -m immediate`) under a load of
//! concurrent runs, then started again: `/readyz` answers 503 meanwhile,
//! requests fail at once with 503 instead of hanging, and every run the
//! server acknowledged ends correctly, each step run once.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{Body, Server};

const TWO_STEPS: &str = "name: two\nsteps:\n\
    \x20 - id: first\n    task: hello\n    input: {name: Ada}\n\
    \x20 - id: nap\n    task: misbehave\n    needs: [first]\n    input: {mode: sleep, ms: 300}\n\
    \x20 - id: last\n    task: hello\n    needs: [nap]\n    input: {name: Grace}\n";

/// A request that must be answered within 10 s, outage or not.
async fn call(server: &Server, token: &str, method: Method, path: &str, body: Body) -> (StatusCode, Value) {
    tokio::time::timeout(Duration::from_secs(10), server.call(Some(token), method, path, body))
        .await
        .unwrap_or_else(|_| panic!("{path} hung during the outage"))
}

async fn readyz(server: &Server) -> StatusCode {
    server
        .http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap()
        .status()
}

async fn start(server: &Server, token: &str) -> (StatusCode, Value) {
    let body = Body::Json(json!({"input": {}}));
    call(server, token, Method::POST, "/v1/workflows/two/runs", body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_loses_no_acknowledged_run() {
    let Some(store) = TestStore::postgres_local() else {
        return;
    };
    let pg = store.pg().unwrap();
    let server = Server::on(&store, &[]);
    let token = server.tenant("acme", json!({})).await;
    server.upload(&token, &["hello", "misbehave"]).await;
    server.push(&token, "two", TWO_STEPS).await;

    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        let (status, body) = start(&server, &token).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        acknowledged.push(body["id"].as_u64().unwrap());
    }

    pg.stop_immediate();
    let down = Instant::now();
    // Within a few seconds the server knows, and says so.
    loop {
        if readyz(&server).await == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            down.elapsed() < Duration::from_secs(5),
            "/readyz still 200 after the database stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = start(&server, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let (status, _) = call(
        &server,
        &token,
        Method::GET,
        &format!("/v1/runs/{}", acknowledged[0]),
        Body::None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(readyz(&server).await, StatusCode::SERVICE_UNAVAILABLE);

    pg.restart();
    let up = Instant::now();
    while readyz(&server).await != StatusCode::OK {
        assert!(
            up.elapsed() < Duration::from_secs(15),
            "/readyz not 200 after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        let (status, body) = start(&server, &token).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        acknowledged.push(body["id"].as_u64().unwrap());
    }

    for run in &acknowledged {
        let done = server.wait(&token, *run).await;
        assert_eq!(done["status"], "succeeded", "run {run}: {done}");
        for step in done["steps"].as_array().unwrap() {
            assert_eq!(
                step["attempts"].as_array().unwrap().len(),
                1,
                "run {run} ran a step twice: {step}"
            );
        }
    }
    let (_, page) = call(&server, &token, Method::GET, "/v1/runs?limit=500", Body::None).await;
    assert_eq!(page["runs"].as_array().unwrap().len(), acknowledged.len(), "{page}");
}
