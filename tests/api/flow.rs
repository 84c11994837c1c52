//! The whole path through the HTTP API: upload, push, start, follow,
//! inspect; idempotent starts; cancel; retry from the failed step.

use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{Body, ORDER_TASKS, Server, order};

crate::on_both_backends! {
    async fn the_order_flow_from_module_upload_to_a_completed_run(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &ORDER_TASKS).await;
        let (yaml, input) = order();
        let pushed = server.push(&token, "order", &yaml).await;
        assert_eq!(pushed["latest"]["version"], 1);

        let run = server.start_run(&token, "order", input.clone()).await;
        let done = server.wait(&token, run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["output"]["order_id"], "A-1001");
        assert_eq!(done["output"]["shipment_id"], "shp_A-1001");
        let steps: Vec<(&str, &str)> = done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            steps,
            [
                ("validate_payment", "succeeded"),
                ("reserve_inventory", "succeeded"),
                ("notify_warehouse", "succeeded"),
                ("send_confirmation", "succeeded"),
                ("refund_payment", "skipped"),
            ]
        );
        let first = &done["steps"][0]["attempts"][0];
        assert_eq!(first["outcome"], "ok");
        assert!(first["fuel_used"].as_u64().unwrap() > 0, "{first}");
        // On PostgreSQL every server is a node of a cluster, and names
        // itself on the attempts it runs; on redb there is no cluster.
        assert_eq!(first["node"].is_string(), store.pg().is_some(), "{first}");

        let (status, logs) = server
            .call(
                Some(&token),
                Method::GET,
                &format!("/v1/runs/{run}/steps/validate_payment/logs"),
                Body::None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            logs["attempts"][0]["lines"][0]["message"]
                .as_str()
                .unwrap()
                .contains("A-1001"),
            "{logs}"
        );

        let (_, page) = server
            .call(Some(&token), Method::GET, "/v1/runs?status=succeeded", Body::None)
            .await;
        assert_eq!(page["runs"][0]["id"], run);
        let (_, page) = server
            .call(Some(&token), Method::GET, "/v1/runs?status=failed", Body::None)
            .await;
        assert_eq!(page["runs"], json!([]));

        let (_, metrics) = server.call(None, Method::GET, "/metrics", Body::None).await;
        let metrics = metrics.as_str().unwrap().to_string();
        assert!(
            metrics.contains(r#"weft_runs_finished_total{tenant="acme",outcome="succeeded"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"weft_attempts_total{tenant="acme",outcome="ok"} 4"#),
            "{metrics}"
        );

        let (status, openapi) = server.call(None, Method::GET, "/v1/openapi.json", Body::None).await;
        assert_eq!(status, StatusCode::OK);
        for path in [
            "/v1/modules/{name}",
            "/v1/workflows/{name}/runs",
            "/v1/runs/{id}/events",
            "/v1/admin/tenants",
        ] {
            assert!(
                openapi["paths"][path].is_object(),
                "{path} is not in the OpenAPI document"
            );
        }

        // A start that waits answers with the run's end and output.
        let (status, waited) = server
            .call(
                Some(&token),
                Method::POST,
                "/v1/workflows/order/runs?wait=30s",
                Body::Json(json!({"input": input})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{waited}");
        assert_eq!(waited["status"], "succeeded", "{waited}");
        assert_eq!(waited["output"], done["output"], "{waited}");
        assert!(waited["id"].as_u64().unwrap() > run);
    }
}

crate::on_both_backends! {
    async fn the_same_idempotency_key_returns_the_same_run(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server
            .push(&token, "hi", "name: hi\nsteps:\n  - id: hi\n    task: hello\n")
            .await;
        let start = |key: &'static str| {
            let request = server
                .http
                .post(format!("{}/v1/workflows/hi/runs", server.url))
                .bearer_auth(&token)
                .header("idempotency-key", key)
                .json(&json!({"input": {"name": "Ada"}}));
            async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            }
        };
        let (first_status, first) = start("order-1").await;
        let (second_status, second) = start("order-1").await;
        let (third_status, third) = start("order-2").await;
        assert_eq!(first_status, StatusCode::CREATED);
        assert_eq!(second_status, StatusCode::OK);
        assert_eq!(third_status, StatusCode::CREATED);
        assert_eq!(first["id"], second["id"]);
        assert_ne!(first["id"], third["id"]);
        let (_, page) = server.call(Some(&token), Method::GET, "/v1/runs", Body::None).await;
        assert_eq!(page["runs"].as_array().unwrap().len(), 2, "{page}");
    }
}

/// The events of a run, from its live stream, until it ends.
async fn stream_events(server: &Server, token: &str, run: u64) -> Vec<Value> {
    let response = server
        .http
        .get(format!("{}/v1/runs/{run}/events", server.url))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                events.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    events
}

crate::on_both_backends! {
    async fn the_event_stream_delivers_every_event_of_a_live_run_in_order(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["misbehave", "hello"]).await;
        let yaml = "name: slow\nsteps:\n\
                    \x20 - id: nap\n    task: misbehave\n    input: {mode: sleep, ms: 300}\n\
                    \x20 - id: fan\n    task: hello\n    needs: [nap]\n    for_each: \"[1, 2, 3]\"\n    input: {name: x}\n";
        server.push(&token, "slow", yaml).await;
        let run = server.start_run(&token, "slow", json!({})).await;
        let streamed = stream_events(&server, &token, run).await;

        let (_, stored) = server
            .call(Some(&token), Method::GET, &format!("/v1/runs/{run}/events"), Body::None)
            .await;
        let stored = stored["events"].as_array().unwrap().clone();
        assert_eq!(streamed, stored, "the stream and the stored history differ");
        let seqs: Vec<u64> = streamed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(streamed.first().unwrap()["event"], "run_started");
        assert_eq!(streamed.last().unwrap()["event"], "run_finished");
        assert_eq!(streamed.last().unwrap()["status"], "succeeded");
        let attempts = streamed.iter().filter(|e| e["event"] == "attempt_finished").count();
        assert_eq!(attempts, 4, "one nap and three items");
    }
}

crate::on_both_backends! {
    async fn a_cancelled_run_stops_and_a_failed_run_retries_from_its_failed_step(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["misbehave", "hello", "flaky"]).await;

        // Cancel: a step that sleeps for a minute.
        server
            .push(
                &token,
                "sleepy",
                "name: sleepy\nsteps:\n  - id: nap\n    task: misbehave\n    input: {mode: sleep, ms: 60000}\n",
            )
            .await;
        // A start that waits less than the run takes answers `running`.
        let (status, body) = server
            .call(
                Some(&token),
                Method::POST,
                "/v1/workflows/sleepy/runs?wait=200ms",
                Body::Json(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "running", "{body}");
        assert!(body.get("output").is_none(), "{body}");
        let run = body["id"].as_u64().unwrap();
        let (status, body) = server
            .call(
                Some(&token),
                Method::POST,
                &format!("/v1/runs/{run}/cancel"),
                Body::None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "cancelled");
        let (status, body) = server
            .call(
                Some(&token),
                Method::POST,
                &format!("/v1/runs/{run}/cancel"),
                Body::None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("not_running"))
        );

        // Retry: `flaky` fails its first attempt and has no retries left, so
        // the run fails; a retry runs it again (attempt 2 succeeds) and keeps
        // `greet`'s result instead of running it again.
        let yaml = "name: once\nsteps:\n\
                    \x20 - id: greet\n    task: hello\n    input: {name: Ada}\n\
                    \x20 - id: flaky\n    task: flaky\n    needs: [greet]\n    input: {fail_times: 1}\n    retry: {max_attempts: 1}\n";
        server.push(&token, "once", yaml).await;
        let run = server.start_run(&token, "once", json!({})).await;
        let failed = server.wait(&token, run).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        assert_eq!(failed["error"]["step"], "flaky");

        let (status, body) = server
            .call(Some(&token), Method::POST, &format!("/v1/runs/{run}/retry"), Body::None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let retried = server.wait(&token, run).await;
        assert_eq!(retried["status"], "succeeded", "{retried}");
        assert_eq!(
            retried["steps"][0]["attempts"].as_array().unwrap().len(),
            1,
            "greet ran again"
        );
        let flaky = &retried["steps"][1];
        assert_eq!(flaky["attempts"].as_array().unwrap().len(), 2);
        assert_eq!(flaky["output"]["succeeded_on_attempt"], 2);

        let (status, body) = server
            .call(Some(&token), Method::POST, &format!("/v1/runs/{run}/retry"), Body::None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("cannot_retry"))
        );

        // Reset: the succeeded run runs again from `greet`, so both steps
        // run again, their attempt numbers going on; `flaky` (told to fail
        // once) succeeds on its third attempt.
        let reset = format!("/v1/runs/{run}/reset");
        let (status, body) = server
            .call(Some(&token), Method::POST, &reset, Body::Json(json!({"from": "greet"})))
            .await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("running")), "{body}");
        let again = server.wait(&token, run).await;
        assert_eq!(again["status"], "succeeded", "{again}");
        assert_eq!(again["steps"][0]["attempts"].as_array().unwrap().len(), 2);
        assert_eq!(again["steps"][1]["attempts"].as_array().unwrap().len(), 3);
        let events = server.call(Some(&token), Method::GET, &format!("/v1/runs/{run}/events"), Body::None).await;
        let resets: Vec<&Value> = events.1["events"].as_array().into_iter().flatten()
            .filter(|e| e["event"] == "run_reset").collect();
        assert_eq!(resets.len(), 1, "{}", events.1);
        assert_eq!(resets[0]["from"], "greet");
        for (body, code) in [
            (json!({"from": "nope"}), "cannot_reset"),
            (json!({}), "invalid_body"),
            (json!({"from": "greet", "extra": 1}), "invalid_body"),
        ] {
            let (_, answer) = server.call(Some(&token), Method::POST, &reset, Body::Json(body.clone())).await;
            assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        }
        let other = server.tenant("other", json!({})).await;
        let (status, _) = server
            .call(Some(&other), Method::POST, &reset, Body::Json(json!({"from": "greet"})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's run is not found");
    }
}
