//! Authorises a card payment for an order.
//!
//! Declines the card `4000 0000 0000 0002` (the usual test number for a
//! declined card) and remembers every authorisation in kv, so a retried
//! step and the `refund_payment` compensation see the same one.

use serde::{Deserialize, Serialize};
use weft_sdk::{TaskError, kv};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payment {
    order_id: String,
    amount_cents: u64,
    currency: String,
    card_number: String,
}

#[derive(Serialize, Deserialize)]
struct Authorization {
    approved: bool,
    authorization_id: String,
    order_id: String,
    amount_cents: u64,
    currency: String,
    card_last4: String,
}

const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];
const DECLINED_CARD: &str = "4000000000000002";

fn validate_payment(payment: Payment) -> Result<Authorization, TaskError> {
    if payment.amount_cents == 0 {
        return Err(TaskError::new("invalid_amount", "the amount must be positive"));
    }
    if !CURRENCIES.contains(&payment.currency.as_str()) {
        let message = format!("currency {:?} is not one of {CURRENCIES:?}", payment.currency);
        return Err(TaskError::new("invalid_currency", message));
    }
    let digits: String = payment.card_number.chars().filter(|c| *c != ' ').collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TaskError::new(
            "invalid_card",
            "the card number must be 12 to 19 digits",
        ));
    }
    let card_last4 = digits[digits.len() - 4..].to_string();
    if digits == DECLINED_CARD {
        weft_sdk::warn!("card ending {card_last4} declined for order {}", payment.order_id);
        let message = format!("the card ending {card_last4} was declined");
        return Err(TaskError::new("card_declined", message));
    }

    // An order keeps the authorisation it got first, however often it is retried.
    let key = format!("payments/{}", payment.order_id);
    if let Some(existing) = kv::get::<Authorization>(&key)? {
        return Ok(existing);
    }
    let authorization = Authorization {
        approved: true,
        authorization_id: format!("auth_{:016x}", fnv1a(payment.order_id.as_bytes())),
        order_id: payment.order_id,
        amount_cents: payment.amount_cents,
        currency: payment.currency,
        card_last4,
    };
    kv::set(&key, &authorization)?;
    weft_sdk::info!(
        "authorised {} {} for order {}",
        authorization.amount_cents,
        authorization.currency,
        authorization.order_id
    );
    Ok(authorization)
}

/// A stable id derived from the order, so reruns agree.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

weft_sdk::export_task!(validate_payment);
