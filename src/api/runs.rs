//! `/v1/runs` and `/v1/workflows/{name}/runs`: start (idempotently), list
//! page by page, inspect, cancel, retry from the failed steps.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{self, Cursor, EpochMs, IdempotencyKey, Limit, Name, Path, Query, Wait, check_name};
use super::workflows::WorkflowPath;
use super::{ApiState, location};
use crate::model::{Failure, ParentLink, RunId, RunRecord, RunStatus, UnitStatus};
use crate::sandbox::Outcome;
use crate::sandbox::http::HttpCall;
use crate::store::RunFilter;

/// The body of a start.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The run's input (default `{}`), checked against the workflow's
    /// `input_schema`.
    #[serde(default)]
    input: Map<String, Value>,
    /// Higher runs are scheduled first (default 0).
    #[serde(default, deserialize_with = "body::integer")]
    priority: i32,
}

/// The query of a start.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// Wait up to this long (e.g. `30s`; longer than `5m` waits `5m`) for
    /// the run to end, and answer with its end and output; a run still
    /// going then is answered `running`.
    #[param(inline)]
    wait: Option<Wait>,
}

/// The headers of a start, as documented; `params::idempotency_key` reads
/// and checks them.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct StartHeaders {
    /// A start with a key the tenant used before returns the run that key
    /// started (200) instead of starting another (201).
    #[param(rename = "Idempotency-Key", inline, value_type = IdempotencyKey, required = false)]
    _idempotency_key: Option<String>,
}

/// A run just started, with its output when the start waited for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StartedRun {
    /// The run.
    #[serde(flatten)]
    summary: RunSummary,
    /// Its output, when the start waited and the run succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    output: Option<Value>,
}

/// A run without its steps.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// Its id.
    pub id: u64,
    /// The workflow's name.
    pub workflow: String,
    /// How it stands.
    pub status: RunStatus,
    /// Its priority.
    pub priority: i32,
    /// When it started (ms since the epoch).
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// Why it failed, once failed.
    pub error: Option<Failure>,
    /// Paused: no new attempt starts until it is resumed.
    pub paused: bool,
    /// The run and step that started it, for a sub-workflow's run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub parent: Option<ParentLink>,
}

impl From<&RunRecord> for RunSummary {
    fn from(run: &RunRecord) -> RunSummary {
        RunSummary {
            id: run.id.0,
            workflow: run.workflow.clone(),
            status: run.status,
            priority: run.priority,
            created_at: run.created_at,
            updated_at: run.updated_at,
            error: run.error.clone(),
            paused: run.paused,
            parent: run.parent.clone(),
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
    #[schema(required = false)]
    next_cursor: Option<String>,
}

/// A run in full: its steps, each with its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run.
    #[serde(flatten)]
    summary: RunSummary,
    /// Its input.
    input: Value,
    /// Its output (any JSON), once succeeded; `null` before.
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
    #[schema(required = false)]
    item: Option<u32>,
    /// What the step does, as the document says it.
    #[schema(schema_with = crate::spec::StepKind::name_schema)]
    kind: &'static str,
    /// The steps it needs, by id (its edges in the workflow's graph).
    needs: Vec<String>,
    /// The steps it compensates, for a compensation step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    compensates: Vec<String>,
    /// Its state.
    status: UnitStatus,
    /// Its output (any JSON), once succeeded; `null` before.
    output: Option<Value>,
    /// Why it failed.
    error: Option<Failure>,
    /// When it wakes (ms since the epoch): while `retrying`, its next
    /// attempt; while `waiting`, the end of its sleep or its signal's
    /// timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<u64>)]
    due: Option<u64>,
    /// The child run a `workflow` step started (its latest attempt's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<u64>)]
    child: Option<RunId>,
    /// Its finished attempts, in order.
    attempts: Vec<AttemptView>,
}

/// One finished attempt (its logs are at `.../steps/{step}/logs`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1, 2, ...
    attempt: u32,
    /// How it ended.
    #[schema(schema_with = Outcome::kind_schema)]
    outcome: &'static str,
    /// What went wrong, unless ok.
    error: Option<Failure>,
    /// Fuel burned.
    fuel_used: u64,
    /// When it started (ms since the epoch).
    started_at: u64,
    /// How long it ran, in microseconds.
    duration_us: u64,
    /// Its outbound HTTP requests, refused ones included (absent when it
    /// made none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http: Vec<HttpCall>,
    /// The node that ran it (its `--node-id`) when the store is
    /// PostgreSQL, where every server is a node of a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
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
    params(WorkflowPath, StartHeaders, StartQuery),
    request_body(content = StartBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Started", body = StartedRun,
            headers(("Location" = String, description = "The run: `/v1/runs/{id}`"))),
        (status = 200, description = "Started before with this Idempotency-Key", body = StartedRun,
            headers(("Location" = String, description = "The run: `/v1/runs/{id}`"))),
        (status = 404, description = "No such workflow (`not_found`)", body = ErrorBody),
        (status = 422, description = "The input fails the workflow's input_schema (`invalid_input`, every \
            problem in `details`), or a module it runs is gone (`unknown_module`)", body = ErrorBody),
        (status = 429, description = "Over the start rate or the concurrent runs (`quota_exceeded`)",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until a start can succeed (start rate only)"))),
    )
)]
pub async fn start_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(WorkflowPath { name }): Path<WorkflowPath>,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, HeaderMap, Json<StartedRun>)> {
    check_name("workflow", "name", &name)?;
    let idempotency_key = params::idempotency_key(&headers)?;
    let start: StartBody = body::json(&headers, bytes)?;
    if state.store.workflow_named(&tenant.id, &name).await?.is_none() {
        return Err(ApiError::not_found(format!("workflow {name:?}")));
    }
    take_start(&state, &tenant)?;
    let mut request = crate::triggers::start_request(&tenant, &name, start.input, idempotency_key);
    request.priority = start.priority;
    let (id, created) = state.engine.start_run(request).await?;
    let ended = match query.wait {
        // Over the wait, the run is answered as it is now.
        Some(Wait(wait)) => tokio::time::timeout(wait, state.engine.wait(id))
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let run = match ended {
        Some(run) if run.tenant == tenant.id => run,
        _ => owned_run(&state, &tenant.id, id).await?,
    };
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let started = StartedRun {
        summary: RunSummary::from(&run),
        output: query.wait.and(run.output),
    };
    Ok((status, location(format!("/v1/runs/{id}")), Json(started)))
}

/// Query of a run listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only runs of this workflow.
    #[param(inline, value_type = Option<Name>)]
    workflow: Option<String>,
    /// Only runs in this state.
    #[param(inline)]
    status: Option<RunStatus>,
    /// At most this many (default 50).
    #[param(inline)]
    limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    #[param(inline)]
    cursor: Option<Cursor>,
    /// Only runs created at or after this time (ms since the epoch).
    #[param(inline)]
    created_from: Option<EpochMs>,
    /// Only runs created before this time (ms since the epoch).
    #[param(inline)]
    created_until: Option<EpochMs>,
}

/// List the tenant's runs, newest first.
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    params(ListQuery),
    responses((status = 200, description = "A page of runs", body = RunPage))
)]
pub async fn list_runs(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<RunPage>> {
    if let Some(workflow) = &query.workflow {
        check_name("workflow", "workflow", workflow)?;
    }
    let filter = RunFilter {
        workflow: query.workflow,
        status: query.status,
        before: query.cursor.map(|Cursor(id)| RunId(id)),
        limit: query.limit.map_or(50, |Limit(limit)| limit),
        created_from: query.created_from.map(|EpochMs(t)| t),
        created_until: query.created_until.map(|EpochMs(t)| t),
    };
    let (runs, next) = state.store.tenant_runs(&tenant.id, &filter).await?;
    Ok(Json(RunPage {
        runs: runs.iter().map(RunSummary::from).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// The run a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunPath {
    /// The run's id.
    pub id: u64,
}

/// A run with every step and attempt.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
    )
)]
pub async fn get_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<RunView>> {
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    let workflow = state.engine.workflow(&run.tenant, &run.workflow_digest).await?;
    let step_id = |index: usize| {
        workflow
            .steps
            .get(index)
            .map_or_else(|| index.to_string(), |s| s.id.clone())
    };
    let step_ids = |indices: &[usize]| indices.iter().map(|&i| step_id(i)).collect::<Vec<_>>();
    let attempts = state.store.attempts(&run.tenant, run.id).await?;
    let steps = state
        .store
        .units(&run.tenant, run.id)
        .await?
        .into_iter()
        .map(|(key, unit)| {
            let definition = workflow.steps.get(key.step as usize);
            StepView {
                step: step_id(key.step as usize),
                item: key.item,
                kind: definition.map_or("task", |s| s.kind.name()),
                needs: definition.map(|s| step_ids(&s.needs)).unwrap_or_default(),
                compensates: definition.map(|s| step_ids(&s.compensates)).unwrap_or_default(),
                status: unit.status,
                output: unit.output,
                error: unit.error,
                due: unit.due,
                child: unit.child,
                attempts: attempts
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, a)| AttemptView {
                        attempt: a.attempt,
                        outcome: a.outcome.kind(),
                        error: (!a.outcome.is_ok()).then(|| Failure::from_outcome(&a.outcome)),
                        fuel_used: a.fuel_used,
                        started_at: a.started_at,
                        duration_us: a.duration_us,
                        http: a.http.clone(),
                        node: a.node.clone(),
                    })
                    .collect(),
            }
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
    params(RunPath),
    responses(
        (status = 200, description = "Cancelled", body = RunSummary),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
        (status = 409, description = "The run has ended (`not_running`)", body = ErrorBody),
    )
)]
pub async fn cancel_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<RunSummary>> {
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    state.engine.cancel(run.id).await?;
    Ok(Json(RunSummary::from(&owned_run(&state, &tenant.id, run.id).await?)))
}

/// Pause a running run: no new attempt starts (its ready steps wait, and
/// so do steps that become ready); running attempts finish. Sleeps and
/// signal waits go on. Pausing a paused run changes nothing.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/pause",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 200, description = "Paused", body = RunSummary),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
        (status = 409, description = "The run has ended (`not_running`)", body = ErrorBody),
    )
)]
pub async fn pause_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<RunSummary>> {
    set_paused(&state, &tenant.id, RunId(id), true).await
}

/// Resume a paused run: its held steps start. Resuming a run that is not
/// paused changes nothing.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/resume",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 200, description = "Running", body = RunSummary),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
        (status = 409, description = "The run has ended (`not_running`)", body = ErrorBody),
    )
)]
pub async fn resume_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<RunSummary>> {
    set_paused(&state, &tenant.id, RunId(id), false).await
}

async fn set_paused(state: &ApiState, tenant: &str, id: RunId, paused: bool) -> ApiResult<Json<RunSummary>> {
    let run = owned_run(state, tenant, id).await?;
    state.engine.set_paused(run.id, paused).await?;
    Ok(Json(RunSummary::from(&owned_run(state, tenant, run.id).await?)))
}

/// Retry a failed or cancelled run from its failed steps; steps that
/// succeeded keep their outputs and do not run again.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/retry",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 200, description = "Running again", body = RunSummary),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not failed or cancelled, or a compensation ran (`cannot_retry`)",
            body = ErrorBody),
    )
)]
pub async fn retry_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<RunSummary>> {
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    state.engine.retry(run.id).await?;
    Ok(Json(RunSummary::from(&owned_run(&state, &tenant.id, run.id).await?)))
}

/// The body of a reset.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The step to run again from: one that succeeded.
    from: String,
}

/// Reset an ended run: run it again from a step that succeeded.
///
/// That step and everything downstream of it run again, as do steps that
/// failed or were cancelled; the others keep their results, so the re-run
/// reads the recorded outputs of everything upstream. The run keeps its
/// pinned workflow and modules; its history keeps the earlier attempts,
/// and a `run_reset` event marks the reset.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/reset",
    tag = "runs",
    params(RunPath),
    request_body(content = ResetBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Running again", body = RunSummary),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
        (status = 409, description = "The run is still running, has no such step, or the step did not \
            succeed (`cannot_reset`)", body = ErrorBody),
    )
)]
pub async fn reset_run(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RunSummary>> {
    let ResetBody { from } = body::json(&headers, bytes)?;
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    state.engine.reset(run.id, &from).await?;
    Ok(Json(RunSummary::from(&owned_run(&state, &tenant.id, run.id).await?)))
}

/// The run, if `tenant` owns it; another tenant's run is not found.
/// Takes one start from the tenant's start-rate bucket, or answers 429
/// with how long to wait.
pub(super) fn take_start(state: &ApiState, tenant: &crate::tenant::TenantRecord) -> ApiResult<()> {
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
    Ok(())
}

pub(super) async fn owned_run(state: &ApiState, tenant: &str, id: RunId) -> ApiResult<RunRecord> {
    match state.store.run(id).await? {
        Some(run) if run.tenant == tenant => Ok(run),
        _ => Err(ApiError::not_found(format!("run {id}"))),
    }
}
