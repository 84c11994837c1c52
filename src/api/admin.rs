//! `/v1/admin`: tenants and their API keys, with the admin token only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::{Name, Path, check_name, name_schema};
use super::{ApiState, location};
use crate::roles::Role;
use crate::store::Change;
use crate::tenant::{self, Quotas, TenantRecord};

/// A new tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Its name, which is also its id.
    #[schema(schema_with = name_schema)]
    name: String,
    /// Its quotas; any left out take the server's defaults.
    #[serde(default)]
    #[schema(required = false)]
    quotas: QuotasPatch,
}

/// Quotas to set; each one left out takes the server's default.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotasPatch {
    /// Runs that may be unfinished at once.
    #[schema(required = false, value_type = Option<u64>, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_concurrent_runs: Option<u32>,
    /// Attempts that may run at once, across every node of a cluster; 0
    /// for no cap but each node's slots.
    #[schema(required = false, value_type = Option<u64>, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_concurrent_attempts: Option<u32>,
    /// The most fuel one attempt may burn.
    #[schema(required = false)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_fuel: Option<u64>,
    /// The most linear memory one attempt may use, in bytes.
    #[schema(required = false)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_memory: Option<u64>,
    /// The largest module upload, in bytes.
    #[schema(required = false)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_module_size: Option<u64>,
    /// Module versions the tenant may store.
    #[schema(required = false, value_type = Option<u64>, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_modules: Option<u32>,
    /// Runs the tenant may start per second (the burst is one second's
    /// worth, at least one).
    #[schema(required = false, minimum = 0)]
    start_rate: Option<f64>,
    /// Days a finished run is kept before it is deleted.
    #[schema(required = false, value_type = Option<u64>, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    retention_days: Option<u32>,
    /// Where the tenant's tasks may send HTTP requests: URL patterns and
    /// private addresses or ranges. Empty: nowhere.
    #[schema(required = false, value_type = Option<Vec<AllowEntry>>)]
    #[serde(default)]
    http_allow: Option<Vec<String>>,
    /// The most HTTP requests one attempt may make.
    #[schema(required = false, value_type = Option<u64>, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_http_requests: Option<u32>,
    /// The most request body bytes one attempt may send.
    #[schema(required = false)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_http_sent: Option<u64>,
    /// The most response body bytes one attempt may receive.
    #[schema(required = false)]
    #[serde(default, deserialize_with = "body::optional_integer")]
    max_http_received: Option<u64>,
    /// Store the tenant's payloads sealed under a data key of its own
    /// (needs a server master key). Turning it on or off changes how new
    /// values are written; values already stored stay as they are and
    /// read back either way.
    #[schema(required = false)]
    encrypt_payloads: Option<bool>,
}

impl QuotasPatch {
    /// `defaults` with the given quotas over them.
    fn over(self, defaults: Quotas) -> ApiResult<Quotas> {
        if let Some(rate) = self.start_rate
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(ApiError::invalid(
                ErrorCode::InvalidQuotas,
                "quotas.start_rate",
                "quotas: start_rate must be a number of runs per second, 0 or more",
            ));
        }
        for (i, entry) in self.http_allow.iter().flatten().enumerate() {
            if !allow_entry().is_match(entry) {
                let why = match crate::sandbox::http::AllowList::parse(&[entry]) {
                    Err(problems) => problems[0].1.clone(),
                    Ok(_) => format!("{entry:?} is not in the form the API takes (no IPv6, no trailing dot)"),
                };
                return Err(ApiError::invalid(
                    ErrorCode::InvalidQuotas,
                    &format!("quotas.http_allow[{i}]"),
                    format!("quotas: http_allow[{i}]: {why}"),
                ));
            }
        }
        Ok(Quotas {
            max_concurrent_runs: self.max_concurrent_runs.unwrap_or(defaults.max_concurrent_runs),
            max_concurrent_attempts: self.max_concurrent_attempts.unwrap_or(defaults.max_concurrent_attempts),
            max_fuel: self.max_fuel.unwrap_or(defaults.max_fuel),
            max_memory: self.max_memory.unwrap_or(defaults.max_memory),
            max_module_size: self.max_module_size.unwrap_or(defaults.max_module_size),
            max_modules: self.max_modules.unwrap_or(defaults.max_modules),
            start_rate: self.start_rate.unwrap_or(defaults.start_rate),
            retention_days: self.retention_days.unwrap_or(defaults.retention_days),
            http_allow: self.http_allow.unwrap_or(defaults.http_allow),
            max_http_requests: self.max_http_requests.unwrap_or(defaults.max_http_requests),
            max_http_sent: self.max_http_sent.unwrap_or(defaults.max_http_sent),
            max_http_received: self.max_http_received.unwrap_or(defaults.max_http_received),
            encrypt_payloads: self.encrypt_payloads.unwrap_or(defaults.encrypt_payloads),
        })
    }
}

/// One entry of `http_allow`: a URL pattern
/// (`scheme://host[:port][/path-prefix]`, the host may start with `*.`)
/// or an IPv4 address or range.
pub struct AllowEntry;

impl utoipa::PartialSchema for AllowEntry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(crate::sandbox::http::quota_entry_pattern()))
            .into()
    }
}

impl utoipa::ToSchema for AllowEntry {}

fn allow_entry() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN
        .get_or_init(|| regex::Regex::new(&crate::sandbox::http::quota_entry_pattern()).expect("the pattern compiles"))
}

/// The tenant a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's id (its name).
    #[param(inline, value_type = Name)]
    pub(super) id: String,
}

/// A key of a tenant, as a path names it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The tenant's id (its name).
    #[param(inline, value_type = Name)]
    id: String,
    /// The key's id, as given when it was made.
    key_id: String,
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
    pub key_id: String,
    /// The bearer token. It cannot be shown again.
    pub token: String,
    /// What it may do.
    pub role: Role,
}

/// The key to make.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// Its role; `admin` when left out.
    #[serde(default)]
    pub role: Role,
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
    request_body(content = CreateTenant, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, with its first key", body = TenantWithKey,
            headers(("Location" = String, description = "The tenant: `/v1/admin/tenants/{id}`"))),
        (status = 409, description = "The name is taken (`tenant_exists`)", body = ErrorBody),
        (status = 503, description = "The server is stopping, or `encrypt_payloads` was asked of a server \
            without a master key (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn create_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, HeaderMap, Json<TenantWithKey>)> {
    let request: CreateTenant = body::json(&headers, bytes)?;
    check_name("tenant", "name", &request.name)?;
    let quotas = request.quotas.over(state.config.default_quotas.clone())?;
    can_seal(&state, &quotas)?;
    if state.store.tenant(&request.name).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::TenantExists,
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
    let key = tenant::new_key(&record.id, Role::Admin, now);
    state
        .store
        .commit(vec![
            Change::PutTenant(Box::new(record.clone())),
            Change::PutKey(Box::new(key.record.clone())),
        ])
        .await?;
    tracing::info!(tenant = %record.id, key_id = %key.record.key_id, "tenant created");
    let location = location(format!("/v1/admin/tenants/{}", record.id));
    Ok((
        StatusCode::CREATED,
        location,
        Json(TenantWithKey {
            tenant: record,
            api_key: NewKeyView {
                key_id: key.record.key_id,
                token: key.token,
                role: key.record.role,
            },
        }),
    ))
}

/// List every tenant.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    responses((status = 200, description = "Every tenant", body = TenantList))
)]
pub async fn list_tenants(State(state): State<Arc<ApiState>>, _: Admin) -> ApiResult<Json<TenantList>> {
    Ok(Json(TenantList {
        tenants: state.store.tenants().await?,
    }))
}

/// A tenant with its quotas.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant", body = TenantRecord),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn get_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(TenantPath { id }): Path<TenantPath>,
) -> ApiResult<Json<TenantRecord>> {
    tenant_named(&state, &id).await.map(Json)
}

/// Changes to a tenant.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Quotas to change; those left out keep their values.
    #[serde(default)]
    #[schema(required = false)]
    quotas: QuotasPatch,
}

/// Change a tenant's quotas. Limits apply to what starts after the
/// change (running attempts keep theirs); a narrower `http_allow` refuses
/// pushes of workflows that ask for more, and steps of runs already
/// started keep what they had.
#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    params(TenantPath),
    request_body(content = UpdateTenant, content_type = "application/json"),
    responses(
        (status = 200, description = "The tenant as it is now", body = TenantRecord),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
        (status = 503, description = "The server is stopping, or `encrypt_payloads` was asked of a server \
            without a master key (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn update_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(TenantPath { id }): Path<TenantPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TenantRecord>> {
    let request: UpdateTenant = body::json(&headers, bytes)?;
    let mut record = tenant_named(&state, &id).await?;
    record.quotas = request.quotas.over(record.quotas)?;
    can_seal(&state, &record.quotas)?;
    state
        .store
        .commit(vec![Change::PutTenant(Box::new(record.clone()))])
        .await?;
    tracing::info!(tenant = %record.id, "tenant quotas changed");
    Ok(Json(record))
}

/// Refuses `encrypt_payloads` (503, as the secrets endpoints do) on a
/// server that has no master key to seal the tenant's data key with.
fn can_seal(state: &ApiState, quotas: &Quotas) -> ApiResult<()> {
    if quotas.encrypt_payloads && state.secrets.is_none() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "quotas: encrypt_payloads needs a master key, and this server has none: start every node with \
             WEFT_MASTER_KEY (docs/operations.md, \"Secrets\")",
        ));
    }
    Ok(())
}

/// The tenant `id`, or 400 for a name no tenant can have, or 404.
pub(super) async fn tenant_named(state: &ApiState, id: &str) -> ApiResult<TenantRecord> {
    check_name("tenant", "id", id)?;
    state
        .store
        .tenant(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant {id:?}")))
}

/// Disable a tenant: its keys are refused with 403; its runs go on.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/disable",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant as it is now", body = TenantRecord),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn disable_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(TenantPath { id }): Path<TenantPath>,
) -> ApiResult<Json<TenantRecord>> {
    set_disabled(&state, &id, true).await.map(Json)
}

/// Enable a disabled tenant again.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/enable",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant as it is now", body = TenantRecord),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn enable_tenant(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(TenantPath { id }): Path<TenantPath>,
) -> ApiResult<Json<TenantRecord>> {
    set_disabled(&state, &id, false).await.map(Json)
}

async fn set_disabled(state: &ApiState, id: &str, disabled: bool) -> ApiResult<TenantRecord> {
    let mut record = tenant_named(state, id).await?;
    record.disabled = disabled;
    state
        .store
        .commit(vec![Change::PutTenant(Box::new(record.clone()))])
        .await?;
    Ok(record)
}

/// Make another API key for a tenant, with a role (`admin` when none is
/// given).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/keys",
    tag = "admin",
    params(TenantPath),
    request_body(content = NewKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The key, shown this once", body = NewKeyView),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn create_key(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(TenantPath { id }): Path<TenantPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<NewKeyView>)> {
    let NewKeyBody { role } = body::json(&headers, bytes)?;
    tenant_named(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(make_key(&state, &id, role).await?)))
}

/// Makes and stores a key of `tenant` with `role`, durably.
pub(super) async fn make_key(state: &ApiState, tenant: &str, role: Role) -> ApiResult<NewKeyView> {
    let key = tenant::new_key(tenant, role, state.engine.now());
    state
        .store
        .commit(vec![Change::PutKey(Box::new(key.record.clone()))])
        .await?;
    Ok(NewKeyView {
        key_id: key.record.key_id,
        token: key.token,
        role,
    })
}

/// Revokes `tenant`'s key `key_id`, durably; 404 when it has none such.
pub(super) async fn revoke(state: &ApiState, tenant: &str, key_id: String) -> ApiResult<StatusCode> {
    match state.store.key(&key_id).await? {
        Some(key) if key.tenant == tenant => {}
        _ => return Err(ApiError::not_found(format!("key {key_id:?} of tenant {tenant:?}"))),
    }
    state.store.commit(vec![Change::DeleteKey { key_id }]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke an API key at once.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}/keys/{key_id}",
    tag = "admin",
    params(KeyPath),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key of that tenant (`not_found`)", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(KeyPath { id, key_id }): Path<KeyPath>,
) -> ApiResult<StatusCode> {
    check_name("tenant", "id", &id)?;
    revoke(&state, &id, key_id).await
}
