//! Fuel is deterministic: the same input costs the same fuel, every time;
//! and an attempt cut off at its deadline reports the fuel it burned.

use weft::sandbox::Limits;

use crate::common::{run, run_with};

#[tokio::test]
async fn the_same_input_uses_the_same_fuel() {
    let payment = r#"{"order_id": "o-9", "amount_cents": 1999, "currency": "USD", "card_number": "4242424242424242"}"#;
    for (task, input) in [
        ("hello", r#"{"name": "Ada"}"#),
        ("validate_payment", payment),
        ("misbehave", r#"{"mode": "burn", "iterations": 100000}"#),
    ] {
        let mut used = Vec::new();
        for _ in 0..5 {
            let report = run(task, input).await;
            assert!(report.outcome.is_ok(), "{task}: {:?}", report.outcome);
            used.push(report.fuel_used);
        }
        assert!(used[0] > 0);
        assert!(used.iter().all(|f| *f == used[0]), "{task}: {used:?}");
    }
}

#[tokio::test]
async fn fuel_grows_with_the_work_done() {
    let burn = |n: u64| format!(r#"{{"mode": "burn", "iterations": {n}}}"#);
    let small = run("misbehave", &burn(10_000)).await.fuel_used;
    let large = run("misbehave", &burn(1_000_000)).await.fuel_used;
    assert!(large > 50 * small, "10k iterations: {small}, 1M iterations: {large}");
}

#[tokio::test]
async fn the_fuel_used_is_the_fuel_needed() {
    let exact = run("hello", "{}").await.fuel_used;
    let enough = run_with(
        "hello",
        "{}",
        Limits {
            fuel: exact,
            ..Limits::default()
        },
    )
    .await;
    assert!(enough.outcome.is_ok(), "{:?}", enough.outcome);
    // Fuel is checked at function entries and loop headers, not after every
    // instruction, so only a clearly short budget is sure to trap.
    let short = run_with(
        "hello",
        "{}",
        Limits {
            fuel: exact / 2,
            ..Limits::default()
        },
    )
    .await;
    assert_eq!(short.outcome, weft::Outcome::OutOfFuel);
}

#[tokio::test]
async fn an_attempt_cut_off_at_its_deadline_reports_the_fuel_it_burned() {
    // What a spin burns in about 1/10 s of computing, as a yardstick.
    let spin = r#"{"mode": "spin"}"#;
    let yardstick = run_with(
        "misbehave",
        spin,
        Limits {
            fuel: 1_000_000_000,
            ..Limits::default()
        },
    )
    .await;
    assert_eq!(yardstick.outcome, weft::Outcome::OutOfFuel);
    let fuel = u64::MAX / 2;
    let timeout = std::time::Duration::from_millis(300);
    let cut = run_with(
        "misbehave",
        spin,
        Limits {
            fuel,
            timeout,
            ..Limits::default()
        },
    )
    .await;
    assert_eq!(cut.outcome, weft::Outcome::Timeout);
    // It computed for most of 300 ms: far more than a tenth of the
    // yardstick, and not the handful of units burned before the loop.
    let rate = yardstick.fuel_used as f64 / yardstick.duration.as_secs_f64();
    assert!(
        cut.fuel_used > 100_000_000 && cut.fuel_used < fuel,
        "a 300 ms spin reported {} fuel (the yardstick burns {rate:.0}/s)",
        cut.fuel_used
    );
}
