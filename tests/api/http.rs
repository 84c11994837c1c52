//! Outbound HTTP through the real server: the order-http workflow charges
//! a card at the stand-in gateway with the tenant's secret, every request
//! is recorded with its attempt, and a step cannot reach further than its
//! tenant's allow-list.

use std::net::SocketAddr;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{ADMIN, Body, Server};

#[path = "../../example-tasks/stand-in/services.rs"]
mod stand_in;

const KEY: &str = "sk_test_sealed_7f3c91";

/// The stand-in services on a free port, with `key` as the gateway's key.
async fn services(key: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = stand_in::app(key.to_string());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// order-http.yaml pointed at `address` instead of 127.0.0.1:8787.
fn order_http(address: SocketAddr) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-tasks/workflows/order-http.yaml");
    let yaml = std::fs::read_to_string(path).unwrap();
    assert!(yaml.contains("127.0.0.1:8787"));
    yaml.replace("127.0.0.1:8787", &address.to_string())
}

/// The attempts of `step` in a run as `GET /v1/runs/{id}` shows it.
fn attempts<'a>(run: &'a Value, step: &str) -> &'a Vec<Value> {
    let step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {run}"));
    step["attempts"].as_array().unwrap()
}

crate::on_both_backends! {
    async fn order_http_pays_at_the_gateway_with_a_secret_the_task_never_holds(store: TestStore) {
        let address = services(KEY).await;
        let server = Server::on_with_key(&store, &["--allow-private-http"]);
        let origin = format!("http://{address}");
        let tenant = server.tenant("shop", json!({"http_allow": [origin]})).await;
        server
            .upload(&tenant, &["http_fetch", "reserve_inventory", "notify_warehouse"])
            .await;
        let (status, answer) = server
            .call(
                Some(&tenant),
                Method::PUT,
                "/v1/secrets/payment_key",
                Body::Json(json!({"value": KEY})),
            )
            .await;
        assert!(status.is_success(), "{status} {answer}");
        server.push(&tenant, "order-http", &order_http(address)).await;

        let (_, input) = crate::server::order();
        let run = server.start_run(&tenant, "order-http", input.clone()).await;
        let ended = server.wait(&tenant, run).await;
        assert_eq!(ended["status"], "succeeded", "{ended}");
        assert_eq!(ended["output"]["charge_id"], "ch_A-1001", "{ended}");
        assert_eq!(ended["output"]["confirmation"], "msg_1", "{ended}");

        let charge = &attempts(&ended, "charge_payment")[0];
        let call = &charge["http"][0];
        assert_eq!(call["method"], "POST");
        assert_eq!(call["url"], format!("{origin}/v1/charges"));
        assert_eq!(call["status"], 201);
        assert!(call["sent"].as_u64().unwrap() > 0 && call["received"].as_u64().unwrap() > 0, "{call}");

        // A declined card: the gateway's 402 fails the step for good.
        let mut declined = input;
        declined["order_id"] = json!("A-1002");
        declined["card_number"] = json!("4000 0000 0000 0002");
        let run = server.start_run(&tenant, "order-http", declined).await;
        let failed = server.wait(&tenant, run).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        let charge = attempts(&failed, "charge_payment");
        assert_eq!(charge.len(), 1, "a 4xx is not retried: {failed}");
        assert_eq!(charge[0]["error"]["code"], "http_status", "{failed}");
        assert_eq!(charge[0]["http"][0]["status"], 402);

        // The key is in no answer: runs, events, the secrets list.
        let mut seen = String::new();
        for path in ["/v1/runs?limit=10", "/v1/secrets", "/v1/runs/1", "/v1/runs/1/events"] {
            let (status, body) = server.call(Some(&tenant), Method::GET, path, Body::None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            seen.push_str(&body.to_string());
        }
        assert!(seen.contains("payment_key") && !seen.contains(KEY), "{seen}");

        // Counted per tenant: two charges and an e-mail answered.
        let metrics = server.http.get(format!("{}/metrics", server.url)).send().await.unwrap();
        let metrics = metrics.text().await.unwrap();
        let ok = metrics
            .lines()
            .find(|l| l.starts_with("weft_http_requests_total{") && l.contains("shop") && l.contains("\"ok\""))
            .unwrap_or_else(|| panic!("no weft_http_requests_total for shop:\n{metrics}"));
        assert!(ok.ends_with(" 3"), "{ok}");
        assert!(metrics.contains("weft_http_sent_bytes_total{tenant=\"shop\"}"), "{metrics}");

        // The admin closes the tenant's list: the workflow pushed before
        // is held to it from the next attempt on.
        let (status, changed) = server
            .call(
                Some(ADMIN),
                Method::PATCH,
                "/v1/admin/tenants/shop",
                Body::Json(json!({"quotas": {"http_allow": []}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["quotas"]["http_allow"], json!([]), "{changed}");
        let mut closed = crate::server::order().1;
        closed["order_id"] = json!("A-1003");
        let run = server.start_run(&tenant, "order-http", closed).await;
        let failed = server.wait(&tenant, run).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        let charge = attempts(&failed, "charge_payment");
        assert!(charge[0]["http"][0]["refused"].is_string(), "{failed}");
    }
}

crate::on_both_backends! {
    async fn a_step_reaching_beyond_its_tenant_is_refused_at_push(store: TestStore) {
        let server = Server::on(&store, &[]);
        let tenant = server
            .tenant("narrow", json!({"http_allow": ["https://api.example.com/v1/"], "max_http_requests": 10}))
            .await;
        server.upload(&tenant, &["http_fetch"]).await;
        let doc = |http: &str| {
            format!("name: fetch\nsteps:\n  - id: get\n    task: http_fetch\n    input: {{url: https://api.example.com/v1/x}}\n    http: {http}\n")
        };
        let push = |yaml: String| {
            let server = &server;
            let tenant = &tenant;
            async move {
                server
                    .call(
                        Some(tenant),
                        Method::PUT,
                        "/v1/workflows/fetch",
                        Body::Raw("application/yaml", yaml.into_bytes()),
                    )
                    .await
            }
        };
        for (http, why) in [
            (r#"{allow: ["https://evil.example.net"]}"#, "https://evil.example.net"),
            (r#"{allow: ["https://*.example.com"]}"#, "https://*.example.com"),
            (r#"{allow: ["https://api.example.com"]}"#, "https://api.example.com"),
            (r#"{allow: ["https://api.example.com/v1/"], limits: {requests: 11}}"#, "requests"),
        ] {
            let (status, answer) = push(doc(http)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{http}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(why), "{http}: {message}");
        }
        let (status, answer) = push(doc(r#"{allow: ["https://api.example.com/v1/orders"], limits: {requests: 10}}"#)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        // A tenant the admin gave no allow-list may not ask for any.
        let closed = server.tenant("closed", json!({})).await;
        server.upload(&closed, &["http_fetch"]).await;
        let (status, answer) = server
            .call(
                Some(&closed),
                Method::PUT,
                "/v1/workflows/fetch",
                Body::Raw("application/yaml", doc(r#"{allow: ["https://api.example.com/v1/"]}"#).into_bytes()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

        // The admin's list itself is checked.
        let (status, answer) = server
            .call(
                Some(ADMIN),
                Method::POST,
                "/v1/admin/tenants",
                Body::Json(json!({"name": "sloppy", "quotas": {"http_allow": ["not a url"]}})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

        // Changed later: checked the same way; what is not given is kept.
        let patch = |tenant: &'static str, quotas: Value| {
            let server = &server;
            async move {
                server
                    .call(
                        Some(ADMIN),
                        Method::PATCH,
                        &format!("/v1/admin/tenants/{tenant}"),
                        Body::Json(json!({ "quotas": quotas })),
                    )
                    .await
            }
        };
        let (status, answer) = patch("narrow", json!({"http_allow": ["not a url"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let (status, answer) = patch("nobody", json!({"max_fuel": 5})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        let (status, answer) = patch("narrow", json!({"max_fuel": 5_000_000})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["quotas"]["max_fuel"], 5_000_000);
        assert_eq!(answer["quotas"]["max_http_requests"], 10, "kept: {answer}");
        assert_eq!(answer["quotas"]["http_allow"], json!(["https://api.example.com/v1/"]), "kept: {answer}");
    }
}
