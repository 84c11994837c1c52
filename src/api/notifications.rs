//! `GET /v1/runs/{id}/notifications`: the messages a run's workflow asked
//! to send (`notify:`), each with every try to deliver it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::Path;
use super::runs::{RunPath, owned_run};
use crate::model::RunId;
use crate::notify::Delivery;
use crate::store::{ObjectKind, run_prefix};

/// The most deliveries listed for one run.
const MAX_LISTED: usize = 1000;

/// A run's notifications.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    /// Each message, in the order of the events they tell of.
    pub notifications: Vec<Delivery>,
}

/// A run's notifications and every try to deliver each.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/notifications",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 200, description = "Every notification of the run, pending, delivered or failed",
            body = NotificationList),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
    )
)]
pub async fn list_notifications(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<NotificationList>> {
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    let objects = state
        .store
        .objects(ObjectKind::Delivery, Some(&tenant.id), &run_prefix(run.id), MAX_LISTED)
        .await?;
    let mut notifications = Vec::with_capacity(objects.len());
    for object in objects {
        let delivery: Delivery = serde_json::from_value(object.value)
            .map_err(|e| ApiError::internal(format!("delivery {} does not decode: {e}", object.name)))?;
        notifications.push(delivery);
    }
    // Names sort as text; events go by number.
    notifications.sort_by_key(|d| {
        let mut parts = d.id.split('/').skip(1).map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
        (parts.next(), parts.next())
    });
    Ok(Json(NotificationList { notifications }))
}
