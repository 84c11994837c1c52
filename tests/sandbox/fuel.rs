//! Fuel is deterministic: the same input costs the same fuel, every time.

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
