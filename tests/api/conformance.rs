//! The OpenAPI document says exactly what the server does: schemathesis
//! (installed from PyPI into a scratch virtual environment) runs every
//! check in every phase (examples, coverage, fuzzing, stateful) against a
//! live server, authenticated as a tenant and as the admin, and any
//! finding fails the test with the finding.
//!
//! Its settings are in `schemathesis.toml` beside this file. It runs in
//! two passes, the tenant's operations and then the admin's, because the
//! admin's may disable the very tenant the first pass acts as.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use crate::python::{self, Venv};
use crate::server::{ADMIN, Body, Server};

/// Pinned, with the libraries it generates with, so that a new release
/// cannot fail a build that changed nothing.
const SCHEMATHESIS: [&str; 3] = ["schemathesis==4.32.5", "hypothesis==6.170.17", "jsonschema_rs==0.60.3"];

/// Generated cases per operation and phase: enough to reach every
/// declared status, few enough for CI. Fixed seed: a finding reproduces.
const MAX_EXAMPLES: &str = "50";
const SEED: &str = "20261202";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_difference_between_the_document_and_the_server() {
    let Some(venv) = python::venv(&SCHEMATHESIS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    // Quotas far above what the run can reach: a 429 would be right, but
    // would hide the answers behind it.
    let quotas = json!({"start_rate": 1.0e6, "max_concurrent_runs": 1_000_000, "max_modules": 1_000_000});
    let token = server.tenant("acme", quotas).await;
    server.tenant("globex", json!({})).await;
    // What schemathesis.toml's dictionaries name: `hello` twice (as
    // `spare` for the module operations to delete), workflow `hi`, run 1,
    // secret `api_token`.
    server.upload(&token, &["hello"]).await;
    let (status, _) = server
        .call(
            Some(&token),
            Method::PUT,
            "/v1/modules/spare",
            Body::Raw("application/wasm", crate::common::guest_bytes("hello")),
        )
        .await;
    assert!(status.is_success());
    server
        .push(&token, "hi", "name: hi\nsteps:\n  - id: hi\n    task: hello\n")
        .await;
    let (status, _) = server
        .call(
            Some(&token),
            Method::PUT,
            "/v1/secrets/api_token",
            Body::Json(json!({"value": "conformance"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let run = server.start_run(&token, "hi", json!({"name": "Ada"})).await;
    assert_eq!(run, 1, "schemathesis.toml names run 1");
    server.wait(&token, run).await;

    run_schemathesis(
        &venv,
        &server,
        dir.path(),
        &token,
        "tenant",
        &["--exclude-path-regex", "^/v1/admin"],
    );
    // The admin pass has no stateful scenario of its own (its operations
    // link to none of each other), and schemathesis's link inference,
    // seeing the tenant operations it does not run, links the admin's
    // new tenant to the tenant's `/v1/api-keys` with a parameter those do
    // not take, then refuses to run: so no stateful phase there.
    run_schemathesis(
        &venv,
        &server,
        dir.path(),
        &token,
        "admin",
        &[
            "--include-path-regex",
            "^/v1/admin",
            "--phases",
            "examples,coverage,fuzzing",
        ],
    );
}

/// Runs schemathesis over the operations `filter` selects, and fails with
/// its report if it found anything.
fn run_schemathesis(venv: &Venv, server: &Server, scratch: &Path, token: &str, pass: &str, filter: &[&str]) {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml");
    let started = Instant::now();
    let output = Command::new(venv.bin("schemathesis"))
        .current_dir(scratch) // it keeps a cache in the working directory
        .args(["--no-color", "--config-file", config, "run"])
        .arg(format!("{}/v1/openapi.json", server.url))
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", SEED])
        // One worker: hypothesis 6.170 fails intermittently ("AST constructor
        // recursion depth mismatch") when schemathesis generates in threads.
        .args(["--workers", "1", "--request-timeout", "60"])
        .args(filter)
        .env("WEFT_TEST_TENANT_KEY", token)
        .env("WEFT_TEST_ADMIN_TOKEN", ADMIN)
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "schemathesis, {pass} pass, took {:.0?}:\n{}",
        started.elapsed(),
        summary(&stdout)
    );
    assert!(
        output.status.success(),
        "schemathesis ({pass} pass) found differences between the document and the server:\n{stdout}\n{stderr}"
    );
    // A run that tested nothing would also exit 0.
    let tested = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        tested >= 5,
        "schemathesis ({pass} pass) tested {tested} operations:\n{stdout}"
    );
}

/// The end of schemathesis's report: the phases and the counts.
fn summary(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    let from = lines.iter().rposition(|l| l.contains(" SUMMARY ")).unwrap_or(0);
    lines[from..].join("\n")
}
