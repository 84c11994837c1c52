//! `/v1/modules`: upload (validated and precompiled), list, get, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::body::{self, Binary};
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::{Name, Path, Query, check_name};
use super::{ApiState, location};
use crate::digest::Digest;
use crate::model::ModuleRecord;

/// The module a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModulePath {
    /// The module's name.
    #[param(inline, value_type = Name)]
    name: String,
}

/// Query of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// A version label (default: the digest's first 12 hex digits).
    /// Versions are immutable: the same label with other bytes is refused.
    #[param(inline, value_type = Option<Name>)]
    version: Option<String>,
}

/// A module's versions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModuleVersions {
    /// The module's name.
    name: String,
    /// The version a step that names no version runs.
    latest: String,
    /// Every stored version, oldest first.
    versions: Vec<ModuleRecord>,
}

/// A page of modules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModuleList {
    /// Every module, with its versions.
    modules: Vec<ModuleVersions>,
}

const WASM_TYPES: &[&str] = &["application/wasm", "application/octet-stream"];

/// Upload a task component.
///
/// The bytes are checked to be a component of the `weft:task` world that
/// imports nothing the host does not provide, and compiled, before
/// anything is stored.
#[utoipa::path(
    put,
    path = "/v1/modules/{name}",
    tag = "modules",
    params(ModulePath, UploadQuery),
    request_body(
        description = "The component's bytes",
        content(
            (Binary = "application/wasm"),
            (Binary = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 201, description = "Stored", body = ModuleRecord,
            headers(("Location" = String, description = "The module: `/v1/modules/{name}`"))),
        (status = 200, description = "This version was already stored with these bytes", body = ModuleRecord,
            headers(("Location" = String, description = "The module: `/v1/modules/{name}`"))),
        (status = 409, description = "The version exists with other bytes (`version_exists`)", body = ErrorBody),
        (status = 422, description = "Not a valid task component (`invalid_module`)", body = ErrorBody),
        (status = 429, description = "Over the tenant's module quotas (`quota_exceeded`)", body = ErrorBody),
    )
)]
pub async fn put_module(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(ModulePath { name }): Path<ModulePath>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, HeaderMap, Json<ModuleRecord>)> {
    check_name("module", "name", &name)?;
    if let Some(version) = &query.version {
        check_name("version", "version", version)?;
    }
    if !body::content_type(&headers).is_some_and(|t| WASM_TYPES.contains(&t.as_str())) {
        return Err(body::unsupported(&headers, WASM_TYPES));
    }
    let bytes = body::bytes(bytes)?;
    let quotas = tenant.quotas;
    if bytes.len() as u64 > quotas.max_module_size {
        return Err(ApiError::quota(format!(
            "the module is {} bytes; the tenant's max_module_size is {}",
            bytes.len(),
            quotas.max_module_size
        )));
    }
    let digest = Digest::of(&bytes);
    let version = query.version.unwrap_or_else(|| digest.short());
    if let Some(existing) = state.store.module_version(&tenant.id, &name, &version).await? {
        return if existing.digest == digest {
            Ok((StatusCode::OK, location(format!("/v1/modules/{name}")), Json(existing)))
        } else {
            Err(ApiError::new(
                ErrorCode::VersionExists,
                format!(
                    "module {name} version {version} exists with other bytes ({})",
                    existing.digest
                ),
            ))
        };
    }
    let stored = state.store.module_versions(&tenant.id).await?.len();
    if stored as u64 >= u64::from(quotas.max_modules) {
        return Err(ApiError::quota(format!(
            "{stored} module versions are stored; the tenant's max_modules is {}",
            quotas.max_modules
        )));
    }
    // Validation compiles the component (milliseconds to seconds): off the
    // executor. The compiled module stays cached for the first attempt.
    let sandbox = state.sandbox.clone();
    let owned = bytes.to_vec();
    let module = tokio::task::spawn_blocking(move || sandbox.load(&owned))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::new(ErrorCode::InvalidModule, e.to_string()))?;
    let record = ModuleRecord {
        name,
        version,
        digest,
        size: bytes.len() as u64,
        imports: module.imports().to_vec(),
        created_at: state.engine.now(),
    };
    state
        .engine
        .put_module(&tenant.id, record.clone(), bytes.to_vec())
        .await?;
    let location = location(format!("/v1/modules/{}", record.name));
    Ok((StatusCode::CREATED, location, Json(record)))
}

/// List the tenant's modules.
#[utoipa::path(
    get,
    path = "/v1/modules",
    tag = "modules",
    responses((status = 200, description = "Every module with its versions", body = ModuleList))
)]
pub async fn list_modules(State(state): State<Arc<ApiState>>, Caller(tenant): Caller) -> ApiResult<Json<ModuleList>> {
    let mut modules: Vec<ModuleVersions> = Vec::new();
    for record in state.store.module_versions(&tenant.id).await? {
        match modules.last_mut() {
            Some(last) if last.name == record.name => last.versions.push(record),
            _ => modules.push(ModuleVersions {
                name: record.name.clone(),
                latest: String::new(),
                versions: vec![record],
            }),
        }
    }
    for module in &mut modules {
        module.latest = latest(&state, &tenant.id, &module.name, &module.versions).await?;
        module.versions.sort_by_key(|v| v.created_at);
    }
    Ok(Json(ModuleList { modules }))
}

/// A module's versions.
#[utoipa::path(
    get,
    path = "/v1/modules/{name}",
    tag = "modules",
    params(ModulePath),
    responses(
        (status = 200, description = "The module's versions", body = ModuleVersions),
        (status = 404, description = "No such module (`not_found`)", body = ErrorBody),
    )
)]
pub async fn get_module(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(ModulePath { name }): Path<ModulePath>,
) -> ApiResult<Json<ModuleVersions>> {
    check_name("module", "name", &name)?;
    let mut versions = versions_of(&state, &tenant.id, &name).await?;
    versions.sort_by_key(|v| v.created_at);
    let latest = latest(&state, &tenant.id, &name, &versions).await?;
    Ok(Json(ModuleVersions { name, latest, versions }))
}

/// Delete a module and all its versions.
///
/// Refused with 409 while an unfinished run is pinned to one of them.
/// Finished runs keep their history.
#[utoipa::path(
    delete,
    path = "/v1/modules/{name}",
    tag = "modules",
    params(ModulePath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such module (`not_found`)", body = ErrorBody),
        (status = 409, description = "An unfinished run uses it (`module_in_use`)", body = ErrorBody),
    )
)]
pub async fn delete_module(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(ModulePath { name }): Path<ModulePath>,
) -> ApiResult<StatusCode> {
    check_name("module", "name", &name)?;
    let versions = versions_of(&state, &tenant.id, &name).await?;
    for id in state.store.active_runs().await? {
        let Some(run) = state.store.run(id).await? else {
            continue;
        };
        if run.tenant == tenant.id && run.modules.iter().any(|d| versions.iter().any(|v| v.digest == *d)) {
            return Err(ApiError::new(
                ErrorCode::ModuleInUse,
                format!("run {id} is unfinished and runs module {name}; cancel it or wait for it to finish"),
            ));
        }
    }
    state
        .store
        .commit(vec![crate::store::Change::DeleteModule {
            tenant: tenant.id.clone(),
            name,
        }])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn versions_of(state: &ApiState, tenant: &str, name: &str) -> ApiResult<Vec<ModuleRecord>> {
    let versions: Vec<ModuleRecord> = state
        .store
        .module_versions(tenant)
        .await?
        .into_iter()
        .filter(|m| m.name == name)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("module {name:?}")));
    }
    Ok(versions)
}

async fn latest(state: &ApiState, tenant: &str, name: &str, versions: &[ModuleRecord]) -> ApiResult<String> {
    let digest = state.store.module_named(tenant, name).await?;
    Ok(versions
        .iter()
        .rev()
        .find(|v| Some(v.digest) == digest)
        .map(|v| v.version.clone())
        .unwrap_or_default())
}
