//! Who is calling: the bearer token of a request, checked against the
//! admin token or a tenant's API key.
//!
//! The check is a layer over a whole group of routes ([`tenant`],
//! [`admin`], put there by `openapi::guarded`, which also documents it),
//! so no route can forget it. A missing or wrong token is 401; a key of a
//! disabled tenant is 403, and so is a key whose role lacks the
//! permission the route needs (`crate::roles`). Handlers read who passed with [`Caller`] or
//! [`Admin`]; a handler outside its group finds neither and fails loudly.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;
use super::error::{ApiError, ErrorCode};
use super::trail::{self, ActorKind, Pending};
use crate::roles::{self, Role};
use crate::tenant::{self, KeyRecord, TenantRecord};

/// The tenant a request acts as.
#[derive(Debug, Clone)]
pub struct Caller(pub TenantRecord);

/// The key a tenant request came with: its id and role.
#[derive(Debug, Clone)]
pub struct CallerKey {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub role: Role,
}

/// A request made with the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let unauthorized = |message: &str| ApiError::new(ErrorCode::Unauthorized, message);
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(unauthorized("the Authorization header must be `Bearer <token>`")),
    }
}

fn wrong_token() -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, "the token is not valid")
}

/// The tenant whose key `parts` carries, and the key.
async fn authenticate(parts: &Parts, state: &ApiState) -> Result<(TenantRecord, KeyRecord), ApiError> {
    let token = bearer(parts)?;
    let (key_id, secret) = tenant::split_key(token).ok_or_else(wrong_token)?;
    let key = state.store.key(key_id).await?.ok_or_else(wrong_token)?;
    if !tenant::key_matches(&key, secret) {
        return Err(wrong_token());
    }
    let tenant = state.store.tenant(&key.tenant).await?.ok_or_else(wrong_token)?;
    if tenant.disabled {
        return Err(ApiError::new(
            ErrorCode::TenantDisabled,
            format!("tenant {:?} is disabled", tenant.id),
        ));
    }
    Ok((tenant, key))
}

/// Refuses a request whose key's role lacks the permission its route
/// needs (`crate::roles::required`).
fn permit(parts: &Parts, role: Role) -> Result<(), ApiError> {
    let method = parts.method.as_str();
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let Some(permission) = roles::required(method, &path) else {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("{method} {path} is not open to API keys"),
        ));
    };
    if role.allows(permission) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::PermissionDenied,
        format!(
            "{method} {path} needs the `{}` permission, which this key's role `{}` lacks (role `{}` or above has it)",
            permission.name(),
            role.name(),
            permission.least_role().name()
        ),
    ))
}

/// The layer over tenant routes: lets a request with a valid key of an
/// enabled tenant through, as that tenant.
pub async fn tenant(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let (tenant, key) = authenticate(&parts, &state).await?;
    let pending = trail::audited(&parts.method).then(|| Pending {
        actor: ActorKind::Key,
        key_id: Some(key.key_id.clone()),
        role: Some(key.role),
        ..pending_of(&parts)
    });
    if let Err(refused) = permit(&parts, key.role) {
        if let Some(pending) = pending {
            trail::record(&state, &tenant.id, pending, refused.code.status()).await;
        }
        return Err(refused);
    }
    let trail = tenant.id.clone();
    parts.extensions.insert(Caller(tenant));
    parts.extensions.insert(CallerKey {
        key_id: key.key_id,
        role: key.role,
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if let Some(pending) = pending {
        trail::record(&state, &trail, pending, response.status()).await;
    }
    Ok(response)
}

/// What the audit trail keeps of a request, but who made it.
fn pending_of(parts: &Parts) -> Pending {
    Pending {
        actor: ActorKind::Admin,
        key_id: None,
        role: None,
        method: parts.method.to_string(),
        route: parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        path: parts.uri.path().to_string(),
        address: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string()),
    }
}

/// The layer over admin routes: lets a request with the admin token
/// through.
pub async fn admin(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    if !tenant::admin_matches(&state.admin_token, bearer(&parts)?) {
        return Err(wrong_token());
    }
    let pending = trail::audited(&parts.method).then(|| pending_of(&parts));
    parts.extensions.insert(Admin);
    let response = next.run(Request::from_parts(parts, body)).await;
    if let Some(pending) = pending {
        trail::record(&state, trail::SERVER, pending, response.status()).await;
    }
    Ok(response)
}

/// What the guard of a route group left for its handlers.
fn passed<T: Clone + Send + Sync + 'static>(parts: &mut Parts, guard: &str) -> Result<T, ApiError> {
    parts.extensions.remove::<T>().ok_or_else(|| {
        ApiError::internal(format!(
            "{} is served outside the {guard} route group",
            parts.uri.path()
        ))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        passed(parts, "tenant")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CallerKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        passed(parts, "tenant")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        passed(parts, "admin")
    }
}
