//! One misbehaving guest per limit: each ends with its classified outcome,
//! and the host serves the next attempt.

use std::time::Duration;

use weft::Outcome;
use weft::sandbox::{Attempt, Limits, MemoryKv, SandboxError};

use crate::common::{assert_host_still_serves, context, module, run_with, sandbox};

/// Fuel that no test attempt exhausts, to isolate the other limits.
const UNLIMITED_FUEL: u64 = u64::MAX / 2;

#[tokio::test]
async fn spinning_forever_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 10_000_000,
        ..Limits::default()
    };
    let report = run_with("misbehave", r#"{"mode": "spin"}"#, limits).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert_eq!(report.fuel_used, 10_000_000);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn spinning_forever_times_out_when_fuel_allows() {
    let limits = Limits {
        fuel: UNLIMITED_FUEL,
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let report = run_with("misbehave", r#"{"mode": "spin"}"#, limits).await;
    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(report.duration >= Duration::from_millis(300), "{:?}", report.duration);
    assert!(report.duration < Duration::from_secs(3), "{:?}", report.duration);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn blocking_in_the_host_times_out() {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let report = run_with("misbehave", r#"{"mode": "sleep", "ms": 60000}"#, limits).await;
    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(report.duration < Duration::from_secs(3), "{:?}", report.duration);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn allocating_without_end_hits_the_memory_limit() {
    let limits = Limits {
        memory: 16 << 20,
        fuel: UNLIMITED_FUEL,
        ..Limits::default()
    };
    let report = run_with("misbehave", r#"{"mode": "allocate"}"#, limits).await;
    assert_eq!(report.outcome, Outcome::MemoryLimit);
    assert!(
        report.logs.stderr.contains("memory allocation"),
        "{}",
        report.logs.stderr
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn memory_above_the_server_maximum_is_refused() {
    let module = module("hello");
    let limits = Limits {
        memory: sandbox().config().max_memory + 1,
        ..Limits::default()
    };
    let kv = std::sync::Arc::new(MemoryKv::new());
    let attempt = Attempt {
        input: "{}",
        limits,
        context: context(1),
        kv,
        http: Default::default(),
        secrets: Default::default(),
        redact: Default::default(),
    };
    let error = sandbox().run(&module, attempt).await.unwrap_err();
    assert!(
        matches!(error, SandboxError::LimitTooHigh { limit: "memory", .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn recursing_without_end_traps() {
    let report = run_with("misbehave", r#"{"mode": "recurse"}"#, Limits::default()).await;
    let Outcome::Trap { message } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(message.contains("call stack exhausted"), "{message}");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_panic_traps_with_its_message_in_stderr() {
    let report = run_with("misbehave", r#"{"mode": "panic"}"#, Limits::default()).await;
    assert!(matches!(report.outcome, Outcome::Trap { .. }), "{:?}", report.outcome);
    assert!(
        report.logs.stderr.contains("panicked on purpose"),
        "{}",
        report.logs.stderr
    );
    assert!(!report.outcome.is_retryable());
    assert_host_still_serves().await;
}

#[tokio::test]
async fn oversized_output_is_invalid() {
    let limits = Limits {
        max_output: 1_000,
        ..Limits::default()
    };
    let report = run_with("misbehave", r#"{"mode": "big_output", "bytes": 5000}"#, limits).await;
    let Outcome::InvalidOutput { reason } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(reason, "the output is 5002 bytes, over the limit of 1000 bytes");

    let fits = run_with("misbehave", r#"{"mode": "big_output", "bytes": 998}"#, limits).await;
    assert!(fits.outcome.is_ok(), "{:?}", fits.outcome);
}

#[tokio::test]
async fn output_that_is_not_json_is_invalid() {
    let report = run_with("not_json", r#"{"a": 1}"#, Limits::default()).await;
    let Outcome::InvalidOutput { reason } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(reason.starts_with("the output is not JSON"), "{reason}");
}

#[tokio::test]
async fn printing_without_end_is_capped_and_ends() {
    let limits = Limits {
        fuel: 20_000_000,
        max_log: 4096,
        ..Limits::default()
    };
    let report = run_with("misbehave", r#"{"mode": "stdout_flood"}"#, limits).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert!(report.logs.truncated);
    assert_eq!(report.logs.stdout.len(), 4096);
    assert!(report.logs.stdout.starts_with("all work and no play"));
    assert_host_still_serves().await;
}

#[tokio::test]
async fn many_attempts_run_at_once_beside_a_spinning_one() {
    let spin_limits = Limits {
        fuel: UNLIMITED_FUEL,
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let spinner = tokio::spawn(run_with("misbehave", r#"{"mode": "spin"}"#, spin_limits));
    let greeters: Vec<_> = (0..32)
        .map(|i| {
            tokio::spawn(async move { run_with("hello", &format!(r#"{{"name": "n{i}"}}"#), Limits::default()).await })
        })
        .collect();
    for (i, greeter) in greeters.into_iter().enumerate() {
        let report = greeter.await.unwrap();
        assert_eq!(
            report.outcome,
            Outcome::Ok {
                output: format!(r#"{{"greeting":"Hello, n{i}!"}}"#)
            }
        );
    }
    assert_eq!(spinner.await.unwrap().outcome, Outcome::Timeout);
}
