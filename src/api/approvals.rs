//! Approval steps: `GET /v1/approvals` lists the tenant's pending ones,
//! `POST /v1/runs/{id}/approvals/{step}` decides one (docs/architecture.md,
//! "Approvals").

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::Path;
use super::runs::owned_run;
use crate::engine::{Decision, PendingApproval};
use crate::model::RunId;

/// The longest name or comment a decision may carry, in characters.
const MAX_TEXT: usize = 4096;

/// The tenant's pending approvals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalList {
    /// Every approval step waiting for a decision, oldest run first.
    pub approvals: Vec<PendingApproval>,
}

/// List the approval steps waiting for a decision, across the tenant's
/// running runs.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "runs",
    responses(
        (status = 200, description = "The pending approvals", body = ApprovalList),
    )
)]
pub async fn list_approvals(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
) -> ApiResult<Json<ApprovalList>> {
    let approvals = state.engine.pending_approvals(&tenant.id).await?;
    Ok(Json(ApprovalList { approvals }))
}

/// The approval step a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApprovalPath {
    /// The run's id.
    id: u64,
    /// The approval step's id, as in the workflow.
    step: String,
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The step succeeds, with the decision as its output.
    Approve,
    /// The step fails with code `rejected`.
    Reject,
}

/// A decision.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Approve or reject.
    decision: Verdict,
    /// Who decides: one of the step's approvers (or, once it escalated,
    /// of its escalation's targets), compared without regard to case.
    #[schema(min_length = 1, max_length = 4096)]
    by: String,
    /// Why; recorded with the decision.
    #[serde(default)]
    #[schema(max_length = 4096)]
    comment: Option<String>,
}

/// A decision, once durable.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Decided {
    /// The run.
    pub run: u64,
    /// The approval step.
    pub step: String,
    /// What was decided.
    pub decision: Verdict,
    /// Who decided.
    pub by: String,
}

/// Decide an approval step: approved, it succeeds with `{approved, by,
/// comment, at}` as its output; rejected, it fails with code `rejected`
/// (so `on_failure` and compensation apply). Who decided, when and why
/// are in the run's history (`approval_decided`).
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/approvals/{step}",
    tag = "runs",
    params(ApprovalPath),
    request_body(content = DecisionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Decided, and durable", body = Decided),
        (status = 403, description = "`by` is not one who may decide it now (`not_a_decider`)", body = ErrorBody),
        (status = 404, description = "No such run, or no approval step of that id in it (`not_found`)",
            body = ErrorBody),
        (status = 409, description = "The run has ended (`not_running`), or the step is not waiting for a \
            decision: not reached yet, or decided already (`approval_refused`)", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(ApprovalPath { id, step }): Path<ApprovalPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Decided>> {
    let DecisionBody { decision, by, comment } = body::json(&headers, bytes)?;
    if by.is_empty() || by.chars().count() > MAX_TEXT {
        return Err(ApiError::invalid(
            ErrorCode::InvalidBody,
            "by",
            format!("`by` must name who decides, in 1 to {MAX_TEXT} characters"),
        ));
    }
    if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_TEXT) {
        let message = format!("`comment` is longer than {MAX_TEXT} characters");
        return Err(ApiError::invalid(ErrorCode::InvalidBody, "comment", message));
    }
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    let approve = matches!(decision, Verdict::Approve);
    let request = Decision {
        step: step.clone(),
        approve,
        by: by.clone(),
        comment,
    };
    state.engine.decide(run.id, request).await?;
    Ok(Json(Decided {
        run: id,
        step,
        decision,
        by,
    }))
}
