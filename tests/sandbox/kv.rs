//! kv writes are buffered per attempt and reported only with success.

use std::sync::Arc;

use weft::Outcome;
use weft::sandbox::{KvWrite, Limits, MemoryKv};

use crate::common::run_in;

const PAYMENT: &str =
    r#"{"order_id": "o-1", "amount_cents": 4200, "currency": "EUR", "card_number": "4242 4242 4242 4242"}"#;

#[tokio::test]
async fn a_successful_attempt_reports_its_writes() {
    let kv = Arc::new(MemoryKv::new());
    let report = run_in("validate_payment", PAYMENT, Limits::default(), kv, 1).await;
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    assert_eq!(report.kv_writes.len(), 1);
    assert_eq!(report.kv_writes[0].key, "payments/o-1");
}

#[tokio::test]
async fn a_failed_attempt_leaves_no_writes() {
    let kv = Arc::new(MemoryKv::new());
    // GIZMO-3 has 5 in stock: the first item is reserved, the second fails.
    let order =
        r#"{"order_id": "o-2", "items": [{"sku": "WIDGET-1", "quantity": 1}, {"sku": "GIZMO-3", "quantity": 6}]}"#;
    let report = run_in("reserve_inventory", order, Limits::default(), kv, 1).await;
    let Outcome::GuestError {
        code,
        message,
        retryable,
    } = &report.outcome
    else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(code, "out_of_stock");
    assert_eq!(message, "GIZMO-3 is out of stock: 6 wanted, 5 available");
    assert!(!retryable);
    assert_eq!(report.kv_writes, Vec::<KvWrite>::new());
}

#[tokio::test]
async fn committed_writes_are_read_by_later_attempts() {
    let kv = Arc::new(MemoryKv::new());
    let order = r#"{"order_id": "o-3", "items": [{"sku": "GIZMO-3", "quantity": 3}]}"#;
    let first = run_in("reserve_inventory", order, Limits::default(), kv.clone(), 1).await;
    assert!(first.outcome.is_ok(), "{:?}", first.outcome);
    kv.apply("acme", &first.kv_writes);

    // Only 2 GIZMO-3 are left for the next order.
    let order = r#"{"order_id": "o-4", "items": [{"sku": "GIZMO-3", "quantity": 3}]}"#;
    let second = run_in("reserve_inventory", order, Limits::default(), kv.clone(), 1).await;
    let Outcome::GuestError { message, .. } = &second.outcome else {
        panic!("{:?}", second.outcome)
    };
    assert_eq!(message, "GIZMO-3 is out of stock: 3 wanted, 2 available");
}

#[tokio::test]
async fn uncommitted_writes_are_not_seen() {
    let kv = Arc::new(MemoryKv::new());
    let first = run_in("validate_payment", PAYMENT, Limits::default(), kv.clone(), 1).await;
    assert!(!first.kv_writes.is_empty());
    // Not applied: the refund finds no payment.
    let refund = run_in("refund_payment", r#"{"order_id": "o-1"}"#, Limits::default(), kv, 1).await;
    let Outcome::GuestError { code, .. } = &refund.outcome else {
        panic!("{:?}", refund.outcome)
    };
    assert_eq!(code, "no_payment");
}
