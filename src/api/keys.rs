//! `/v1/api-keys`: a tenant's own API keys, for keys whose role is `admin`:
//! make one with a role, list them (ids, roles, dates; never secrets),
//! revoke one. The server admin's `/v1/admin/tenants/{id}/keys` stays
//! above them.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::admin::{NewKeyBody, NewKeyView, TenantPath, make_key, revoke, tenant_named};
use super::auth::{Admin, Caller, CallerKey};
use super::body;
use super::error::{ApiResult, ErrorBody};
use super::params::Path;
use crate::model::Millis;
use crate::roles::Role;
use crate::store::{Record, Table};

/// The key a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyIdPath {
    /// The key's id (the part of the token after `wk_`, before the next
    /// `_`).
    pub key_id: String,
}

/// A key, without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Its id.
    pub key_id: String,
    /// What it may do.
    pub role: Role,
    /// When it was made (ms since the epoch).
    pub created_at: Millis,
    /// Whether it is the key this request came with.
    pub current: bool,
}

/// A tenant's keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Each key, by id.
    pub keys: Vec<KeyView>,
}

/// Make an API key for the tenant, with a role.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "keys",
    request_body(content = NewKeyBody, content_type = "application/json"),
    responses((status = 201, description = "The key, shown this once", body = NewKeyView))
)]
pub async fn create_key(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<NewKeyView>)> {
    let NewKeyBody { role } = body::json(&headers, bytes)?;
    Ok((StatusCode::CREATED, Json(make_key(&state, &tenant.id, role).await?)))
}

/// List the tenant's keys: ids, roles and dates, never secrets.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "keys",
    responses((status = 200, description = "Every key of the tenant, by id", body = KeyList))
)]
pub async fn list_keys(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    caller: CallerKey,
) -> ApiResult<Json<KeyList>> {
    keys_of(&state, &tenant.id, Some(&caller.key_id)).await.map(Json)
}

/// List a tenant's keys: ids, roles and dates, never secrets.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/keys",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Every key of the tenant, by id", body = KeyList),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn admin_list_keys(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(TenantPath { id }): Path<TenantPath>,
) -> ApiResult<Json<KeyList>> {
    tenant_named(&state, &id).await?;
    keys_of(&state, &id, None).await.map(Json)
}

/// `tenant`'s keys by id; `current` marks the one a request came with.
async fn keys_of(state: &ApiState, tenant: &str, current: Option<&str>) -> ApiResult<KeyList> {
    // Keys are few and listed rarely: read through the store's export of
    // the key table rather than keep an index per tenant.
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = state.store.export_page(Table::Keys, after, 500).await?;
        for record in page.records.into_iter().flatten() {
            if let Record::Key(key) = record
                && key.tenant == tenant
            {
                keys.push(KeyView {
                    current: current == Some(key.key_id.as_str()),
                    key_id: key.key_id,
                    role: key.role,
                    created_at: key.created_at,
                });
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    Ok(KeyList { keys })
}

/// Revoke one of the tenant's keys at once (the key of this request
/// too, if asked).
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{key_id}",
    tag = "keys",
    params(KeyIdPath),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key of the tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(KeyIdPath { key_id }): Path<KeyIdPath>,
) -> ApiResult<StatusCode> {
    revoke(&state, &tenant.id, key_id).await
}

/// Who a key is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The tenant it acts for.
    pub tenant: String,
    /// Its id.
    pub key_id: String,
    /// What it may do.
    pub role: Role,
    /// The permissions of its role.
    pub permissions: Vec<&'static str>,
}

/// The tenant, key and role this request comes with: what a client needs
/// to know which actions to offer.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "keys",
    responses((status = 200, description = "The caller", body = WhoAmI))
)]
pub async fn whoami(Caller(tenant): Caller, caller: CallerKey) -> Json<WhoAmI> {
    use crate::roles::Permission::*;
    let permissions = [Read, Operate, Develop, ManageKeys]
        .into_iter()
        .filter(|p| caller.role.allows(*p))
        .map(|p| p.name())
        .collect();
    Json(WhoAmI {
        tenant: tenant.id,
        key_id: caller.key_id,
        role: caller.role,
        permissions,
    })
}
