//! Schedules through the real server: set, shown with their next
//! instants, refused with the field at fault, walled off between tenants;
//! fired once per instant across a SIGKILL with the chosen catch-up, and
//! driven by the `weft schedule` CLI.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{Body, Server};

const GREET: &str = "
name: greet
input_schema:
  type: object
  required: [who]
  properties: {who: {type: string}}
steps:
  - {id: hello, task: hello, input: {name: '${{ input.who }}'}}
";

fn weft(server: &Server, token: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_URL", &server.url)
        .env("WEFT_TOKEN", token)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

async fn runs_of(server: &Server, token: &str) -> Vec<Value> {
    let (status, body) = server
        .call(
            Some(token),
            Method::GET,
            "/v1/runs?workflow=greet&limit=500",
            Body::None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["runs"].as_array().unwrap().clone()
}

/// The runs of `greet` with the schedule's state read around them, once no
/// fire was under way in between: the scheduler starts a fire's run before
/// it counts it, so a read in the middle of a fire sees one run more.
async fn settled_runs(server: &Server, token: &str, name: &str) -> (Vec<Value>, Value) {
    for _ in 0..50 {
        let before = schedule(server, token, name).await;
        let runs = runs_of(server, token).await;
        let after = schedule(server, token, name).await;
        if before["state"] == after["state"] && after["state"]["firing"] == json!([]) {
            return (runs, after);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the schedule {name} never held still between two reads");
}

async fn schedule(server: &Server, token: &str, name: &str) -> Value {
    let (status, body) = server
        .call(Some(token), Method::GET, &format!("/v1/schedules/{name}"), Body::None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

crate::on_both_backends! {
    async fn schedules_are_set_shown_refused_and_walled_off(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        let other = server.tenant("globex", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server.push(&token, "greet", GREET).await;
        let nightly = json!({"cron": "0 2 * * *", "timezone": "Europe/Paris", "workflow": "greet",
            "input": {"who": "Ada"}, "overlap": "buffer_one", "catch_up": "latest"});
        let (status, body) = server.call(Some(&token), Method::PUT, "/v1/schedules/nightly", Body::Json(nightly.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let next: Vec<&str> = body["next_fires"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(next.len(), 5, "{body}");
        assert!(next.iter().all(|t| t.contains("T02:00:00+01:00") || t.contains("T02:00:00+02:00")), "{next:?}");
        assert!(next.windows(2).all(|w| w[0] < w[1]), "{next:?}");
        let (status, _) = server.call(Some(&token), Method::PUT, "/v1/schedules/nightly", Body::Json(nightly)).await;
        assert_eq!(status, StatusCode::OK, "replaced");

        for (body, field) in [
            (json!({"cron": "0 25 * * *", "workflow": "greet", "input": {"who": "x"}}), "cron"),
            (json!({"cron": "@daily", "timezone": "Mars/Olympus", "workflow": "greet", "input": {"who": "x"}}), "timezone"),
            (json!({"cron": "@daily", "workflow": "greet", "grace": "soon", "input": {"who": "x"}}), "grace"),
            (json!({"cron": "@daily", "workflow": "nope"}), "workflow"),
        ] {
            let (status, answer) = server.call(Some(&token), Method::PUT, "/v1/schedules/bad", Body::Json(body)).await;
            assert_eq!((status, &answer["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_schedule")), "{answer}");
            assert_eq!(answer["error"]["details"][0]["path"], field, "{answer}");
        }
        let (status, answer) = server
            .call(Some(&token), Method::PUT, "/v1/schedules/bad", Body::Json(json!({"cron": "@daily", "workflow": "greet"})))
            .await;
        assert_eq!((status, &answer["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_input")), "{answer}");
        let (status, answer) = server
            .call(Some(&token), Method::PUT, "/v1/schedules/bad", Body::Json(json!({"cron": "@daily", "workflow": "greet", "when": 1})))
            .await;
        assert_eq!((status, &answer["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_body")), "{answer}");

        // Another tenant sees nothing of it.
        let (status, _) = server.call(Some(&other), Method::GET, "/v1/schedules/nightly", Body::None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = server.call(Some(&other), Method::GET, "/v1/schedules", Body::None).await;
        assert_eq!(list["schedules"], json!([]));
        let (status, _) = server.call(Some(&other), Method::DELETE, "/v1/schedules/nightly", Body::None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, body) = server.call(Some(&token), Method::POST, "/v1/schedules/nightly/pause", Body::None).await;
        assert_eq!((status, &body["paused"], &body["next_fires"]), (StatusCode::OK, &json!(true), &json!([])), "{body}");
        let (ok, printed) = weft(&server, &token, &["schedule", "list"]);
        assert!(ok && printed.contains("nightly") && printed.contains("paused"), "{printed}");
        let (ok, printed) = weft(&server, &token, &["schedule", "resume", "nightly"]);
        assert!(ok && printed.contains("schedule nightly running") && printed.contains("next: "), "{printed}");
        let (ok, printed) = weft(&server, &token, &["schedule", "delete", "nightly"]);
        assert!(ok, "{printed}");
        let (status, _) = server.call(Some(&token), Method::GET, "/v1/schedules/nightly", Body::None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (ok, printed) = weft(&server, &token, &["schedule", "set", "x", "--cron", "61 * * * *", "--workflow", "greet"]);
        assert!(!ok && printed.contains("cron"), "{printed}");
    }

    async fn a_schedule_fires_once_per_instant_across_a_sigkill_and_catches_up_the_latest(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server.push(&token, "greet", GREET).await;
        let (ok, printed) = weft(&server, &token, &[
            "schedule", "set", "every_second", "--cron", "* * * * * *", "--workflow", "greet",
            "-i", r#"{"who": "clock"}"#, "--overlap", "allow", "--catch-up", "latest", "--grace", "1s",
        ]);
        assert!(ok && printed.contains("schedule every_second created"), "{printed}");
        tokio::time::sleep(Duration::from_millis(3_300)).await;
        let before = schedule(&server, &token, "every_second").await;
        let fired = before["state"]["fired"].as_u64().unwrap();
        assert!((2..=4).contains(&fired), "{before}");
        server.kill();

        // Down for over three instants: more than the 1 s grace late.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let server = Server::on(&store, &[]);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let after = schedule(&server, &token, "every_second").await;
        let state = &after["state"];
        assert!(state["missed"].as_u64().unwrap() >= 2, "{after}");
        assert!(state["fired"].as_u64().unwrap() > fired, "{after}");
        let (runs, settled) = settled_runs(&server, &token, "every_second").await;
        assert_eq!(runs.len() as u64, settled["state"]["fired"].as_u64().unwrap(), "one run per fire, none twice: {settled}");
        assert!(runs.iter().all(|r| r["workflow"] == "greet"));
        let (ok, printed) = weft(&server, &token, &["schedule", "show", "every_second"]);
        assert!(ok && printed.contains("missed") && printed.contains("next: "), "{printed}");
    }
}
