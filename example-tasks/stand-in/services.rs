//! The stand-in services themselves, as an axum router: `main.rs` serves
//! them on a port, the tests serve them in-process on 127.0.0.1:0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

const DECLINED_CARD: &str = "4000000000000002";

struct Services {
    key: String,
    charges: Mutex<HashMap<String, Value>>,
    emails: Mutex<u64>,
}

type Answer = (StatusCode, Json<Value>);

/// The payment gateway (wanting `Authorization: Bearer KEY`) and the mail
/// relay.
pub fn app(key: String) -> Router {
    let services = Arc::new(Services {
        key,
        charges: Mutex::default(),
        emails: Mutex::default(),
    });
    Router::new()
        .route("/v1/charges", post(charge))
        .route("/v1/charges/{id}/refund", post(refund))
        .route("/v1/emails", post(email))
        .with_state(services)
}

async fn charge(State(services): State<Arc<Services>>, headers: HeaderMap, Json(body): Json<Value>) -> Answer {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.strip_prefix("Bearer ") == Some(services.key.as_str()));
    let answer = if !authorized {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "a valid API key is required"})),
        )
    } else {
        charge_card(&services, &body)
    };
    println!(
        "POST /v1/charges -> {} (key {})",
        answer.0.as_u16(),
        if authorized { "valid" } else { "missing or wrong" }
    );
    answer
}

fn charge_card(services: &Services, body: &Value) -> Answer {
    let (Some(order), Some(amount), Some(currency), Some(card)) = (
        body["order_id"].as_str(),
        body["amount_cents"].as_u64(),
        body["currency"].as_str(),
        body["card_number"].as_str(),
    ) else {
        let message = "order_id, amount_cents, currency and card_number are required";
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "message": message})),
        );
    };
    let digits: String = card.chars().filter(char::is_ascii_digit).collect();
    if digits == DECLINED_CARD {
        return (StatusCode::PAYMENT_REQUIRED, Json(json!({"error": "card_declined"})));
    }
    let mut charges = services.charges.lock().unwrap_or_else(|e| e.into_inner());
    let charge = charges.entry(order.to_string()).or_insert_with(|| {
        json!({
            "charge_id": format!("ch_{order}"),
            "status": "succeeded",
            "order_id": order,
            "amount_cents": amount,
            "currency": currency,
            "card_last4": &digits[digits.len().saturating_sub(4)..],
        })
    });
    (StatusCode::CREATED, Json(charge.clone()))
}

async fn refund(State(services): State<Arc<Services>>, Path(id): Path<String>) -> Answer {
    let charges = services.charges.lock().unwrap_or_else(|e| e.into_inner());
    let found = charges.values().any(|charge| charge["charge_id"] == id.as_str());
    let answer = match found {
        true => (
            StatusCode::OK,
            Json(json!({"refund_id": format!("re_{id}"), "charge_id": id})),
        ),
        false => (StatusCode::NOT_FOUND, Json(json!({"error": "no_such_charge"}))),
    };
    println!("POST /v1/charges/{id}/refund -> {}", answer.0.as_u16());
    answer
}

async fn email(State(services): State<Arc<Services>>, Json(body): Json<Value>) -> Answer {
    let answer = match body["to"].as_str() {
        Some(to) if to.contains('@') => {
            let mut sent = services.emails.lock().unwrap_or_else(|e| e.into_inner());
            *sent += 1;
            (
                StatusCode::ACCEPTED,
                Json(json!({"message_id": format!("msg_{}", *sent), "to": to})),
            )
        }
        _ => (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_recipient"}))),
    };
    println!("POST /v1/emails -> {}", answer.0.as_u16());
    answer
}
