//! The audit trail: each mutating request leaves exactly one entry, with
//! the right actor, role, route and outcome, in its tenant's trail (the
//! admin's in the server's); none holds a token or a secret's value.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{ADMIN, Body, Server};

const SECRET_VALUE: &str = "sk_live_do_not_log_me";

/// Every entry of a trail, newest first, following the cursor two at a
/// time.
async fn trail(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let (status, body) = server.call(Some(token), Method::GET, &page, Body::None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        entries.extend(body["entries"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return entries,
        }
    }
}

crate::on_both_backends! {
    async fn every_mutating_request_leaves_one_entry_and_no_secret(store: TestStore) {
        let server = Server::on_with_key(&store, &[]);
        let admin = server.tenant("acme", json!({})).await;
        let (_, made) = server
            .call(Some(ADMIN), Method::POST, "/v1/admin/tenants/acme/keys", Body::Json(json!({"role": "viewer"})))
            .await;
        let viewer = made["token"].as_str().unwrap().to_string();
        let viewer_id = made["key_id"].as_str().unwrap().to_string();
        let admin_id = admin.split('_').nth(1).unwrap().to_string();

        // (method, path, body, token, expected status, outcome)
        server.upload(&admin, &["hello"]).await;
        server.push(&admin, "greet", "name: greet\nsteps:\n  - {id: hi, task: hello, input: {name: Ada}}\n").await;
        let run = server.start_run(&admin, "greet", json!({})).await;
        server.wait(&admin, run).await;
        let calls = [
            (Method::PUT, "/v1/secrets/psp".to_string(), Body::Json(json!({"value": SECRET_VALUE})), &admin, 201),
            (Method::POST, format!("/v1/runs/{run}/cancel"), Body::None, &admin, 409),
            (Method::POST, format!("/v1/runs/{run}/retry"), Body::None, &viewer, 403),
            (Method::DELETE, "/v1/secrets/psp".to_string(), Body::None, &admin, 204),
        ];
        for (method, path, body, token, expected) in &calls {
            let (status, answer) = server.call(Some(token), method.clone(), path, body.clone()).await;
            assert_eq!(status.as_u16(), *expected, "{method} {path}: {answer}");
        }
        // Reads leave nothing.
        server.call(Some(&viewer), Method::GET, "/v1/runs", Body::None).await;

        let entries = trail(&server, &admin, "/v1/audit").await;
        let seen: Vec<(String, String, u64, String, String)> = entries
            .iter()
            .rev()
            .map(|e| {
                (
                    e["method"].as_str().unwrap().to_string(),
                    e["route"].as_str().unwrap().to_string(),
                    e["status"].as_u64().unwrap(),
                    e["outcome"].as_str().unwrap().to_string(),
                    e["key_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected = [
            ("PUT", "/v1/modules/{name}", 201, "ok", &admin_id),
            ("PUT", "/v1/workflows/{name}", 200, "ok", &admin_id),
            ("POST", "/v1/workflows/{name}/runs", 201, "ok", &admin_id),
            ("PUT", "/v1/secrets/{name}", 201, "ok", &admin_id),
            ("POST", "/v1/runs/{id}/cancel", 409, "failed", &admin_id),
            ("POST", "/v1/runs/{id}/retry", 403, "refused", &viewer_id),
            ("DELETE", "/v1/secrets/{name}", 204, "ok", &admin_id),
        ];
        let expected: Vec<(String, String, u64, String, String)> = expected
            .iter()
            .map(|(m, r, s, o, k)| (m.to_string(), r.to_string(), *s, o.to_string(), k.to_string()))
            .collect();
        assert_eq!(seen, expected, "one entry per mutating request, oldest last: {entries:#?}");
        assert_eq!(entries[1]["role"], "viewer");
        assert_eq!(entries[1]["path"], format!("/v1/runs/{run}/retry"));
        assert_eq!(entries[0]["address"], "127.0.0.1");
        let text = serde_json::to_string(&entries).unwrap();
        for secret in [SECRET_VALUE, admin.as_str(), viewer.as_str(), ADMIN] {
            assert!(!text.contains(secret), "the trail holds a secret: {text}");
        }
        // Another tenant's trail is its own.
        let other = server.tenant("globex", json!({})).await;
        assert!(trail(&server, &other, "/v1/audit").await.is_empty());

        let server_trail = trail(&server, ADMIN, "/v1/admin/audit").await;
        let routes: Vec<&str> = server_trail.iter().rev().map(|e| e["route"].as_str().unwrap()).collect();
        assert_eq!(routes, ["/v1/admin/tenants", "/v1/admin/tenants/{id}/keys", "/v1/admin/tenants"]);
        assert!(server_trail.iter().all(|e| e["actor"] == "admin" && e.get("key_id").is_none()));
        assert!(!serde_json::to_string(&server_trail).unwrap().contains(ADMIN));
    }
}
