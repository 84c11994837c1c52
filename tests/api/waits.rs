//! Wait steps through the real server: signals over HTTP (kept, taken,
//! repeated, refused, walled off between tenants), and a sleep that
//! keeps its due time across a SIGKILL and a restart.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{Body, Server};

const APPROVE: &str = "
name: approve
steps:
  - {id: greet, task: hello, input: {name: Ada}}
  - {id: decision, needs: [greet], wait_for: {signal: decision, timeout: 1h}}
  - {id: thanks, task: hello, needs: [decision], input: {name: '${{ steps.decision.output.by }}'}}
";

const SIGN_OFF: &str = "
name: sign_off
steps:
  - {id: ok, approval: {approvers: [ada], timeout: 1h}}
";

const NAP: &str = "
name: nap
steps:
  - {id: nap, sleep: 4s}
  - {id: after, task: hello, needs: [nap]}
";

/// Sends signal `name` to `run` with an optional id.
async fn signal(
    server: &Server,
    token: &str,
    run: u64,
    name: &str,
    id: Option<&str>,
    payload: Value,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .post(format!("{}/v1/runs/{run}/signals/{name}", server.url))
        .bearer_auth(token)
        .json(&payload);
    if let Some(id) = id {
        request = request.header("Idempotency-Key", id);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

crate::on_both_backends! {
    async fn a_signal_over_http_ends_the_wait_once_and_only_for_its_tenant(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        let other = server.tenant("globex", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server.push(&token, "approve", APPROVE).await;
        let run = server.start_run(&token, "approve", json!({})).await;

        let (status, body) = signal(&server, &other, run, "decision", None, json!({"by": "Mallory"})).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{body}");
        let (status, body) = signal(&server, &token, run, "decisoin", None, json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "unknown_signal");
        let (status, body) = server
            .call(
                Some(&token),
                Method::POST,
                &format!("/v1/runs/{run}/signals/decision"),
                Body::Raw("application/json", b"{not json".to_vec()),
            )
            .await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("malformed_json")), "{body}");

        // Kept if `greet` is still running, taken if the wait has begun.
        let (status, first) = signal(&server, &token, run, "decision", Some("d-1"), json!({"by": "Grace"})).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert!(["taken", "kept"].contains(&first["outcome"].as_str().unwrap()), "{first}");
        let (status, again) = signal(&server, &token, run, "decision", Some("d-1"), json!({"by": "Eve"})).await;
        assert_eq!((status, &again["outcome"]), (StatusCode::OK, &json!("duplicate")), "{again}");

        let done = server.wait(&token, run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["steps"][1]["output"], json!({"by": "Grace"}));
        assert_eq!(done["output"]["thanks"]["greeting"], "Hello, Grace!");

        let (status, again) = signal(&server, &token, run, "decision", Some("d-1"), json!({"by": "Eve"})).await;
        assert_eq!((status, &again["outcome"]), (StatusCode::OK, &json!("duplicate")), "after the end: {again}");
        let (status, body) = signal(&server, &token, run, "decision", Some("d-2"), json!({})).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::CONFLICT, &json!("not_running")), "{body}");
    }

    async fn a_sleep_keeps_its_due_time_across_a_sigkill(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server.push(&token, "nap", NAP).await;
        let started = now_ms();
        let run = server.start_run(&token, "nap", json!({})).await;
        let (_, body) = server.call(Some(&token), Method::GET, &format!("/v1/runs/{run}"), Body::None).await;
        assert_eq!(body["steps"][0]["status"], "waiting", "{body}");
        let due = body["steps"][0]["due"].as_u64().expect("a sleeping step shows when it wakes");
        // The server's clock is its start's wall time plus a monotonic
        // clock, so it may be a few ms behind this process's wall clock.
        assert!((started + 3_900..started + 5_000).contains(&due), "due {due}, started {started}");
        server.kill();

        let server = Server::on(&store, &[]);
        let (_, body) = server.call(Some(&token), Method::GET, &format!("/v1/runs/{run}"), Body::None).await;
        assert_eq!(body["steps"][0]["due"], due, "the restart keeps the due time: {body}");
        let waiting = Instant::now();
        let done = server.wait(&token, run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let ended = now_ms();
        assert!(ended >= due, "ended at {ended}, before its due time {due}");
        eprintln!(
            "the sleep ended {} ms after its due time ({} ms after the restart)",
            ended - due,
            waiting.elapsed().as_millis()
        );
        assert!(ended < due + 3_000, "ended {} ms late", ended - due);
    }

    async fn pause_holds_new_steps_and_resume_releases_them(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server.push(&token, "short_nap", &NAP.replace("nap\n", "short_nap\n").replace("4s", "1s")).await;
        let run = server.start_run(&token, "short_nap", json!({})).await;
        let path = format!("/v1/runs/{run}");
        let (status, body) = server.call(Some(&token), Method::POST, &format!("{path}/pause"), Body::None).await;
        assert_eq!((status, &body["paused"]), (StatusCode::OK, &json!(true)), "{body}");
        // The sleep ends while paused; the step after it is held.
        tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
        let (_, body) = server.call(Some(&token), Method::GET, &path, Body::None).await;
        assert_eq!(body["status"], "running", "{body}");
        assert_eq!(body["steps"][0]["status"], "succeeded", "{body}");
        assert_eq!(body["steps"][1]["status"], "ready", "{body}");
        let (status, body) = server.call(Some(&token), Method::POST, &format!("{path}/resume"), Body::None).await;
        assert_eq!((status, &body["paused"]), (StatusCode::OK, &json!(false)), "{body}");
        assert_eq!(server.wait(&token, run).await["status"], "succeeded");
        let (status, body) = server.call(Some(&token), Method::POST, &format!("{path}/pause"), Body::None).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::CONFLICT, &json!("not_running")), "{body}");
    }

    async fn an_approval_over_http_is_listed_and_decided_by_an_approver_only(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        let other = server.tenant("globex", json!({})).await;
        server.push(&token, "sign_off", SIGN_OFF).await;
        let run = server.start_run(&token, "sign_off", json!({})).await;
        let mut listed = Value::Null;
        for _ in 0..200 {
            listed = server.call(Some(&token), Method::GET, "/v1/approvals", Body::None).await.1;
            if listed["approvals"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(listed["approvals"][0]["run"], run, "{listed}");
        assert_eq!(listed["approvals"][0]["step"], "ok", "{listed}");
        assert_eq!(listed["approvals"][0]["deciders"], json!(["ada"]), "{listed}");
        let (_, theirs) = server.call(Some(&other), Method::GET, "/v1/approvals", Body::None).await;
        assert_eq!(theirs["approvals"], json!([]), "{theirs}");

        let path = format!("/v1/runs/{run}/approvals/ok");
        let approve = |by: &str| Body::Json(json!({"decision": "approve", "by": by, "comment": "fine"}));
        let (status, body) = server.call(Some(&other), Method::POST, &path, approve("ada")).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{body}");
        let (status, body) = server.call(Some(&token), Method::POST, &path, approve("mallory")).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::FORBIDDEN, &json!("not_a_decider")), "{body}");
        let unknown = format!("/v1/runs/{run}/approvals/nope");
        let (status, body) = server.call(Some(&token), Method::POST, &unknown, approve("ada")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let bad = Body::Json(json!({"decision": "maybe", "by": "ada"}));
        let (status, body) = server.call(Some(&token), Method::POST, &path, bad).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_body")), "{body}");

        // `weft approve`, as the CLI's users would.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["approve", &run.to_string(), "ok", "--as", "ADA", "-m", "looks right"])
            .env("WEFT_URL", &server.url)
            .env("WEFT_TOKEN", &token)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
        assert!(printed.contains("step `ok` approved by ADA"), "{printed}");
        let done = server.wait(&token, run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["output"]["ok"]["comment"], "looks right", "{done}");
        let (_, events) = server.call(Some(&token), Method::GET, &format!("/v1/runs/{run}/events"), Body::None).await;
        let decided: Vec<&Value> = events["events"].as_array().into_iter().flatten()
            .filter(|e| e["event"] == "approval_decided").collect();
        assert_eq!(decided.len(), 1, "{events}");
        assert_eq!((&decided[0]["by"], &decided[0]["approved"]), (&json!("ADA"), &json!(true)));
    }
}
