//! The server stopped in the middle of runs, by SIGKILL or by SIGTERM,
//! and started again on the same data directory: no run is lost, none
//! is left hanging, completed steps are not run again.

use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use crate::backend::TestStore;
use crate::server::{Body, Server};

const SLOW: &str = "name: slow\nsteps:\n\
    \x20 - id: first\n    task: hello\n    input: {name: Ada}\n\
    \x20 - id: nap\n    task: misbehave\n    needs: [first]\n    input: {mode: sleep, ms: 400}\n\
    \x20 - id: last\n    task: hello\n    needs: [nap]\n    input: {name: Grace}\n";

async fn start_runs(server: &Server, token: &str, n: usize) -> Vec<u64> {
    let mut runs = Vec::new();
    for _ in 0..n {
        runs.push(server.start_run(token, "slow", json!({})).await);
    }
    runs
}

async fn all_succeed_once(server: &Server, token: &str, runs: &[u64]) {
    for run in runs {
        let done = server.wait(token, *run).await;
        assert_eq!(done["status"], "succeeded", "run {run}: {done}");
        let first = &done["steps"][0];
        assert_eq!(first["step"], "first");
        assert_eq!(
            first["attempts"].as_array().unwrap().len(),
            1,
            "run {run} ran `first` again"
        );
    }
    let (_, page) = server
        .call(Some(token), Method::GET, "/v1/runs?limit=500", Body::None)
        .await;
    assert_eq!(page["runs"].as_array().unwrap().len(), runs.len(), "{page}");
}

crate::on_both_backends! {
    async fn a_killed_server_resumes_every_run_on_restart(store: TestStore) {
        let server = Server::on(&store, &[]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["hello", "misbehave"]).await;
        server.push(&token, "slow", SLOW).await;
        let runs = start_runs(&server, &token, 8).await;
        // Let every `first` finish, so the kill lands while the naps run.
        for run in &runs {
            let deadline = Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let (_, body) = server
                    .call(Some(&token), Method::GET, &format!("/v1/runs/{run}"), Body::None)
                    .await;
                if body["steps"][0]["status"] == "succeeded" {
                    assert_eq!(body["status"], "running", "the nap is too short for the test");
                    break;
                }
                assert!(Instant::now() < deadline);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        server.kill();

        let started = Instant::now();
        let server = Server::on(&store, &[]);
        let up = started.elapsed();
        assert!(up.as_secs() < 5, "restart took {up:?}");
        all_succeed_once(&server, &token, &runs).await;
    }
}

crate::on_both_backends! {
    async fn sigterm_lets_running_attempts_finish_and_a_restart_finishes_the_rest(store: TestStore) {
        let server = Server::on(&store, &["--shutdown-grace", "10s"]);
        let token = server.tenant("acme", json!({})).await;
        server.upload(&token, &["hello", "misbehave"]).await;
        server.push(&token, "slow", SLOW).await;
        let runs = start_runs(&server, &token, 4).await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let status = server.terminate();
        assert!(status.success(), "weft serve exited with {status}");

        let server = Server::on(&store, &[]);
        all_succeed_once(&server, &token, &runs).await;
    }
}

/// The value of a counter in the server's `/metrics`.
async fn counter(server: &Server, name: &str) -> f64 {
    let text = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[tokio::test]
async fn a_restarted_server_reads_its_modules_compiled_instead_of_compiling_them() {
    let store = TestStore::redb();
    let server = Server::on(&store, &[]);
    let token = server.tenant("acme", json!({})).await;
    server.upload(&token, &["hello"]).await;
    server
        .push(
            &token,
            "greet",
            "name: greet\nsteps:\n  - {id: hi, task: hello, input: {name: Ada}}\n",
        )
        .await;
    let first = server.start_run(&token, "greet", json!({})).await;
    assert_eq!(server.wait(&token, first).await["status"], "succeeded");
    assert_eq!(
        counter(&server, "weft_compiled_cache_misses_total").await,
        1.0,
        "compiled once, at upload"
    );
    let cached = std::fs::read_dir(store.scratch().join("module-cache")).unwrap().count();
    assert_eq!(cached, 2, "one compiled module and its sum in DATA/module-cache");
    server.kill();

    let server = Server::on(&store, &[]);
    let again = server.start_run(&token, "greet", json!({})).await;
    assert_eq!(server.wait(&token, again).await["status"], "succeeded");
    assert_eq!(
        counter(&server, "weft_compiled_cache_hits_total").await,
        1.0,
        "read from disk"
    );
    assert_eq!(
        counter(&server, "weft_compiled_cache_misses_total").await,
        0.0,
        "not compiled again"
    );
    server.kill();

    // With the directory gone the runner compiles from the store's bytes,
    // once, and writes it back.
    std::fs::remove_dir_all(store.scratch().join("module-cache")).unwrap();
    let server = Server::on(&store, &[]);
    let again = server.start_run(&token, "greet", json!({})).await;
    assert_eq!(server.wait(&token, again).await["status"], "succeeded");
    assert_eq!(
        counter(&server, "weft_compiled_cache_misses_total").await,
        1.0,
        "one miss, counted once"
    );
    let cached = std::fs::read_dir(store.scratch().join("module-cache")).unwrap().count();
    assert_eq!(cached, 2, "written back");
}

/// A Python task's first attempt after a restart: its 40 MB compiled
/// artifact is mapped from `DATA/module-cache` instead of compiled again
/// (seconds), and a planted corrupt artifact is caught and compiled anew.
#[tokio::test]
async fn a_restarted_server_runs_a_python_task_without_compiling_it_and_refuses_a_corrupt_artifact() {
    let Some(component) = crate::python_guest::component("hello") else {
        return;
    };
    let bytes = std::fs::read(&component).unwrap();
    let store = TestStore::redb();
    let server = Server::on(&store, &[]);
    let token = server.tenant("acme", json!({})).await;
    let started = Instant::now();
    let (status, body) = server
        .call(
            Some(&token),
            Method::PUT,
            "/v1/modules/hello_py",
            Body::Raw("application/wasm", bytes),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let compile = started.elapsed();
    server
        .push(
            &token,
            "greet",
            "name: greet\nsteps:\n  - {id: hi, task: hello_py, input: {name: Ada}}\n",
        )
        .await;
    let first = server.start_run(&token, "greet", json!({})).await;
    assert_eq!(server.wait(&token, first).await["status"], "succeeded");
    assert_eq!(counter(&server, "weft_compiled_cache_misses_total").await, 1.0);
    server.kill();

    // Restarted: read from disk, and the run is done long before a compile
    // could be (the bench's python_first_attempt_cached_ms has the target).
    let server = Server::on(&store, &[]);
    let (run, took) = timed_run(&server, &token).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        [
            counter(&server, "weft_compiled_cache_hits_total").await,
            counter(&server, "weft_compiled_cache_misses_total").await,
        ],
        [1.0, 0.0],
        "read from disk, not compiled"
    );
    eprintln!("Python upload with its compile: {compile:.1?}; first run after a restart: {took:.1?}");
    assert!(
        took < compile / 2,
        "the first run after a restart took {took:?}, the upload's compile {compile:?}"
    );
    server.kill();

    // One flipped bit in the artifact: refused, compiled again, rewritten.
    let artifact = std::fs::read_dir(store.scratch().join("module-cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a compiled artifact");
    let mut corrupt = std::fs::read(&artifact).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x01;
    std::fs::write(&artifact, corrupt).unwrap();
    let server = Server::on(&store, &[]);
    let (run, _) = timed_run(&server, &token).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        [
            counter(&server, "weft_compiled_cache_rejected_total").await,
            counter(&server, "weft_compiled_cache_hits_total").await,
        ],
        [1.0, 0.0],
        "the corrupt artifact is refused and the task compiled again"
    );
    server.kill();
    let server = Server::on(&store, &[]);
    let (run, _) = timed_run(&server, &token).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        counter(&server, "weft_compiled_cache_hits_total").await,
        1.0,
        "the artifact written again is read"
    );
}

/// Starts `greet` and waits for it; the run and how long that took.
async fn timed_run(server: &Server, token: &str) -> (serde_json::Value, std::time::Duration) {
    let started = Instant::now();
    let run = server.start_run(token, "greet", json!({})).await;
    let run = server.wait(token, run).await;
    (run, started.elapsed())
}
