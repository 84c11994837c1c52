//! `weft bench --quick`: every figure the summary promises is measured and
//! written, a real number, from the real binary.

mod common;

use std::process::Command;

/// The keys the JSON summary must have.
const KEYS: [&str; 8] = [
    "sandbox_overhead_ratio",
    "durable_wf_per_s",
    "redb_commits_per_s",
    "http_runs_per_s",
    "http_p50_ms",
    "http_p99_ms",
    "rss_per_pending_run_bytes",
    "resume_10k_s",
];

#[test]
fn the_quick_bench_writes_every_promised_figure() {
    let modules = common::guest("hello").parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--quick", "--modules"])
        .arg(&modules)
        .arg("--dir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running weft bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "weft bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in KEYS {
        let value = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is missing:\n{summary:#}"));
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
    assert_eq!(summary["resumed_runs"], 10_001, "{summary:#}");
    assert!(summary["machine"]["cores"].as_u64().unwrap() >= 1);
    // Every target is judged, and the printout shows each figure.
    assert_eq!(summary["targets"].as_array().unwrap().len(), 7, "{summary:#}");
    for label in [
        "bare wasmtime",
        "bare redb",
        "GET /healthz",
        "per pending run",
        "resumed",
    ] {
        assert!(stdout.contains(label), "no {label:?} in:\n{stdout}");
    }
}

#[test]
fn the_bench_says_how_to_build_missing_modules() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--quick", "--modules"])
        .arg(dir.path())
        .output()
        .expect("running weft bench");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hello.wasm is missing"), "{stderr}");
    assert!(
        stderr.contains("cargo build --release --target wasm32-wasip2"),
        "{stderr}"
    );
}
