//! Who is calling: the bearer token of a request, checked against the
//! admin token or a tenant's API key.
//!
//! A missing or wrong token is 401; a key of a disabled tenant is 403.
//! Handlers take [`Caller`] (a tenant) or [`Admin`] as an argument, so a
//! route cannot forget to check.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::ApiState;
use super::error::ApiError;
use crate::tenant::{self, TenantRecord};

/// The tenant a request acts as.
#[derive(Debug, Clone)]
pub struct Caller(pub TenantRecord);

/// A request made with the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
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
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the token is not valid")
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let (key_id, secret) = tenant::split_key(token).ok_or_else(wrong_token)?;
        let key = state.db.key(key_id)?.ok_or_else(wrong_token)?;
        if !tenant::key_matches(&key, secret) {
            return Err(wrong_token());
        }
        let tenant = state.db.tenant(&key.tenant)?.ok_or_else(wrong_token)?;
        if tenant.disabled {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tenant_disabled",
                format!("tenant {:?} is disabled", tenant.id),
            ));
        }
        Ok(Caller(tenant))
    }
}

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if tenant::admin_matches(&state.admin_token, token) {
            Ok(Admin)
        } else {
            Err(wrong_token())
        }
    }
}
