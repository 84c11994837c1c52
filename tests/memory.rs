//! 1,000 attempts in a row do not grow the host's memory: every store,
//! instance, memory slot and log buffer is given back. A test binary of its
//! own, so no other test shares the process whose memory it measures.

mod common;

use weft::sandbox::Limits;

/// The most resident memory 1,000 attempts may add once warmed up. A leak
/// of one 64 KiB wasm page or one log buffer per attempt would exceed it
/// several times over; allocator noise stays well below.
const BOUND: u64 = 16 << 20;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A mix of what attempts do: succeed, write kv, fail, trap, hit limits.
async fn one_round(i: usize) {
    let payment = format!(
        r#"{{"order_id": "m-{i}", "amount_cents": 100, "currency": "EUR", "card_number": "4242424242424242"}}"#
    );
    let (task, input, limits) = match i % 10 {
        0 => (
            "misbehave",
            r#"{"mode": "allocate"}"#.to_string(),
            Limits {
                memory: 32 << 20,
                ..Limits::default()
            },
        ),
        1 => ("misbehave", r#"{"mode": "panic"}"#.to_string(), Limits::default()),
        2 => (
            "misbehave",
            r#"{"mode": "stdout_flood"}"#.to_string(),
            Limits {
                fuel: 2_000_000,
                max_log: 64 << 10,
                ..Limits::default()
            },
        ),
        3 | 4 => ("validate_payment", payment, Limits::default()),
        5 => ("flaky", "{}".to_string(), Limits::default()),
        _ => ("hello", format!(r#"{{"name": "n{i}"}}"#), Limits::default()),
    };
    let report = common::run_with(task, &input, limits).await;
    assert_eq!(
        i % 10 >= 3 && i % 10 != 5,
        report.outcome.is_ok(),
        "{task}: {:?}",
        report.outcome
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_thousand_attempts_do_not_grow_memory() {
    for i in 0..200 {
        one_round(i).await;
    }
    let before = resident_bytes();
    for i in 0..1_000 {
        one_round(i).await;
    }
    let after = resident_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "resident before: {} KiB, after 1,000 attempts: {} KiB, grown {} KiB (bound {} KiB)",
        before >> 10,
        after >> 10,
        grown >> 10,
        BOUND >> 10
    );
    assert!(
        grown <= BOUND,
        "resident memory grew by {grown} bytes over 1,000 attempts (bound {BOUND})"
    );
}
