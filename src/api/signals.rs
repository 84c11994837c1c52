//! `POST /v1/runs/{id}/signals/{name}`: a signal to a run, whose JSON body
//! becomes the output of the step waiting for it (docs/architecture.md,
//! "Waits").

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::{self, IdempotencyKey, Name, Path, check_name};
use super::runs::owned_run;
use crate::engine::Delivery;
use crate::model::RunId;

/// The run and signal a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SignalPath {
    /// The run's id.
    pub id: u64,
    /// The signal's name, as a `wait_for` step of the run's workflow names
    /// it.
    #[param(inline, value_type = Name)]
    pub name: String,
}

/// The headers of a signal, as documented; `params::idempotency_key`
/// reads and checks them.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SignalHeaders {
    /// The signal's id: a second signal with the same id to the same run
    /// changes nothing and is answered `duplicate`.
    #[param(rename = "Idempotency-Key", inline, value_type = IdempotencyKey, required = false)]
    _idempotency_key: Option<String>,
}

/// What became of a signal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalOutcome {
    /// The step waiting for it took it; its payload is the step's output.
    Taken,
    /// No step waits for it yet; the first to wait will take it.
    Kept,
    /// A signal with the same id was accepted before; nothing changed.
    Duplicate,
}

/// The answer to a signal, once what it did is durable.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignalAccepted {
    /// The run.
    pub run: u64,
    /// The signal's name.
    pub signal: String,
    /// What became of it.
    pub outcome: SignalOutcome,
    /// The step that took it (`taken` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub step: Option<String>,
}

/// Send a signal to a run. The body, any JSON value (empty: `null`), is
/// the output of the `wait_for` step waiting for the signal's name; a
/// signal sent before its step waits is kept for it.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/signals/{name}",
    tag = "runs",
    params(SignalPath, SignalHeaders),
    request_body(content = Value, content_type = "application/json",
        description = "The payload: any JSON value"),
    responses(
        (status = 200, description = "Accepted, and durable: taken by the waiting step, kept for the step \
            that will wait, or a duplicate of an earlier signal with the same Idempotency-Key",
            body = SignalAccepted),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
        (status = 409, description = "The run has ended (`not_running`), or the steps that wait for the \
            signal are done, or the run has taken 1,000 signals (`signal_refused`)", body = ErrorBody),
        (status = 422, description = "No step of the run's workflow waits for a signal of this name \
            (`unknown_signal`)", body = ErrorBody),
    )
)]
pub async fn send_signal(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SignalPath { id, name }): Path<SignalPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SignalAccepted>> {
    check_name("signal", "name", &name)?;
    let signal_id = params::idempotency_key(&headers)?;
    let payload = payload(&headers, bytes)?;
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    let delivery = state.engine.signal(run.id, &name, signal_id, payload).await?;
    let (outcome, step) = match delivery {
        Delivery::Taken(step) => (SignalOutcome::Taken, Some(step)),
        Delivery::Kept => (SignalOutcome::Kept, None),
        Delivery::Duplicate => (SignalOutcome::Duplicate, None),
    };
    Ok(Json(SignalAccepted {
        run: id,
        signal: name,
        outcome,
        step,
    }))
}

/// The body as a JSON value; an empty body is `null`.
fn payload(headers: &HeaderMap, bytes: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let bytes = body::bytes(bytes)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    if body::content_type(headers).as_deref() != Some("application/json") {
        return Err(body::unsupported(headers, &["application/json"]));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("the body is not JSON: {e}")))
}
