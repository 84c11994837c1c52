//! `/v1/modules`: upload (validated and precompiled), list, get, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::digest::Digest;
use crate::model::ModuleRecord;
use crate::tenant::check_name;

/// Query of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// A version label (default: the digest's first 12 hex digits).
    /// Versions are immutable: the same label with other bytes is refused.
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
    params(("name" = String, Path, description = "The module's name"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, description = "Stored", body = ModuleRecord),
        (status = 200, description = "This version was already stored with these bytes", body = ModuleRecord),
        (status = 409, description = "The version exists with other bytes", body = ErrorBody),
        (status = 413, description = "Larger than the server accepts", body = ErrorBody),
        (status = 415, description = "Not application/wasm", body = ErrorBody),
        (status = 422, description = "Not a valid task component", body = ErrorBody),
        (status = 429, description = "Over the tenant's module quota", body = ErrorBody),
    )
)]
pub async fn put_module(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(name): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<ModuleRecord>)> {
    check_name("module", &name).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?;
    if let Some(version) = &query.version {
        check_name("version", version).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?;
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
    if let Some(existing) = state.db.module_version(&tenant.id, &name, &version)? {
        return if existing.digest == digest {
            Ok((StatusCode::OK, Json(existing)))
        } else {
            Err(ApiError::conflict(
                "version_exists",
                format!(
                    "module {name} version {version} exists with other bytes ({})",
                    existing.digest
                ),
            ))
        };
    }
    let stored = state.db.module_versions(&tenant.id)?.len();
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
        .map_err(|e| ApiError::unprocessable("invalid_module", e.to_string()))?;
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
    Ok((StatusCode::CREATED, Json(record)))
}

/// List the tenant's modules.
#[utoipa::path(get, path = "/v1/modules", tag = "modules", responses((status = 200, body = ModuleList)))]
pub async fn list_modules(State(state): State<Arc<ApiState>>, Caller(tenant): Caller) -> ApiResult<Json<ModuleList>> {
    let mut modules: Vec<ModuleVersions> = Vec::new();
    for record in state.db.module_versions(&tenant.id)? {
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
        module.latest = latest(&state, &tenant.id, &module.name, &module.versions)?;
        module.versions.sort_by_key(|v| v.created_at);
    }
    Ok(Json(ModuleList { modules }))
}

/// A module's versions.
#[utoipa::path(
    get,
    path = "/v1/modules/{name}",
    tag = "modules",
    params(("name" = String, Path, description = "The module's name")),
    responses((status = 200, body = ModuleVersions), (status = 404, body = ErrorBody))
)]
pub async fn get_module(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ModuleVersions>> {
    let mut versions = versions_of(&state, &tenant.id, &name)?;
    versions.sort_by_key(|v| v.created_at);
    let latest = latest(&state, &tenant.id, &name, &versions)?;
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
    params(("name" = String, Path, description = "The module's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "An unfinished run uses it", body = ErrorBody),
    )
)]
pub async fn delete_module(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let versions = versions_of(&state, &tenant.id, &name)?;
    for id in state.db.active_runs()? {
        let Some(run) = state.db.run(id)? else { continue };
        if run.tenant == tenant.id && run.modules.iter().any(|d| versions.iter().any(|v| v.digest == *d)) {
            return Err(ApiError::conflict(
                "module_in_use",
                format!("run {id} is unfinished and runs module {name}; cancel it or wait for it to finish"),
            ));
        }
    }
    state
        .db
        .commit(vec![crate::db::Change::DeleteModule {
            tenant: tenant.id.clone(),
            name,
        }])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn versions_of(state: &ApiState, tenant: &str, name: &str) -> ApiResult<Vec<ModuleRecord>> {
    let versions: Vec<ModuleRecord> = state
        .db
        .module_versions(tenant)?
        .into_iter()
        .filter(|m| m.name == name)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("module {name:?}")));
    }
    Ok(versions)
}

fn latest(state: &ApiState, tenant: &str, name: &str, versions: &[ModuleRecord]) -> ApiResult<String> {
    let digest = state.db.module_named(tenant, name)?;
    Ok(versions
        .iter()
        .rev()
        .find(|v| Some(v.digest) == digest)
        .map(|v| v.version.clone())
        .unwrap_or_default())
}
