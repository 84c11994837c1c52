//! Every kind of bad request gets a clear 4xx with a stable code, and
//! changes nothing that is stored.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{ADMIN, Body, ORDER_TASKS, Server, order};

/// Everything a tenant can see, to compare before and after.
async fn snapshot(server: &Server, token: &str) -> Value {
    let mut state = serde_json::Map::new();
    for path in ["/v1/modules", "/v1/workflows", "/v1/runs"] {
        let (status, body) = server.call(Some(token), Method::GET, path, Body::None).await;
        assert_eq!(status, StatusCode::OK);
        state.insert(path.into(), body);
    }
    let (_, tenants) = server
        .call(Some(ADMIN), Method::GET, "/v1/admin/tenants", Body::None)
        .await;
    state.insert("tenants".into(), tenants);
    Value::Object(state)
}

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body", "16KiB", "--max-module-body", "1MiB"]);
    let token = server.tenant("acme", json!({})).await;
    server.upload(&token, &ORDER_TASKS).await;
    let (yaml, _) = order();
    server.push(&token, "order", &yaml).await;

    let core_module = wat::parse_str("(module)").unwrap();
    let wasm = |bytes: Vec<u8>| Body::Raw("application/wasm", bytes);
    let yaml_body = |text: &str| Body::Raw("application/yaml", text.as_bytes().to_vec());
    let json_text = |text: &str| Body::Raw("application/json", text.as_bytes().to_vec());
    let cases: Vec<(&str, Method, String, Body, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            json_text("{\"input\": "),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "a wait that is not a duration",
            Method::POST,
            "/v1/workflows/order/runs?wait=forever".into(),
            json_text("{}"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "a wait in a unit it does not take",
            Method::POST,
            "/v1/workflows/order/runs?wait=1h".into(),
            json_text("{}"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "an unknown query parameter",
            Method::GET,
            "/v1/runs?limt=5".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "a page size below the minimum",
            Method::GET,
            "/v1/runs?limit=0".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "a status that is not one",
            Method::GET,
            "/v1/runs?status=done".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "a priority with a fraction",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            json_text("{\"priority\": 1.5}"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "an input that is not an object",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            json_text("{\"input\": [1, 2]}"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "a negative start rate",
            Method::POST,
            "/v1/admin/tenants".into(),
            Body::Json(json!({"name": "rated", "quotas": {"start_rate": -1}})),
            StatusCode::BAD_REQUEST,
            "invalid_quotas",
        ),
        (
            "an unknown field",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            json_text("{\"inptu\": {}}"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "malformed YAML",
            Method::PUT,
            "/v1/workflows/order".into(),
            yaml_body("name: order\nsteps: [unclosed\n"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
        ),
        (
            "a workflow as text/plain",
            Method::PUT,
            "/v1/workflows/order".into(),
            Body::Raw("text/plain", yaml.as_bytes().to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a module as JSON",
            Method::PUT,
            "/v1/modules/x".into(),
            Body::Raw("application/json", b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a start as form data",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            Body::Raw("application/x-www-form-urlencoded", b"input=1".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "an oversized JSON body",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            Body::Json(json!({"input": {"pad": "x".repeat(32 << 10)}})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "an oversized module",
            Method::PUT,
            "/v1/modules/big".into(),
            wasm(vec![0; 2 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "a path-traversal module name",
            Method::PUT,
            "/v1/modules/..%2F..%2Fetc".into(),
            wasm(crate::common::guest_bytes("hello")),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            "a control character in a name",
            Method::PUT,
            "/v1/workflows/or%0Ader".into(),
            yaml_body(&yaml),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            "a bad tenant name",
            Method::POST,
            "/v1/admin/tenants".into(),
            Body::Json(json!({"name": "../root"})),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            "bytes that are not wasm",
            Method::PUT,
            "/v1/modules/junk".into(),
            wasm(b"definitely not wasm".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
        ),
        (
            "a core module",
            Method::PUT,
            "/v1/modules/core".into(),
            wasm(core_module),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
        ),
        (
            "a component of another world",
            Method::PUT,
            "/v1/modules/command".into(),
            wasm(std::fs::read(crate::common::guest("hello").with_file_name("not_a_task.wasm")).unwrap()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
        ),
        (
            "an unknown module in a workflow",
            Method::PUT,
            "/v1/workflows/ghost".into(),
            yaml_body("name: ghost\nsteps:\n  - id: a\n    task: no_such_module\n"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_module",
        ),
        (
            "a document named otherwise",
            Method::PUT,
            "/v1/workflows/other".into(),
            yaml_body(&yaml),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_mismatch",
        ),
        (
            "input failing the input_schema",
            Method::POST,
            "/v1/workflows/order/runs".into(),
            Body::Json(json!({"input": {"order_id": 7}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "a run id that is not a number",
            Method::GET,
            "/v1/runs/abc".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
    ];
    let before = snapshot(&server, &token).await;
    for (case, method, path, body, status, code) in cases {
        let as_who = if path.starts_with("/v1/admin") { ADMIN } else { &token };
        let (got, answer) = server.call(Some(as_who), method, &path, body).await;
        assert_eq!(got, status, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{case}: no message");
        assert_eq!(
            snapshot(&server, &token).await,
            before,
            "{case} changed the stored state"
        );
    }
}

#[tokio::test]
async fn a_400_names_the_parameter_header_or_field_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let token = server.tenant("acme", json!({})).await;
    // Method, path, a header, the body, and the name the 400 must give.
    type Case = (
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
        Body,
        &'static str,
    );
    let cases: [Case; 5] = [
        ("GET", "/v1/runs?limit=501", None, Body::None, "limit"),
        ("GET", "/v1/runs?cursor=x", None, Body::None, "cursor"),
        (
            "GET",
            "/v1/runs/1/events",
            Some(("Last-Event-ID", "seven")),
            Body::None,
            "Last-Event-ID",
        ),
        (
            "POST",
            "/v1/workflows/order/runs",
            Some(("Idempotency-Key", "")),
            Body::None,
            "Idempotency-Key",
        ),
        (
            "POST",
            "/v1/workflows/order/runs",
            None,
            Body::Json(json!({"priority": "high"})),
            "priority",
        ),
    ];
    for (method, path, header, body, field) in cases {
        let mut request = server
            .http
            .request(method.parse().unwrap(), format!("{}{path}", server.url))
            .bearer_auth(&token);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        if let Body::Json(value) = body {
            request = request.json(&value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["error"]["details"][0]["path"], field,
            "{method} {path}: {answer}"
        );
    }
}
