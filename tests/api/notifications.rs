//! Outbound notifications through the real server: an approval's
//! escalation and the run's end reach a local receiver, signed with the
//! tenant's secret; a refused try is tried again and every try is
//! recorded and shown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft::triggers::signature;

use crate::backend::TestStore;
use crate::server::{Body, Server};

const KEY: &str = "notify-signing-key-1";

/// What the receiver got: (headers, body), in order.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that answers 503 to its first request and 200
/// to the rest.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                let mut all = kept.lock().unwrap();
                all.push((headers, body));
                if all.len() == 1 {
                    AxumStatus::SERVICE_UNAVAILABLE
                } else {
                    AxumStatus::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Waits until the receiver has `n` requests.
async fn until_received(received: &Received, n: usize) -> Vec<(HeaderMap, Bytes)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = received.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver got {} of {n} requests",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a request's signature with the key, as a receiver would.
fn verified(headers: &HeaderMap, body: &[u8]) -> Value {
    let header = headers.get("x-weft-signature").and_then(|v| v.to_str().ok());
    signature::verify(KEY.as_bytes(), header, body, now_secs()).expect("a valid signature");
    assert!(signature::verify(b"another key", header, body, now_secs()).is_err());
    serde_json::from_slice(body).unwrap()
}

crate::on_both_backends! {
    async fn an_escalation_and_the_run_s_end_reach_a_receiver_signed_and_retried(store: TestStore) {
        let (url, received) = receiver().await;
        let server = Server::on_with_key(&store, &["--allow-private-http"]);
        let token = server.tenant("acme", json!({})).await;
        let (status, body) = server
            .call(Some(&token), Method::PUT, "/v1/secrets/notify_key", Body::Json(json!({"value": KEY})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let refund = format!("
name: refund
steps:
  - {{id: ok, approval: {{approvers: [ada], timeout: 1h, escalate: {{after: 1s, to: [boss]}}}}}}
notify:
  - {{url: '{url}', secret: notify_key}}
  - {{url: '{url}', secret: notify_key, on: [failed]}}
");
        server.push(&token, "refund", &refund).await;
        let run = server.start_run(&token, "refund", json!({})).await;

        // The escalation: refused once (503), then delivered.
        let got = until_received(&received, 2).await;
        let (first, second) = (&got[0], &got[1]);
        assert_eq!(first.1, second.1, "the same message again");
        assert_eq!(first.0["x-weft-delivery"], second.0["x-weft-delivery"], "with the same delivery id");
        let message = verified(&second.0, &second.1);
        assert_eq!(message["type"], "approval.escalated", "{message}");
        assert_eq!((message["run"].as_u64(), &message["step"], &message["to"]), (Some(run), &json!("ok"), &json!(["boss"])));
        assert_eq!(second.0["x-weft-event"], "approval.escalated");

        // The escalation's target decides; the run's end is told once
        // (the second target asked for failures only).
        let path = format!("/v1/runs/{run}/approvals/ok");
        let decision = Body::Json(json!({"decision": "approve", "by": "boss"}));
        let (status, body) = server.call(Some(&token), Method::POST, &path, decision).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let got = until_received(&received, 3).await;
        let message = verified(&got[2].0, &got[2].1);
        assert_eq!((message["type"].as_str(), message["status"].as_str()), (Some("run.succeeded"), Some("succeeded")), "{message}");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(received.lock().unwrap().len(), 3, "nothing for the failures-only target");

        let (status, body) = server.call(Some(&token), Method::GET, &format!("/v1/runs/{run}/notifications"), Body::None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["notifications"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{body}");
        assert_eq!((list[0]["event"].as_str(), list[0]["status"].as_str()), (Some("approval.escalated"), Some("delivered")));
        let codes: Vec<&Value> = list[0]["attempts"].as_array().unwrap().iter().map(|a| &a["code"]).collect();
        assert_eq!(codes, [&json!(503), &json!(200)], "{body}");
        assert_eq!(list[0]["attempts"][0]["error"], "answered 503");
        assert_eq!((list[1]["event"].as_str(), list[1]["status"].as_str()), (Some("run.succeeded"), Some("delivered")));
        let (status, _) = server.call(Some(&token), Method::GET, "/v1/runs/999999/notifications", Body::None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn a_notification_to_a_private_address_is_refused_and_recorded(store: TestStore) {
        let (url, received) = receiver().await;
        let server = Server::on_with_key(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.call(Some(&token), Method::PUT, "/v1/secrets/notify_key", Body::Json(json!({"value": KEY}))).await;
        let doc = format!("
name: quick
steps:
  - {{id: nap, sleep: 10ms}}
notify:
  - {{url: '{url}', secret: notify_key}}
");
        server.push(&token, "quick", &doc).await;
        let run = server.start_run(&token, "quick", json!({})).await;
        server.wait(&token, run).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let attempts = loop {
            let (_, body) = server.call(Some(&token), Method::GET, &format!("/v1/runs/{run}/notifications"), Body::None).await;
            let attempts = body["notifications"][0]["attempts"].clone();
            if attempts.as_array().is_some_and(|a| !a.is_empty()) {
                break attempts;
            }
            assert!(Instant::now() < deadline, "no try recorded: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let error = attempts[0]["error"].as_str().unwrap();
        assert!(error.contains("127.0.0.1 is") && error.contains("--allow-private-http"), "{error}");
        assert!(received.lock().unwrap().is_empty(), "nothing reached the private address");
    }
}
