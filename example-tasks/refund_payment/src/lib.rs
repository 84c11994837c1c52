//! Refunds an order's payment: the compensation for a failed order.
//!
//! Finds the authorisation `validate_payment` stored in kv and refunds it
//! once; a repeated refund returns the first one.

use serde::{Deserialize, Serialize};
use weft_sdk::{TaskError, kv};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    order_id: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The part of `validate_payment`'s stored authorisation this task needs.
#[derive(Deserialize)]
struct Authorization {
    authorization_id: String,
    amount_cents: u64,
    currency: String,
}

#[derive(Serialize, Deserialize)]
struct Refund {
    refund_id: String,
    authorization_id: String,
    amount_cents: u64,
    currency: String,
    reason: String,
    status: String,
}

fn refund_payment(request: Request) -> Result<Refund, TaskError> {
    let key = format!("refunds/{}", request.order_id);
    if let Some(existing) = kv::get::<Refund>(&key)? {
        return Ok(existing);
    }
    let Some(payment) = kv::get::<Authorization>(&format!("payments/{}", request.order_id))? else {
        let message = format!("order {} has no payment to refund", request.order_id);
        return Err(TaskError::new("no_payment", message));
    };
    let refund = Refund {
        refund_id: format!("ref_{}", request.order_id),
        authorization_id: payment.authorization_id,
        amount_cents: payment.amount_cents,
        currency: payment.currency,
        reason: request.reason.unwrap_or_else(|| "order failed".into()),
        status: "refunded".into(),
    };
    kv::set(&key, &refund)?;
    weft_sdk::info!(
        "refunded {} {} for order {}",
        refund.amount_cents,
        refund.currency,
        request.order_id
    );
    Ok(refund)
}

weft_sdk::export_task!(refund_payment);
