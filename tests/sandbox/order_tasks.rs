//! The e-commerce example tasks, their happy paths and their failures.

use std::sync::Arc;

use serde_json::{Value, json};
use weft::Outcome;
use weft::sandbox::{Limits, MemoryKv};

use crate::common::{run, run_in};

fn output(outcome: &Outcome) -> Value {
    let Outcome::Ok { output } = outcome else {
        panic!("{outcome:?}")
    };
    serde_json::from_str(output).unwrap()
}

fn error_code(outcome: &Outcome) -> &str {
    let Outcome::GuestError { code, .. } = outcome else {
        panic!("{outcome:?}")
    };
    code
}

#[tokio::test]
async fn an_order_is_paid_reserved_shipped_confirmed_and_refunded() {
    let kv = Arc::new(MemoryKv::new());
    let step = async |task: &str, input: Value| {
        let report = run_in(task, &input.to_string(), Limits::default(), kv.clone(), 1).await;
        kv.apply("acme", &report.kv_writes);
        output(&report.outcome)
    };
    let payment = step(
        "validate_payment",
        json!({"order_id": "A-1", "amount_cents": 12_50, "currency": "EUR", "card_number": "4242424242424242"}),
    )
    .await;
    assert_eq!(payment["approved"], true);
    assert_eq!(payment["card_last4"], "4242");

    let reservation = step(
        "reserve_inventory",
        json!({"order_id": "A-1", "items": [{"sku": "WIDGET-1", "quantity": 2}]}),
    )
    .await;
    assert_eq!(reservation["reservation_id"], "res_A-1");

    let address =
        json!({"name": "Ada", "line1": "1 Loop Rd", "city": "Berlin", "postal_code": "10115", "country": "DE"});
    let shipment = step(
        "notify_warehouse",
        json!({"order_id": "A-1", "reservation_id": "res_A-1", "ship_to": address}),
    )
    .await;
    assert_eq!(
        shipment,
        json!({"shipment_id": "shp_A-1", "order_id": "A-1", "warehouse": "FRA-1", "status": "queued"})
    );

    let sent = step(
        "send_confirmation",
        json!({"order_id": "A-1", "email": "ada@example.com", "amount_cents": 1250, "currency": "EUR"}),
    )
    .await;
    assert_eq!(sent["subject"], "Your order A-1 (12.50 EUR) is confirmed");

    let refund = step(
        "refund_payment",
        json!({"order_id": "A-1", "reason": "customer cancelled"}),
    )
    .await;
    assert_eq!(refund["authorization_id"], payment["authorization_id"]);
    assert_eq!(refund["amount_cents"], 1250);
    // Refunding twice returns the first refund.
    assert_eq!(step("refund_payment", json!({"order_id": "A-1"})).await, refund);
}

#[tokio::test]
async fn the_order_tasks_fail_as_a_shop_would() {
    let cases = [
        (
            "validate_payment",
            json!({"order_id": "B", "amount_cents": 100, "currency": "EUR", "card_number": "4000 0000 0000 0002"}),
            "card_declined",
        ),
        (
            "validate_payment",
            json!({"order_id": "B", "amount_cents": 0, "currency": "EUR", "card_number": "4242424242424242"}),
            "invalid_amount",
        ),
        (
            "validate_payment",
            json!({"order_id": "B", "amount_cents": 1, "currency": "XYZ", "card_number": "4242424242424242"}),
            "invalid_currency",
        ),
        (
            "validate_payment",
            json!({"order_id": "B", "amount_cents": 1, "currency": "EUR", "card_number": "42"}),
            "invalid_card",
        ),
        ("validate_payment", json!({"order_id": "B"}), "invalid_input"),
        (
            "reserve_inventory",
            json!({"order_id": "B", "items": [{"sku": "DISCONTINUED-9", "quantity": 1}]}),
            "out_of_stock",
        ),
        (
            "reserve_inventory",
            json!({"order_id": "B", "items": [{"sku": "NOPE", "quantity": 1}]}),
            "unknown_sku",
        ),
        (
            "reserve_inventory",
            json!({"order_id": "B", "items": []}),
            "invalid_order",
        ),
        (
            "notify_warehouse",
            json!({"order_id": "B", "reservation_id": "r", "ship_to": {"name": "", "line1": "x", "city": "x", "postal_code": "x", "country": "DE"}}),
            "invalid_address",
        ),
        (
            "send_confirmation",
            json!({"order_id": "B", "email": "not-an-email", "amount_cents": 1, "currency": "EUR"}),
            "invalid_email",
        ),
        ("refund_payment", json!({"order_id": "never-paid"}), "no_payment"),
    ];
    for (task, input, expected) in cases {
        let report = run(task, &input.to_string()).await;
        assert_eq!(error_code(&report.outcome), expected, "{task} {input}");
        assert!(!report.outcome.is_retryable(), "{task} {input}");
    }
}

#[tokio::test]
async fn flaky_fails_retryably_then_succeeds() {
    let kv = Arc::new(MemoryKv::new());
    for attempt in 1..=2 {
        let report = run_in("flaky", r#"{"fail_times": 2}"#, Limits::default(), kv.clone(), attempt).await;
        assert_eq!(error_code(&report.outcome), "transient");
        assert!(report.outcome.is_retryable());
        assert_eq!(
            report.logs.lines[0].message,
            format!("attempt {attempt} fails on purpose")
        );
    }
    let report = run_in("flaky", r#"{"fail_times": 2}"#, Limits::default(), kv, 3).await;
    assert_eq!(output(&report.outcome), json!({"succeeded_on_attempt": 3}));
}

#[tokio::test]
async fn hello_greets() {
    assert_eq!(
        output(&run("hello", "{}").await.outcome),
        json!({"greeting": "Hello, world!"})
    );
    assert_eq!(
        error_code(&run("hello", r#"{"name": ""}"#).await.outcome),
        "invalid_input"
    );
}
