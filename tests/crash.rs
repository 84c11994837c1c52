//! The real `weft` binary, killed with SIGKILL in the middle of a run, then
//! restarted: the run finishes, steps that completed before the kill are
//! not run again and keep their results, and the output is right. On both
//! backends: `--store redb:DIR` and a real PostgreSQL.

#[path = "common/backend.rs"]
mod backend;
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use backend::TestStore;

use serde_json::{Value, json};

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/crash.yaml")
        .display()
        .to_string()
}

/// Starts `weft run` on `data` and kills it with SIGKILL as soon as it
/// reports that `step` succeeded (the next step is then in flight).
fn run_and_kill_after(store: &str, step: &str) {
    let module = format!("misbehave={}", common::guest("misbehave").display());
    let mut child = weft()
        .args(["run", &fixture(), "--module", &module, "--store", store])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    kill_after(&mut child, step);
}

fn kill_after(child: &mut std::process::Child, step: &str) {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        seen.push(line.clone());
        if words == [step, "succeeded"] {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
    }
    panic!("the run ended before {step} succeeded:\n{}", seen.join("\n"));
}

/// The run as `weft show --json` reports it.
fn show(store: &str) -> Value {
    let output = weft().args(["show", "1", "--json", "--store", store]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Each step's status and attempts.
fn steps(run: &Value) -> Vec<(String, String, Vec<Value>)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["attempts"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

fn resume(store: &str) -> Value {
    let output = weft().args(["recover", "--json", "--store", store]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn assert_finished_correctly(before: &Value, after: &Value) {
    assert_eq!(after["run"]["status"], "succeeded");
    let slept = json!({"slept_ms": 250});
    assert_eq!(
        after["run"]["output"],
        json!({"s1": slept, "s2": slept, "s3": slept, "s4": slept, "s5": slept})
    );
    let after_steps = steps(after);
    for (step, status, attempts) in &after_steps {
        assert_eq!(status, "succeeded", "{step}");
        assert_eq!(attempts.len(), 1, "{step} ran {} times on record", attempts.len());
    }
    // What had completed before the kill was not run again: the very same
    // attempt record, same start time, is still the only one.
    for (step, status, attempts) in steps(before) {
        if status == "succeeded" {
            let (_, _, now) = after_steps.iter().find(|(s, _, _)| *s == step).unwrap();
            assert_eq!(now, &attempts, "{step} was run again after the restart");
        }
    }
}

fn check_kill_point(store: &TestStore, step: &str, completed_before: usize) {
    run_and_kill_after(store.arg(), step);
    let before = show(store.arg());
    assert_eq!(before["run"]["status"], "running");
    let done = steps(&before)
        .iter()
        .filter(|(_, status, _)| status == "succeeded")
        .count();
    assert_eq!(
        done,
        completed_before,
        "steps completed at the kill: {:?}",
        steps(&before)
    );
    let after = resume(store.arg());
    assert_finished_correctly(&before, &after);
}

on_both_backends! {
    async fn killed_after_the_first_step(store: TestStore) {
        check_kill_point(&store, "s1", 1);
    }

    async fn killed_in_the_middle(store: TestStore) {
        check_kill_point(&store, "s3", 3);
    }

    async fn killed_before_the_last_step(store: TestStore) {
        check_kill_point(&store, "s4", 4);
    }

    async fn killed_twice(store: TestStore) {
        run_and_kill_after(store.arg(), "s1");
        let first = show(store.arg());
        // Kill the resumed process too, after it completes another step.
        let mut child = weft()
            .args(["recover", "--store", store.arg()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        kill_after(&mut child, "s3");
        let second = show(store.arg());
        let after = resume(store.arg());
        assert_finished_correctly(&first, &after);
        assert_finished_correctly(&second, &after);
    }
}
