//! A Python client generated from the served OpenAPI document by
//! openapi-python-client runs the README's service flow against the real
//! server: the document must describe the API well enough for a generator
//! to make a working client of it, and every answer must parse into the
//! generated models.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common;
use crate::python;
use crate::server::{ADMIN, Server};

/// Pinned, with what the generated client runs on, so that a new release
/// cannot fail a build that changed nothing.
const GENERATOR: [&str; 4] = [
    "openapi-python-client==0.29.1",
    "httpx==0.28.1",
    "attrs==26.1.0",
    "pydantic==2.14.4",
];

/// The request body content types openapi-python-client 0.29.1 can send
/// (`openapi_python_client/parser/bodies.py`); any other one it skips with
/// a warning.
fn sendable(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    matches!(
        essence,
        "application/json" | "application/octet-stream" | "multipart/form-data" | "application/x-www-form-urlencoded"
    ) || essence.ends_with("+json")
}

/// Drops from every request body the content types the generator cannot
/// send when it can send another one (the YAML beside a workflow's JSON),
/// so that they do not warn; returns what it dropped. A body with no
/// content type the generator can send is left for it to warn about.
fn drop_unsendable_alternatives(document: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    let Some(paths) = document["paths"].as_object_mut() else {
        return dropped;
    };
    for (path, item) in paths {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations {
            let Some(content) = operation
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            if content.keys().any(|content_type| sendable(content_type)) {
                content.retain(|content_type, _| {
                    let keep = sendable(content_type);
                    if !keep {
                        dropped.push(format!("{} {path}: {content_type}", method.to_uppercase()));
                    }
                    keep
                });
            }
        }
    }
    dropped
}

/// Runs a command; its stdout, or a panic with everything it printed.
fn run(what: &str, command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what} cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout.into_owned()
}

#[tokio::test]
async fn a_client_generated_from_the_openapi_document_runs_the_service_flow() {
    let Some(venv) = python::venv(&GENERATOR) else { return };
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);

    let response = server
        .http
        .get(format!("{}/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut document: Value = response.json().await.expect("the OpenAPI document is JSON");
    for dropped in drop_unsendable_alternatives(&mut document) {
        eprintln!("left out for the generator, which cannot send it: {dropped}");
    }
    let document_path = work.path().join("openapi.json");
    std::fs::write(&document_path, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    // No post hooks: they only format the code, with ruff.
    let config = work.path().join("config.json");
    std::fs::write(&config, json!({"post_hooks": []}).to_string()).unwrap();

    // Any warning fails: an endpoint, body, response or schema the
    // generator could not make sense of is left out of the client.
    run(
        "openapi-python-client generate",
        Command::new(venv.bin("openapi-python-client"))
            .args(["generate", "--meta", "none", "--fail-on-warning", "--path"])
            .arg(&document_path)
            .arg("--config")
            .arg(&config)
            .arg("--output-path")
            .arg(work.path().join("weft_client")),
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/generated_client.py");
    let stdout = run(
        "generated_client.py",
        Command::new(venv.python())
            .arg(script)
            .args([&server.url, ADMIN])
            .args([common::guest("hello"), common::guest("flaky")])
            .env("PYTHONPATH", work.path()),
    );
    let seen: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let module = &seen["module"];
    assert_eq!(module["name"], "hello", "{module}");
    let run = &seen["run"];
    assert_eq!(run["status"], "succeeded", "{run}");
    // Without an `output` template, a run's output is every step's by id.
    assert_eq!(run["output"], json!({"hi": {"greeting": "Hello, Ada!"}}), "{run}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{run}");
    assert_eq!(
        (&steps[0]["step"], &steps[0]["status"]),
        (&json!("hi"), &json!("succeeded"))
    );
    assert_eq!(steps[0]["output"], json!({"greeting": "Hello, Ada!"}), "{run}");
    assert_eq!(steps[0]["attempts"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(steps[0]["attempts"][0]["outcome"], "ok", "{run}");
    assert_eq!(
        seen["started_again"]["id"], seen["started"]["id"],
        "the same Idempotency-Key"
    );
    assert_eq!(
        seen["logs"]["attempts"].as_array().unwrap().len(),
        1,
        "{}",
        seen["logs"]
    );
    let events = seen["events"]["events"].as_array().unwrap();
    assert_eq!(events.first().unwrap()["event"], "run_started", "{events:?}");
    assert_eq!(events.last().unwrap()["event"], "run_finished", "{events:?}");

    let waited = &seen["waited"];
    assert_eq!(waited["status"], "succeeded", "{waited}");
    assert_eq!(waited["output"], run["output"], "{waited}");
    let listed: Vec<&Value> = seen["runs"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(listed, [&waited["id"], &run["id"]], "newest first");

    let failed = &seen["failed"];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["step"], "flaky", "{failed}");
    let line = &seen["failed_logs"]["attempts"][0]["lines"][0];
    assert!(line["message"].as_str().unwrap().contains("fails on purpose"), "{line}");
    let retried = &seen["retried"];
    assert_eq!(retried["status"], "succeeded", "{retried}");
    assert_eq!(
        retried["steps"][0]["output"],
        json!({"succeeded_on_attempt": 2}),
        "{retried}"
    );
}
