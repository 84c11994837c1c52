//! Inbound hooks through the real server: a signed request starts a run
//! with the input its mapping gives; a bad, stale or missing signature
//! and an unknown hook or tenant are 401 and start nothing; a replayed
//! delivery starts no second run.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft::triggers::signature::sign;

use crate::backend::TestStore;
use crate::server::{Body, Server};

const GREET: &str = "
name: greet
steps:
  - {id: hello, task: hello, input: {name: '${{ input.who }}'}}
output: {who: '${{ input.who }}', via: '${{ input.via }}'}
";

const SECRET: &str = "whsec_test_4f1c";

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// POSTs `body` to a hook with a signature header (if any) and a delivery
/// id (if any).
async fn deliver(
    server: &Server,
    path: &str,
    body: &[u8],
    signature: Option<String>,
    id: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .header("user-agent", "Sender/2.0")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Weft-Signature", signature);
    }
    if let Some(id) = id {
        request = request.header("Idempotency-Key", id);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn run_count(server: &Server, token: &str) -> usize {
    let (_, body) = server
        .call(Some(token), Method::GET, "/v1/runs?workflow=greet", Body::None)
        .await;
    body["runs"].as_array().unwrap().len()
}

crate::on_both_backends! {
    async fn a_signed_request_starts_one_run_and_nothing_else_does(store: TestStore) {
        let server = Server::on_with_key(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        let other = server.tenant("globex", json!({})).await;
        server.upload(&token, &["hello"]).await;
        server.push(&token, "greet", GREET).await;
        let (status, body) = server
            .call(Some(&token), Method::PUT, "/v1/secrets/order_hook", Body::Json(json!({"value": SECRET})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        for (spec, field) in [
            (json!({"workflow": "nope", "secret": "order_hook"}), "workflow"),
            (json!({"workflow": "greet", "secret": "9lives"}), "secret"),
            (json!({"workflow": "greet", "secret": "order_hook", "input": "{'who': input.x}"}), "input"),
            (json!({"workflow": "greet", "secret": "order_hook", "input": "body."}), "input"),
        ] {
            let (status, body) = server.call(Some(&token), Method::PUT, "/v1/hooks/orders", Body::Json(spec)).await;
            assert_eq!((status, &body["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_hook")), "{body}");
            assert_eq!(body["error"]["details"][0]["path"], field, "{body}");
        }
        let hook = json!({"workflow": "greet", "secret": "order_hook",
            "input": "{'who': body.customer.name, 'via': headers['user-agent']}"});
        let (status, body) = server.call(Some(&token), Method::PUT, "/v1/hooks/orders", Body::Json(hook)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let path = body["path"].as_str().unwrap().to_string();
        assert_eq!(path, "/v1/hooks/acme/orders");

        let payload = br#"{"customer": {"name": "Ada"}, "total": 1999}"#;
        let signed = sign(SECRET.as_bytes(), now_secs(), payload);
        let (status, body) = deliver(&server, &path, payload, Some(signed.clone()), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let run = body["run"].as_u64().unwrap();
        assert_eq!(body["duplicate"], false);
        let done = server.wait(&token, run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["output"], json!({"who": "Ada", "via": "Sender/2.0"}), "{done}");

        // The same request again (a replay): the run it started, no other.
        let (status, body) = deliver(&server, &path, payload, Some(signed), None).await;
        assert_eq!((status, &body["run"], &body["duplicate"]), (StatusCode::OK, &json!(run), &json!(true)), "{body}");
        // A delivery id: one run for it, whatever the signature's time.
        let first = deliver(&server, &path, payload, Some(sign(SECRET.as_bytes(), now_secs() - 10, payload)), Some("evt_1")).await;
        assert_eq!(first.0, StatusCode::CREATED, "{:?}", first.1);
        let again = deliver(&server, &path, payload, Some(sign(SECRET.as_bytes(), now_secs(), payload)), Some("evt_1")).await;
        assert_eq!((again.0, &again.1["run"]), (StatusCode::OK, &first.1["run"]), "{:?}", again.1);
        assert_eq!(run_count(&server, &token).await, 2);

        // Refused, all alike, and nothing started.
        let wrong_key = sign(b"not the secret", now_secs(), payload);
        let stale = sign(SECRET.as_bytes(), now_secs() - 301, payload);
        let other_body = sign(SECRET.as_bytes(), now_secs(), b"{}");
        for (path, signature, why) in [
            (path.as_str(), Some(wrong_key), "signed with another key"),
            (path.as_str(), Some(stale), "more than 5 minutes old"),
            (path.as_str(), Some(other_body), "signed over another body"),
            (path.as_str(), None, "not signed"),
            (path.as_str(), Some("t=1,v1=zz".to_string()), "garbage"),
            ("/v1/hooks/acme/nope", Some(sign(SECRET.as_bytes(), now_secs(), payload)), "no such hook"),
            ("/v1/hooks/nobody/orders", Some(sign(SECRET.as_bytes(), now_secs(), payload)), "no such tenant"),
        ] {
            let (status, body) = deliver(&server, path, payload, signature, Some("evt_2")).await;
            assert_eq!((status, &body["error"]["code"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")), "{why}: {body}");
        }
        assert_eq!(run_count(&server, &token).await, 2, "refused requests start nothing");

        // A body the mapping cannot use.
        let odd = br#"{"customer": 7}"#;
        let (status, body) = deliver(&server, &path, odd, Some(sign(SECRET.as_bytes(), now_secs(), odd)), None).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_input")), "{body}");

        // Another tenant sees none of it; the CLI lists it.
        let (_, list) = server.call(Some(&other), Method::GET, "/v1/hooks", Body::None).await;
        assert_eq!(list["hooks"], json!([]));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["hook", "list"])
            .env("WEFT_URL", &server.url)
            .env("WEFT_TOKEN", &token)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && printed.contains("/v1/hooks/acme/orders"), "{printed}");
        let (status, _) = server.call(Some(&token), Method::DELETE, "/v1/hooks/orders", Body::None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let fresh = sign(SECRET.as_bytes(), now_secs(), payload);
        let (status, _) = deliver(&server, &path, payload, Some(fresh), Some("evt_3")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted hook takes nothing");
    }
}
