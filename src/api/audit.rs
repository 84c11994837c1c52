//! `GET /v1/audit` and `/v1/admin/audit`: the tenant's and the server's
//! audit trails (`trail.rs` writes them), newest first, a page at a
//! time.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiResult};
use super::params::{Cursor, Limit, Query};
use super::trail::{AuditEntry, SERVER};
use crate::store::{ObjectKind, StoredObject};

/// Which page of a trail.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many (default 50).
    #[param(inline)]
    limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    #[param(inline)]
    cursor: Option<Cursor>,
}

/// A page of a trail, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts, when there may be one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub next_cursor: Option<String>,
}

async fn page(state: &ApiState, trail: &str, query: AuditQuery) -> ApiResult<AuditPage> {
    let limit = query.limit.map_or(50, |l| l.0);
    let after = query.cursor.map(|c| format!("{:019}", c.0));
    let objects = state
        .store
        .objects_after(ObjectKind::Audit, trail, after.as_deref(), limit)
        .await?;
    let next_cursor = (objects.len() == limit)
        .then(|| {
            objects
                .last()
                .and_then(|o| o.name.parse::<u64>().ok())
                .map(|n| n.to_string())
        })
        .flatten();
    let entries = objects
        .into_iter()
        .map(|StoredObject { value, name, .. }| {
            serde_json::from_value(value).map_err(|e| ApiError::internal(format!("audit entry {name}: {e}")))
        })
        .collect::<ApiResult<_>>()?;
    Ok(AuditPage { entries, next_cursor })
}

/// The tenant's audit trail, newest first: every mutating request made
/// with its keys.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "A page of the trail", body = AuditPage))
)]
pub async fn tenant_audit(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    page(&state, &tenant.id, query).await.map(Json)
}

/// The server's audit trail, newest first: every mutating request made
/// with the admin token.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "admin",
    params(AuditQuery),
    responses((status = 200, description = "A page of the trail", body = AuditPage))
)]
pub async fn server_audit(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    page(&state, SERVER, query).await.map(Json)
}
