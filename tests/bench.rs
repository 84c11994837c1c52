//! `weft bench --quick`: every figure the summary promises is measured and
//! written, a real number, from the real binary; the PostgreSQL figures
//! whenever a server can be had (else the test says it skipped them, and
//! fails under `CI=true`).

// The PostgreSQL and Python harnesses each bring their own `outside.rs`.
#![allow(clippy::duplicate_mod)]

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/python_guest.rs"]
mod python_guest;

use std::path::Path;
use std::process::Command;

use pg::outside::skip;

/// The keys the JSON summary must have.
const KEYS: [&str; 15] = [
    "sandbox_overhead_ratio",
    "hello_first_attempt_uncached_ms",
    "hello_first_attempt_cached_ms",
    "http_call_overhead_ratio",
    "durable_wf_per_s",
    "redb_commits_per_s",
    "http_runs_per_s",
    "http_p50_ms",
    "http_p99_ms",
    "rss_per_pending_run_bytes",
    "resume_10k_s",
    "rss_per_sleeping_run_bytes",
    "signal_p50_ms",
    "signal_p99_ms",
    "fairness_ratio",
];

/// The keys of a Python task's first attempt after a restart.
const PYTHON_KEYS: [&str; 2] = ["python_first_attempt_uncached_ms", "python_first_attempt_cached_ms"];

/// The keys measured on PostgreSQL.
const PG_KEYS: [&str; 5] = [
    "pg_durable_wf_per_s",
    "pg_insert_tx_per_s",
    "pg_http_p50_ms",
    "pg_http_p99_ms",
    "pg_fairness_ratio",
];

/// The keys of the cluster section that are single figures
/// (`cluster_wf_per_s` is a list: see [`assert_cluster`]).
const CLUSTER_KEYS: [&str; 3] = ["failover_s", "node_start_s", "cluster_fairness_ratio"];

/// The cluster section's figures: durable workflows/s with 1, 2 and 3
/// nodes, failover, node start and fairness.
fn assert_cluster(summary: &serde_json::Value) {
    assert_figures(summary, &CLUSTER_KEYS);
    let rates = summary["cluster_wf_per_s"]
        .as_array()
        .unwrap_or_else(|| panic!("cluster_wf_per_s is not a list:\n{summary:#}"));
    assert_eq!(rates.len(), 3, "{summary:#}");
    for rate in rates {
        assert!(rate.as_f64().is_some_and(|r| r > 0.0), "{summary:#}");
    }
}

/// `weft bench --quick` with `args`, its JSON summary in `dir`: the
/// summary and what the bench printed. Panics when the bench fails.
fn quick_bench(dir: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let modules = common::guest("hello").parent().unwrap().to_path_buf();
    let json = dir.join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--quick", "--modules"])
        .arg(&modules)
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("running weft bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "weft bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (summary, stdout)
}

/// Every key is a finite, positive number.
fn assert_figures(summary: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        let value = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is missing:\n{summary:#}"));
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
}

#[test]
fn the_quick_bench_writes_every_promised_figure() {
    let dir = tempfile::tempdir().unwrap();
    // The compiled section's Python figures need a Python task.
    let Some(python) = python_guest::component("hello") else {
        return;
    };
    // No --store: the postgres section starts a server of its own.
    let (summary, stdout) = quick_bench(dir.path(), &["--python-module", python.to_str().unwrap()]);
    assert_figures(&summary, &KEYS);
    assert_figures(&summary, &PYTHON_KEYS);
    // Loosely, so a busy machine does not fail it: the cache spares the
    // compile by far, and the first attempt from it is near its 50 ms.
    let [uncached, cached] = PYTHON_KEYS.map(|key| summary[key].as_f64().unwrap());
    assert!(
        cached * 10.0 < uncached && cached < 500.0,
        "cached {cached} ms, compiled {uncached} ms"
    );
    assert_eq!(summary["resumed_runs"], 10_001, "{summary:#}");
    assert!(summary["machine"]["cores"].as_u64().unwrap() >= 1);
    for label in [
        "bare wasmtime",
        "bare redb",
        "GET /healthz",
        "per pending run",
        "per sleeping run",
        "resumed",
    ] {
        assert!(stdout.contains(label), "no {label:?} in:\n{stdout}");
    }
    // Every target is judged: 12 without PostgreSQL (3 of them the waits
    // section's, 1 the compiled section's), and with it 2 more for the
    // postgres section, 1 for the fairness section's PostgreSQL half and 3
    // for the cluster section.
    let targets = summary["targets"].as_array().unwrap().len();
    if let Some(reason) = summary["pg_skipped"].as_str() {
        assert!(stdout.contains("skipped: "), "{stdout}");
        assert!(summary["cluster_skipped"].is_string(), "{summary:#}");
        assert_eq!(targets, 12, "{summary:#}");
        skip(&format!("the bench could not start PostgreSQL: {reason}"));
        return;
    }
    assert_figures(&summary, &PG_KEYS);
    assert_cluster(&summary);
    assert_eq!(targets, 18, "{summary:#}");
    assert!(stdout.contains("started by the bench in"), "{stdout}");
    assert!(stdout.contains("bare INSERT transactions"), "{stdout}");
}

#[test]
fn the_postgres_sections_bench_the_server_given_with_store_and_leave_nothing_there() {
    let Some(pg) = pg::Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let only = ["--only", "postgres,fairness,cluster", "--store", pg.url()];
    let (summary, stdout) = quick_bench(dir.path(), &only);
    assert!(summary.get("pg_skipped").is_none(), "{stdout}");
    assert!(summary.get("pg_fairness_skipped").is_none(), "{stdout}");
    assert!(summary.get("cluster_skipped").is_none(), "{stdout}");
    assert_figures(&summary, &PG_KEYS);
    assert_cluster(&summary);
    // 2 in the postgres section, the fairness ratio on each store, and 3
    // in the cluster section.
    assert_eq!(summary["targets"].as_array().unwrap().len(), 7, "{summary:#}");
    assert!(stdout.contains(" at postgres"), "{stdout}");
    assert!(!stdout.contains("started by the bench"), "{stdout}");
    // Its databases are dropped, and the one given is left as it was.
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'weft\\_bench\\_%'"),
        "0"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

#[test]
fn a_server_that_cannot_be_reached_skips_the_postgres_sections_and_the_bench_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = format!("postgres://weft@127.0.0.1:{}/weft", closed_port());
    let (summary, stdout) = quick_bench(dir.path(), &["--only", "postgres,cluster", "--store", &unreachable]);
    assert!(stdout.contains("skipped: "), "{stdout}");
    for skipped in ["pg_skipped", "cluster_skipped"] {
        let reason = summary[skipped].as_str().unwrap();
        assert!(reason.contains("cannot be reached"), "{reason}");
    }
    for key in PG_KEYS.iter().chain(&CLUSTER_KEYS).chain(&["cluster_wf_per_s"]) {
        assert!(summary.get(key).is_none(), "{summary:#}");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--quick", "--only", "postgres", "--store", "redb:/tmp/x"])
        .output()
        .expect("running weft bench");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--store takes a postgres:// URL"), "{stderr}");
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
