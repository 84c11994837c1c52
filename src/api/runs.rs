//! `/v1/runs` and `/v1/workflows/{name}/runs`: start (idempotently), list
//! page by page, inspect, cancel, retry from the failed steps.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::db::RunFilter;
use crate::engine::StartRun;
use crate::model::{AttemptCaps, Failure, RunId, RunRecord, RunStatus};
use crate::tenant::check_name;

/// The body of a start.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The run's input (default `{}`), checked against the workflow's
    /// `input_schema`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    input: Value,
    /// Higher runs are scheduled first (default 0).
    #[serde(default)]
    priority: i32,
}

/// The query of a start.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// Wait up to this long (e.g. `30s`, at most `5m`) for the run to end,
    /// and answer with its end and output; a run still going then is
    /// answered `running`.
    wait: Option<String>,
}

/// The longest a start may wait for its run.
const MAX_START_WAIT: Duration = Duration::from_secs(300);

/// A run just started, with its output when the start waited for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StartedRun {
    /// The run.
    #[serde(flatten)]
    summary: RunSummary,
    /// Its output, when the start waited and the run succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    output: Option<Value>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A run without its steps.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// Its id.
    pub id: u64,
    /// The workflow's name.
    pub workflow: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Its priority.
    pub priority: i32,
    /// When it started (ms since the epoch).
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// Why it failed.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Failure>,
}

impl From<&RunRecord> for RunSummary {
    fn from(run: &RunRecord) -> RunSummary {
        RunSummary {
            id: run.id.0,
            workflow: run.workflow.clone(),
            status: run.status.to_string(),
            priority: run.priority,
            created_at: run.created_at,
            updated_at: run.updated_at,
            error: run.error.clone(),
        }
    }
}

/// A page of runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunPage {
    /// Newest first.
    runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A run in full: its steps, each with its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run.
    #[serde(flatten)]
    summary: RunSummary,
    /// Its input.
    #[schema(value_type = Object)]
    input: Value,
    /// Its output, once succeeded.
    #[schema(value_type = Option<Object>)]
    output: Option<Value>,
    /// `sha256:` of the definition it runs.
    workflow_digest: String,
    /// Every step, and every item of a `for_each` step.
    steps: Vec<StepView>,
}

/// One step (or one item of a `for_each` step).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepView {
    /// The step's id.
    step: String,
    /// The item's index, for an item of a `for_each` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<u32>,
    /// Its state.
    status: String,
    /// Its output, once succeeded.
    #[schema(value_type = Option<Object>)]
    output: Option<Value>,
    /// Why it failed.
    #[schema(value_type = Option<Object>)]
    error: Option<Failure>,
    /// Its finished attempts, in order.
    attempts: Vec<AttemptView>,
}

/// One finished attempt (its logs are at `.../steps/{step}/logs`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1, 2, ...
    attempt: u32,
    /// `ok`, `guest_error`, `trap`, `out_of_fuel`, `memory_limit`, `timeout`
    /// or `invalid_output`.
    outcome: String,
    /// What went wrong, unless ok.
    #[schema(value_type = Option<Object>)]
    error: Option<Failure>,
    /// Fuel burned.
    fuel_used: u64,
    /// When it started (ms since the epoch).
    started_at: u64,
    /// How long it ran, in microseconds.
    duration_us: u64,
}

/// Start a run of a workflow's newest definition.
///
/// With an `Idempotency-Key` header, a key already used returns the run it
/// started (200) instead of starting another (201). With `?wait=30s` the
/// answer comes when the run has ended (or the wait is over), with its
/// output: a synchronous call of the workflow.
#[utoipa::path(
    post,
    path = "/v1/workflows/{name}/runs",
    tag = "runs",
    params(
        ("name" = String, Path, description = "The workflow's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key returns the same run"),
        StartQuery,
    ),
    request_body(content = StartBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Started", body = StartedRun),
        (status = 200, description = "Started before with this Idempotency-Key", body = StartedRun),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 422, description = "The input fails the input_schema", body = ErrorBody),
        (status = 429, description = "Over a quota", body = ErrorBody),
    )
)]
pub async fn start_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(name): Path<String>,
    query: Result<Query<StartQuery>, QueryRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, HeaderMap, Json<StartedRun>)> {
    check_name("workflow", &name).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let wait = query.wait.as_deref().map(start_wait).transpose()?;
    let idempotency_key = idempotency_key(&headers)?;
    let start: StartBody = body::json(&headers, bytes)?;
    if state.db.workflow_named(&tenant.id, &name)?.is_none() {
        return Err(ApiError::not_found(format!("workflow {name:?}")));
    }
    if let Err(wait_ms) = state
        .limiter
        .take(&tenant.id, tenant.quotas.start_rate, state.engine.now())
    {
        let mut error = ApiError::quota(format!(
            "the tenant may start {} runs per second",
            tenant.quotas.start_rate
        ));
        error.retry_after = Some(wait_ms.div_ceil(1000).max(1));
        return Err(error);
    }
    let (id, created) = state
        .engine
        .start_run(StartRun {
            tenant: tenant.id.clone(),
            workflow: name,
            input: start.input,
            priority: start.priority,
            idempotency_key,
            caps: Some(AttemptCaps {
                fuel: tenant.quotas.max_fuel,
                memory: tenant.quotas.max_memory,
            }),
            max_active: Some(tenant.quotas.max_concurrent_runs),
        })
        .await?;
    if let Some(wait) = wait {
        // Over the wait, the run is answered as it is now.
        let _ = tokio::time::timeout(wait, state.engine.wait(id)).await;
    }
    let run = owned_run(&state, &tenant.id, id)?;
    let mut response_headers = HeaderMap::new();
    if let Ok(location) = format!("/v1/runs/{id}").parse() {
        response_headers.insert(header::LOCATION, location);
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let started = StartedRun {
        summary: RunSummary::from(&run),
        output: wait.and(run.output),
    };
    Ok((status, response_headers, Json(started)))
}

fn start_wait(text: &str) -> ApiResult<Duration> {
    let wait = humantime::parse_duration(text)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("wait {text:?} is not a duration: {e}")))?;
    if wait > MAX_START_WAIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("wait {text:?} is over the limit of 5m; follow the run's events instead"),
        ));
    }
    Ok(wait)
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// Query of a run listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs in this state: running, succeeded, failed, cancelled.
    status: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List the tenant's runs, newest first.
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    params(ListQuery),
    responses((status = 200, body = RunPage), (status = 400, body = ErrorBody))
)]
pub async fn list_runs(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let status = query
        .status
        .map(|s| {
            serde_json::from_value::<RunStatus>(Value::String(s.clone())).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("status {s:?} is not one of running, succeeded, failed, cancelled"),
                )
            })
        })
        .transpose()?;
    let before = query
        .cursor
        .map(|c| {
            c.parse::<u64>().map(RunId).map_err(|_| {
                ApiError::bad_request("invalid_query", format!("cursor {c:?} is not one this server gave"))
            })
        })
        .transpose()?;
    let filter = RunFilter {
        workflow: query.workflow,
        status,
        before,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    let (runs, next) = state.db.tenant_runs(&tenant.id, &filter)?;
    Ok(Json(RunPage {
        runs: runs.iter().map(RunSummary::from).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// A run with every step and attempt.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    params(("id" = u64, Path, description = "The run's id")),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody))
)]
pub async fn get_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    let run = owned_run(&state, &tenant.id, parse_id(&id)?)?;
    let workflow = state.engine.workflow(&run.workflow_digest)?;
    let step_id = |index: u32| {
        workflow
            .steps
            .get(index as usize)
            .map_or_else(|| index.to_string(), |s| s.id.clone())
    };
    let attempts = state.db.attempts(run.id)?;
    let steps = state
        .db
        .units(run.id)?
        .into_iter()
        .map(|(key, unit)| StepView {
            step: step_id(key.step),
            item: key.item,
            status: unit.status.to_string(),
            output: unit.output,
            error: unit.error,
            attempts: attempts
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, a)| AttemptView {
                    attempt: a.attempt,
                    outcome: a.outcome.kind().to_string(),
                    error: (!matches!(a.outcome, crate::sandbox::Outcome::Ok { .. }))
                        .then(|| Failure::from_outcome(&a.outcome)),
                    fuel_used: a.fuel_used,
                    started_at: a.started_at,
                    duration_us: a.duration_us,
                })
                .collect(),
        })
        .collect();
    Ok(Json(RunView {
        summary: RunSummary::from(&run),
        input: run.input,
        output: run.output,
        workflow_digest: run.workflow_digest.to_string(),
        steps,
    }))
}

/// Cancel a running run: running attempts are stopped, nothing else
/// starts, and it ends `cancelled`.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    tag = "runs",
    params(("id" = u64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Cancelled", body = RunSummary),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
    )
)]
pub async fn cancel_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RunSummary>> {
    let run = owned_run(&state, &tenant.id, parse_id(&id)?)?;
    state.engine.cancel(run.id).await?;
    Ok(Json(RunSummary::from(&owned_run(&state, &tenant.id, run.id)?)))
}

/// Retry a failed or cancelled run from its failed steps; steps that
/// succeeded keep their outputs and do not run again.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/retry",
    tag = "runs",
    params(("id" = u64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Running again", body = RunSummary),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not failed or cancelled, or compensated", body = ErrorBody),
    )
)]
pub async fn retry_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RunSummary>> {
    let run = owned_run(&state, &tenant.id, parse_id(&id)?)?;
    state.engine.retry(run.id).await?;
    Ok(Json(RunSummary::from(&owned_run(&state, &tenant.id, run.id)?)))
}

/// A run id from a path: anything else is simply not found.
pub(super) fn parse_id(text: &str) -> ApiResult<RunId> {
    text.parse::<u64>()
        .map(RunId)
        .map_err(|_| ApiError::not_found(format!("run {text:?}")))
}

/// The run, if `tenant` owns it; another tenant's run is not found.
pub(super) fn owned_run(state: &ApiState, tenant: &str, id: RunId) -> ApiResult<RunRecord> {
    match state.db.run(id)? {
        Some(run) if run.tenant == tenant => Ok(run),
        _ => Err(ApiError::not_found(format!("run {id}"))),
    }
}
