//! `/v1/secrets`: a tenant's secrets. A value is write-only: it is sealed
//! on arrival (`crate::secrets`), and no answer, log line or error
//! message ever holds it; listing shows names and dates.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::Path;
use crate::secrets::{MAX_VALUE_CHARS, NAME_PATTERN, SecretInfo, Secrets, SecretsError};

/// The secret a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretPath {
    /// The secret's name, as workflows write it (`secrets: [NAME]`,
    /// `${{ secrets.NAME }}`).
    #[param(inline, value_type = SecretName)]
    pub name: String,
}

/// The schema of a secret's name: the rule workflows follow
/// (`crate::spec::is_secret_name`).
pub struct SecretName;

schema!(SecretName, secret_name_schema());

fn secret_name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NAME_PATTERN))
        .min_length(Some(1))
        .max_length(Some(64))
        .build()
}

/// A secret's new value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value, up to 65,536 characters. It is never shown again.
    #[schema(max_length = 65536)]
    value: String,
}

// Never the value, should the body be printed.
impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

/// The tenant's secrets, without their values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretList {
    /// Each secret, by name.
    secrets: Vec<SecretInfo>,
}

/// The service, or 503 where this server has no master key.
fn service(state: &ApiState) -> ApiResult<&Secrets> {
    state.secrets.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "this server has no master key, so keeps no secrets: start it with WEFT_MASTER_KEY (docs/operations.md)",
        )
    })
}

fn refused(e: SecretsError, field: &str) -> ApiError {
    match e {
        SecretsError::InvalidName(_) => ApiError::invalid(ErrorCode::InvalidName, "name", e.to_string()),
        SecretsError::TooLarge { .. } => ApiError::invalid(ErrorCode::InvalidBody, field, e.to_string()),
        SecretsError::Store(e) => e.into(),
        e => ApiError::internal(e),
    }
}

/// Set a secret.
///
/// The value is sealed with the server's master key before it is stored,
/// bound to this tenant and name. It is never returned: steps that name
/// the secret (`secrets:`, or `${{ secrets.NAME }}` in an HTTP header)
/// receive it when they run.
#[utoipa::path(
    put,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    params(SecretPath),
    request_body(content = SecretValue, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the value is not returned", body = SecretInfo),
        (status = 200, description = "Replaced; the value is not returned", body = SecretInfo),
        (status = 503, description = "The server is stopping, or has no master key and keeps no secrets \
            (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn put_secret(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SecretPath { name }): Path<SecretPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<SecretInfo>)> {
    let secrets = service(&state)?;
    if !crate::spec::is_secret_name(&name) {
        return Err(refused(SecretsError::InvalidName(name), "name"));
    }
    let SecretValue { value } = body::json(&headers, bytes)?;
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(refused(
            SecretsError::TooLarge {
                chars: value.chars().count(),
                max: MAX_VALUE_CHARS,
            },
            "value",
        ));
    }
    let created = secrets
        .set(&tenant.id, &name, &value)
        .await
        .map_err(|e| refused(e, "value"))?;
    drop(value);
    let info = secrets
        .list(&tenant.id)
        .await
        .map_err(|e| refused(e, ""))?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::internal(format!("secret {name:?} is missing just after it was set")))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(info)))
}

/// List the tenant's secrets: names, dates and key ids, never values.
#[utoipa::path(
    get,
    path = "/v1/secrets",
    tag = "secrets",
    responses(
        (status = 200, description = "Every secret, by name", body = SecretList),
        (status = 503, description = "The server is stopping, or has no master key and keeps no secrets \
            (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn list_secrets(State(state): State<Arc<ApiState>>, Caller(tenant): Caller) -> ApiResult<Json<SecretList>> {
    let secrets = service(&state)?.list(&tenant.id).await.map_err(|e| refused(e, ""))?;
    Ok(Json(SecretList { secrets }))
}

/// Delete a secret. Runs whose steps name it fail those steps
/// (`secret_missing`) from then on.
#[utoipa::path(
    delete,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    params(SecretPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such secret (`not_found`)", body = ErrorBody),
        (status = 503, description = "The server is stopping, or has no master key and keeps no secrets \
            (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn delete_secret(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SecretPath { name }): Path<SecretPath>,
) -> ApiResult<StatusCode> {
    let secrets = service(&state)?;
    if !crate::spec::is_secret_name(&name) {
        return Err(refused(SecretsError::InvalidName(name), "name"));
    }
    if secrets.delete(&tenant.id, &name).await.map_err(|e| refused(e, ""))? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("secret {name:?}")))
    }
}
