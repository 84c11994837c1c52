//! Sends the customer an order confirmation (to an outbox; no network).

use serde::{Deserialize, Serialize};
use weft_sdk::TaskError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    order_id: String,
    email: String,
    amount_cents: u64,
    currency: String,
}

#[derive(Serialize)]
struct Sent {
    message_id: String,
    to: String,
    subject: String,
}

fn send_confirmation(request: Request) -> Result<Sent, TaskError> {
    let valid = match request.email.split_once('@') {
        Some((user, domain)) => !user.is_empty() && domain.contains('.') && !domain.ends_with('.'),
        None => false,
    };
    if !valid {
        let message = format!("{:?} is not an email address", request.email);
        return Err(TaskError::new("invalid_email", message));
    }
    let subject = format!(
        "Your order {} ({}.{:02} {}) is confirmed",
        request.order_id,
        request.amount_cents / 100,
        request.amount_cents % 100,
        request.currency
    );
    weft_sdk::info!("confirmation for order {} sent to {}", request.order_id, request.email);
    Ok(Sent {
        message_id: format!("msg_{}", request.order_id),
        to: request.email,
        subject,
    })
}

weft_sdk::export_task!(send_confirmation);
