//! `/v1/hooks`: inbound webhooks. A tenant sets a hook (`PUT
//! /v1/hooks/{name}`): a workflow, a CEL mapping from the request to the
//! run's input, and the name of the secret that signs requests. A sender
//! then POSTs to `/v1/hooks/{tenant}/{name}` with no API key, signed
//! (`crate::triggers::signature`); a request that verifies starts one run,
//! and the same delivery again starts none.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::{self, IdempotencyKey, Name, Path, check_name};
use crate::model::Millis;
use crate::store::{Expect, ObjectKind, StoredObject};
use crate::triggers::hook::{HookSpec, StoredHook};
use crate::triggers::signature;

/// The most hooks a tenant lists.
const MAX_LISTED: usize = 1000;

/// The hook a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HookPath {
    /// The hook's name.
    #[param(inline, value_type = Name)]
    pub name: String,
}

/// The tenant and hook an inbound request names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InboundPath {
    /// The tenant's name.
    #[param(inline, value_type = Name)]
    pub tenant: String,
    /// The hook's name.
    #[param(inline, value_type = Name)]
    pub name: String,
}

/// The headers of an inbound request.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct InboundHeaders {
    /// `t=UNIX_SECONDS,v1=HEX`: HEX is HMAC-SHA256 with the hook's secret
    /// over the time, a `.` and the raw body. Checked before anything
    /// else; the time must be within 5 minutes of the server's clock.
    #[param(rename = "X-Weft-Signature", value_type = String, required = true)]
    _signature: Option<String>,
    /// The delivery's id: a second request with the same id starts no
    /// second run. Without one, the signature names the delivery, so an
    /// exact replay starts nothing either.
    #[param(rename = "Idempotency-Key", inline, value_type = IdempotencyKey, required = false)]
    _idempotency_key: Option<String>,
}

/// A hook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookView {
    /// Its name.
    pub name: String,
    /// The workflow each accepted request starts a run of.
    pub workflow: String,
    /// The tenant secret whose value signs requests.
    pub secret: String,
    /// The CEL mapping from `body` and `headers` to the input, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub input: Option<String>,
    /// Where senders POST: `/v1/hooks/{tenant}/{name}`.
    pub path: String,
    /// When it was first set (ms since the epoch).
    pub created_at: Millis,
    /// When it was last set.
    pub updated_at: Millis,
}

/// A tenant's hooks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookList {
    /// Each hook, by name.
    pub hooks: Vec<HookView>,
}

/// What an accepted request started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookAccepted {
    /// The run the delivery started (or started before).
    pub run: u64,
    /// Whether this delivery was seen before, so started nothing new.
    pub duplicate: bool,
}

fn view(tenant: &str, object: &StoredObject) -> ApiResult<HookView> {
    let stored: StoredHook = serde_json::from_value(object.value.clone())
        .map_err(|e| ApiError::internal(format!("hook {:?} does not decode: {e}", object.name)))?;
    Ok(HookView {
        name: object.name.clone(),
        path: format!("/v1/hooks/{tenant}/{}", object.name),
        workflow: stored.spec.workflow,
        secret: stored.spec.secret,
        input: stored.spec.input,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    })
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::invalid(ErrorCode::InvalidHook, field, format!("{field}: {message}"))
}

/// Set an inbound hook.
///
/// Creates or replaces it. Requests to `/v1/hooks/{tenant}/{name}` signed
/// with the value of the tenant's secret `secret` start runs of
/// `workflow`, with the input the mapping gives.
#[utoipa::path(
    put,
    path = "/v1/hooks/{name}",
    tag = "hooks",
    params(HookPath),
    request_body(content = HookSpec, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = HookView),
        (status = 200, description = "Replaced", body = HookView),
        (status = 422, description = "The workflow does not exist, the secret name breaks the rule, or the \
            mapping is not a CEL expression over `body` and `headers` (`invalid_hook`)", body = ErrorBody),
    )
)]
pub async fn put_hook(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(HookPath { name }): Path<HookPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<HookView>)> {
    check_name("hook", "name", &name)?;
    let spec: HookSpec = body::json(&headers, bytes)?;
    check_name("workflow", "workflow", &spec.workflow)?;
    if state.store.workflow_named(&tenant.id, &spec.workflow).await?.is_none() {
        return Err(invalid(
            "workflow",
            format!("no workflow named {:?}; push it first", spec.workflow),
        ));
    }
    if !crate::spec::is_secret_name(&spec.secret) {
        return Err(invalid(
            "secret",
            format!(
                "{:?} is not a secret name: letters, digits and `_`, not starting with a digit",
                spec.secret
            ),
        ));
    }
    spec.mapping().map_err(|e| invalid("input", e))?;
    let now = state.engine.now();
    let found = state.store.object(ObjectKind::Hook, &tenant.id, &name).await?;
    let created_at = match &found {
        Some(object) => view(&tenant.id, object)?.created_at,
        None => now,
    };
    let stored = StoredHook {
        spec,
        created_at,
        updated_at: now,
    };
    let value = serde_json::to_value(&stored).map_err(ApiError::internal)?;
    let revision = state
        .store
        .put_object(ObjectKind::Hook, &tenant.id, &name, &value, Expect::Any)
        .await?
        .unwrap_or_default();
    let object = StoredObject {
        kind: ObjectKind::Hook,
        tenant: tenant.id.clone(),
        name,
        revision,
        value,
    };
    let status = if found.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&tenant.id, &object)?)))
}

/// List the tenant's hooks.
#[utoipa::path(
    get,
    path = "/v1/hooks",
    tag = "hooks",
    responses((status = 200, description = "Every hook, by name (at most 1,000)", body = HookList))
)]
pub async fn list_hooks(State(state): State<Arc<ApiState>>, Caller(tenant): Caller) -> ApiResult<Json<HookList>> {
    let objects = state
        .store
        .objects(ObjectKind::Hook, Some(&tenant.id), "", MAX_LISTED)
        .await?;
    let hooks = objects.iter().map(|o| view(&tenant.id, o)).collect::<ApiResult<_>>()?;
    Ok(Json(HookList { hooks }))
}

/// Delete a hook: requests to it are refused (401) from then on.
#[utoipa::path(
    delete,
    path = "/v1/hooks/{name}",
    tag = "hooks",
    params(HookPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such hook (`not_found`)", body = ErrorBody),
    )
)]
pub async fn delete_hook(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(HookPath { name }): Path<HookPath>,
) -> ApiResult<StatusCode> {
    check_name("hook", "name", &name)?;
    if state
        .store
        .delete_object(ObjectKind::Hook, &tenant.id, &name, Expect::Any)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("hook {name:?}")))
    }
}

/// A request to a hook, refused: one answer for a missing tenant or
/// hook and a signature that does not verify, so that probing learns
/// nothing.
fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        format!("the request is not accepted: {why} (or there is no such hook)"),
    )
}

/// Deliver a request to an inbound hook.
///
/// Needs no API key: the request is authenticated by its signature alone
/// (`X-Weft-Signature`), checked before anything else. A request that
/// verifies starts a run of the hook's workflow with the input its
/// mapping gives from the body and headers; a delivery seen before (by
/// `Idempotency-Key`, or without one the same signature) answers the run
/// it started and starts nothing.
#[utoipa::path(
    post,
    path = "/v1/hooks/{tenant}/{name}",
    tag = "hooks",
    params(InboundPath, InboundHeaders),
    request_body(content = Value, content_type = "application/json",
        description = "Whatever the sender sends; the mapping reads it as `body`"),
    responses(
        (status = 201, description = "Verified; the run is started and durable", body = HookAccepted),
        (status = 200, description = "Verified, and seen before: the run it started", body = HookAccepted),
        (status = 401, description = "No such tenant or hook, or a signature that is missing, wrong or more \
            than 5 minutes from the server's clock (`unauthorized`); nothing is started", body = ErrorBody),
        (status = 404, description = "The hook's workflow no longer exists (`not_found`)", body = ErrorBody),
        (status = 422, description = "The mapping fails on this request, or gives an input the workflow's \
            input_schema refuses (`invalid_input`)", body = ErrorBody),
        (status = 429, description = "Over the tenant's start rate (`quota_exceeded`)", body = ErrorBody),
        (status = 500, description = "The server failed; the cause is in its log (`internal`)", body = ErrorBody),
        (status = 503, description = "The server is stopping, or keeps no secrets (`unavailable`)",
            body = ErrorBody),
    )
)]
pub async fn deliver(
    State(state): State<Arc<ApiState>>,
    Path(InboundPath { tenant, name }): Path<InboundPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<HookAccepted>)> {
    check_name("tenant", "tenant", &tenant)?;
    check_name("hook", "name", &name)?;
    let bytes = body::bytes(bytes)?;
    let key = params::idempotency_key(&headers)?;
    let Some(secrets) = state.secrets.as_deref() else {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "this server has no master key, so keeps no secrets to verify hooks with (docs/operations.md)",
        ));
    };
    let tenant = match state.store.tenant(&tenant).await? {
        Some(record) if !record.disabled => record,
        _ => return Err(refused("no such tenant")),
    };
    let object = state
        .store
        .object(ObjectKind::Hook, &tenant.id, &name)
        .await?
        .ok_or_else(|| refused("no such hook"))?;
    let stored: StoredHook = serde_json::from_value(object.value)
        .map_err(|e| ApiError::internal(format!("hook {name:?} does not decode: {e}")))?;
    let secret = match secrets.value(&tenant.id, &stored.spec.secret).await {
        Ok(secret) => secret,
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, hook = %name, error = %e, "a hook's secret cannot be read; its requests are refused");
            return Err(refused("the hook's secret is not set"));
        }
    };
    let header = headers.get(signature::HEADER).and_then(|v| v.to_str().ok());
    let now_secs = state.engine.now() / 1000;
    let verified = signature::verify(secret.as_bytes(), header, &bytes, now_secs).map_err(refused)?;
    drop(secret);

    let body: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    let input = match stored.spec.mapping() {
        Ok(Some(mapping)) => mapping
            .apply(&body, &header_map(&headers))
            .map_err(|e| ApiError::invalid(ErrorCode::InvalidInput, "input", e))?,
        Ok(None) => match body {
            Value::Object(input) => input,
            _ => {
                return Err(ApiError::invalid(
                    ErrorCode::InvalidInput,
                    "input",
                    "the body is the run's input, so must be a JSON object (or give the hook an `input` mapping)",
                ));
            }
        },
        Err(e) => return Err(ApiError::internal(format!("hook {name:?} has a bad mapping: {e}"))),
    };
    let delivery = key.unwrap_or(verified);
    let key = format!("weft:hook:{name}:{delivery}");
    if let Some(run) = state.store.idempotent_run(&tenant.id, &key).await? {
        return Ok((
            StatusCode::OK,
            Json(HookAccepted {
                run: run.0,
                duplicate: true,
            }),
        ));
    }
    super::runs::take_start(&state, &tenant)?;
    let request = crate::triggers::start_request(&tenant, &stored.spec.workflow, input, Some(key));
    let (run, created) = state.engine.start_run(request).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(HookAccepted {
            run: run.0,
            duplicate: !created,
        }),
    ))
}

/// The request's headers for the mapping: lower-case names, values that
/// are text, repeated ones joined with `, `.
fn header_map(headers: &HeaderMap) -> Map<String, Value> {
    let mut joined: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            joined.entry(name.as_str()).or_default().push(value);
        }
    }
    joined
        .into_iter()
        .map(|(name, values)| (name.to_string(), Value::String(values.join(", "))))
        .collect()
}
