//! `/v1/admin`: tenants and their API keys, with the admin token only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Admin;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::db::Change;
use crate::tenant::{self, Quotas, TenantRecord, check_name};

/// A new tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Its name, which is also its id.
    name: String,
    /// Its quotas; any left out take the server's defaults.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    quotas: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A tenant and a key made for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantWithKey {
    /// The tenant.
    tenant: TenantRecord,
    /// The key: shown this once, stored only hashed.
    api_key: NewKeyView,
}

/// A key just made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKeyView {
    /// Its id, to revoke it.
    key_id: String,
    /// The bearer token. It cannot be shown again.
    token: String,
}

/// Every tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    /// By id.
    tenants: Vec<TenantRecord>,
}

/// Create a tenant and its first API key.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    request_body = CreateTenant,
    responses(
        (status = 201, body = TenantWithKey),
        (status = 400, description = "Invalid name or quotas", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
pub async fn create_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<TenantWithKey>)> {
    let request: CreateTenant = body::json(&headers, bytes)?;
    check_name("tenant", &request.name).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?;
    let quotas = quotas(&state.config.default_quotas, request.quotas)?;
    if state.db.tenant(&request.name)?.is_some() {
        return Err(ApiError::conflict(
            "tenant_exists",
            format!("tenant {:?} exists", request.name),
        ));
    }
    let now = state.engine.now();
    let record = TenantRecord {
        id: request.name,
        quotas,
        disabled: false,
        created_at: now,
    };
    let key = tenant::new_key(&record.id, now);
    state
        .db
        .commit(vec![
            Change::PutTenant(Box::new(record.clone())),
            Change::PutKey(Box::new(key.record.clone())),
        ])
        .await?;
    tracing::info!(tenant = %record.id, key_id = %key.record.key_id, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(TenantWithKey {
            tenant: record,
            api_key: NewKeyView {
                key_id: key.record.key_id,
                token: key.token,
            },
        }),
    ))
}

/// The server's default quotas with the given fields over them; unknown
/// fields and wrong types are errors.
fn quotas(defaults: &Quotas, given: Option<serde_json::Map<String, serde_json::Value>>) -> ApiResult<Quotas> {
    let mut merged = match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => return Err(ApiError::internal("quotas do not serialise")),
    };
    merged.extend(given.unwrap_or_default());
    let quotas: Quotas = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| ApiError::bad_request("invalid_quotas", format!("quotas: {e}")))?;
    if !(quotas.start_rate.is_finite() && quotas.start_rate >= 0.0) {
        return Err(ApiError::bad_request(
            "invalid_quotas",
            "quotas: start_rate must be a number of runs per second, 0 or more",
        ));
    }
    Ok(quotas)
}

/// List every tenant.
#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin", responses((status = 200, body = TenantList)))]
pub async fn list_tenants(State(state): State<Arc<ApiState>>, _: Admin) -> ApiResult<Json<TenantList>> {
    Ok(Json(TenantList {
        tenants: state.db.tenants()?,
    }))
}

/// Disable a tenant: its keys are refused with 403; its runs go on.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/disable",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant")),
    responses((status = 200, body = TenantRecord), (status = 404, body = ErrorBody))
)]
pub async fn disable_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantRecord>> {
    set_disabled(&state, &id, true).await.map(Json)
}

/// Enable a disabled tenant again.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/enable",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant")),
    responses((status = 200, body = TenantRecord), (status = 404, body = ErrorBody))
)]
pub async fn enable_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantRecord>> {
    set_disabled(&state, &id, false).await.map(Json)
}

async fn set_disabled(state: &ApiState, id: &str, disabled: bool) -> ApiResult<TenantRecord> {
    let mut record = state
        .db
        .tenant(id)?
        .ok_or_else(|| ApiError::not_found(format!("tenant {id:?}")))?;
    record.disabled = disabled;
    state
        .db
        .commit(vec![Change::PutTenant(Box::new(record.clone()))])
        .await?;
    Ok(record)
}

/// Make another API key for a tenant.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/keys",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant")),
    responses((status = 201, body = NewKeyView), (status = 404, body = ErrorBody))
)]
pub async fn create_key(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<NewKeyView>)> {
    if state.db.tenant(&id)?.is_none() {
        return Err(ApiError::not_found(format!("tenant {id:?}")));
    }
    let key = tenant::new_key(&id, state.engine.now());
    state
        .db
        .commit(vec![Change::PutKey(Box::new(key.record.clone()))])
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKeyView {
            key_id: key.record.key_id,
            token: key.token,
        }),
    ))
}

/// Revoke an API key at once.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}/keys/{key_id}",
    tag = "admin",
    params(
        ("id" = String, Path, description = "The tenant"),
        ("key_id" = String, Path, description = "The key's id"),
    ),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody))
)]
pub async fn revoke_key(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    match state.db.key(&key_id)? {
        Some(key) if key.tenant == id => {}
        _ => return Err(ApiError::not_found(format!("key {key_id:?} of tenant {id:?}"))),
    }
    state.db.commit(vec![Change::DeleteKey { key_id }]).await?;
    Ok(StatusCode::NO_CONTENT)
}
