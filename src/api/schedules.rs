//! `/v1/schedules`: a tenant's schedules, each starting runs of a
//! workflow at the instants of a cron expression in a time zone
//! (`crate::triggers`). Every node fires them; each instant starts one
//! run.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use super::params::{Name, Path, check_name};
use crate::engine::EngineError;
use crate::spec::SpecErrors;
use crate::store::{Expect, ObjectKind, StoredObject};
use crate::triggers::schedule::{CatchUp, Overlap, ScheduleSpec, ScheduleState, StoredSchedule, Timing};

/// How many upcoming instants a schedule shows.
const UPCOMING: usize = 5;
/// The most schedules a tenant lists.
const MAX_LISTED: usize = 1000;

/// The schedule a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SchedulePath {
    /// The schedule's name.
    #[param(inline, value_type = Name)]
    pub name: String,
}

/// A schedule: its definition, what the scheduler keeps of it, and when
/// it fires next.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// When it fires: the cron expression.
    pub cron: String,
    /// The time zone the expression is read in.
    pub timezone: String,
    /// The workflow each fire starts a run of.
    pub workflow: String,
    /// The runs' input.
    pub input: serde_json::Map<String, Value>,
    /// What a fire does while the last run is unfinished.
    pub overlap: Overlap,
    /// What happens to missed instants.
    pub catch_up: CatchUp,
    /// How late an instant may be seen and still fire as usual.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub grace: Option<String>,
    /// Whether it is paused.
    pub paused: bool,
    /// Fires, runs and errors so far.
    pub state: ScheduleState,
    /// Its next instants, RFC 3339 in its time zone (none while paused).
    pub next_fires: Vec<String>,
}

/// A tenant's schedules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleList {
    /// Each schedule, by name.
    pub schedules: Vec<ScheduleView>,
}

fn view(name: String, stored: StoredSchedule, now: crate::model::Millis) -> ScheduleView {
    let next_fires = match (&stored.spec.timing(), stored.spec.paused) {
        (Ok(timing), false) => {
            let from = stored.state.next_fire.map_or(now, |next| next.saturating_sub(1));
            timing.upcoming(from, UPCOMING)
        }
        _ => Vec::new(),
    };
    let spec = stored.spec;
    ScheduleView {
        name,
        cron: spec.cron,
        timezone: spec.timezone,
        workflow: spec.workflow,
        input: spec.input,
        overlap: spec.overlap,
        catch_up: spec.catch_up,
        grace: spec.grace,
        paused: spec.paused,
        state: stored.state,
        next_fires,
    }
}

fn decode(object: &StoredObject) -> ApiResult<StoredSchedule> {
    serde_json::from_value(object.value.clone())
        .map_err(|e| ApiError::internal(format!("schedule {:?} does not decode: {e}", object.name)))
}

async fn load(state: &ApiState, tenant: &str, name: &str) -> ApiResult<(StoredSchedule, u64)> {
    let object = state
        .store
        .object(ObjectKind::Schedule, tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schedule {name:?}")))?;
    Ok((decode(&object)?, object.revision))
}

async fn store(state: &ApiState, tenant: &str, name: &str, stored: &StoredSchedule, expect: Expect) -> ApiResult<bool> {
    Ok(stored.put(&*state.store, tenant, name, expect).await?.is_some())
}

/// Checks a spec, its workflow and input included; its timing.
async fn check(state: &ApiState, tenant: &str, spec: &ScheduleSpec) -> ApiResult<Timing> {
    let timing = spec
        .timing()
        .map_err(|e| ApiError::invalid(ErrorCode::InvalidSchedule, e.field, e.to_string()))?;
    check_name("workflow", "workflow", &spec.workflow)?;
    let Some(digest) = state.store.workflow_named(tenant, &spec.workflow).await? else {
        return Err(ApiError::invalid(
            ErrorCode::InvalidSchedule,
            "workflow",
            format!("workflow: no workflow named {:?}; push it first", spec.workflow),
        ));
    };
    let workflow = state.engine.workflow(tenant, &digest).await?;
    workflow
        .check_input(&Value::Object(spec.input.clone()))
        .map_err(|problems| EngineError::InvalidInput(SpecErrors(problems)))?;
    Ok(timing)
}

/// Set a schedule.
///
/// Creates it, or replaces its definition: its counters and last run
/// stay, and its next instant is counted from now. Each instant of the
/// cron expression in the time zone starts one run of the workflow with
/// the input, with the idempotency key `weft:schedule:NAME:INSTANT_MS`,
/// however many nodes serve the store.
#[utoipa::path(
    put,
    path = "/v1/schedules/{name}",
    tag = "schedules",
    params(SchedulePath),
    request_body(content = ScheduleSpec, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ScheduleView),
        (status = 200, description = "Replaced", body = ScheduleView),
        (status = 422, description = "The cron expression, time zone, grace or workflow does not hold \
            (`invalid_schedule`), or the input fails the workflow's input_schema (`invalid_input`)",
            body = ErrorBody),
    )
)]
pub async fn put_schedule(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SchedulePath { name }): Path<SchedulePath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    check_name("schedule", "name", &name)?;
    let spec: ScheduleSpec = body::json(&headers, bytes)?;
    let timing = check(&state, &tenant.id, &spec).await?;
    // Read, change, write with the revision read; a scheduler pass in
    // between moves the revision, and the change is made again on top.
    for _ in 0..8 {
        let now = state.engine.now();
        let found = state.store.object(ObjectKind::Schedule, &tenant.id, &name).await?;
        let (mut schedule_state, expect) = match &found {
            Some(object) => (decode(object)?.state, Expect::Revision(object.revision)),
            None => (
                ScheduleState {
                    created_at: now,
                    ..ScheduleState::default()
                },
                Expect::Absent,
            ),
        };
        schedule_state.updated_at = now;
        schedule_state.next_fire = timing.after(now);
        schedule_state.buffered = None;
        schedule_state.last_error = None;
        let stored = StoredSchedule {
            spec: spec.clone(),
            state: schedule_state,
        };
        if store(&state, &tenant.id, &name, &stored, expect).await? {
            let status = if found.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            return Ok((status, Json(view(name, stored, now))));
        }
    }
    Err(ApiError::new(
        ErrorCode::Unavailable,
        format!("schedule {name:?} kept changing while it was set; try again"),
    ))
}

/// List the tenant's schedules, with their next instants.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    tag = "schedules",
    responses((status = 200, description = "Every schedule, by name (at most 1,000)", body = ScheduleList))
)]
pub async fn list_schedules(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
) -> ApiResult<Json<ScheduleList>> {
    let now = state.engine.now();
    let objects = state
        .store
        .objects(ObjectKind::Schedule, Some(&tenant.id), "", MAX_LISTED)
        .await?;
    let mut schedules = Vec::with_capacity(objects.len());
    for object in objects {
        let stored = decode(&object)?;
        schedules.push(view(object.name, stored, now));
    }
    Ok(Json(ScheduleList { schedules }))
}

/// A schedule, with its next instants.
#[utoipa::path(
    get,
    path = "/v1/schedules/{name}",
    tag = "schedules",
    params(SchedulePath),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
    )
)]
pub async fn get_schedule(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SchedulePath { name }): Path<SchedulePath>,
) -> ApiResult<Json<ScheduleView>> {
    check_name("schedule", "name", &name)?;
    let (stored, _) = load(&state, &tenant.id, &name).await?;
    Ok(Json(view(name, stored, state.engine.now())))
}

/// Delete a schedule. Runs it started are not touched.
#[utoipa::path(
    delete,
    path = "/v1/schedules/{name}",
    tag = "schedules",
    params(SchedulePath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
    )
)]
pub async fn delete_schedule(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SchedulePath { name }): Path<SchedulePath>,
) -> ApiResult<StatusCode> {
    check_name("schedule", "name", &name)?;
    if state
        .store
        .delete_object(ObjectKind::Schedule, &tenant.id, &name, Expect::Any)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("schedule {name:?}")))
    }
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(
    post,
    path = "/v1/schedules/{name}/pause",
    tag = "schedules",
    params(SchedulePath),
    responses(
        (status = 200, description = "Paused (or paused already)", body = ScheduleView),
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
    )
)]
pub async fn pause_schedule(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SchedulePath { name }): Path<SchedulePath>,
) -> ApiResult<Json<ScheduleView>> {
    set_paused(&state, &tenant.id, name, true).await.map(Json)
}

/// Resume a paused schedule. Instants that passed while it was paused are
/// not fired: it goes on from its next instant after now.
#[utoipa::path(
    post,
    path = "/v1/schedules/{name}/resume",
    tag = "schedules",
    params(SchedulePath),
    responses(
        (status = 200, description = "Resumed (or not paused)", body = ScheduleView),
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
    )
)]
pub async fn resume_schedule(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(SchedulePath { name }): Path<SchedulePath>,
) -> ApiResult<Json<ScheduleView>> {
    set_paused(&state, &tenant.id, name, false).await.map(Json)
}

async fn set_paused(state: &ApiState, tenant: &str, name: String, paused: bool) -> ApiResult<ScheduleView> {
    check_name("schedule", "name", &name)?;
    for _ in 0..8 {
        let now = state.engine.now();
        let (mut stored, revision) = load(state, tenant, &name).await?;
        if stored.spec.paused == paused {
            return Ok(view(name, stored, now));
        }
        stored.spec.paused = paused;
        stored.state.updated_at = now;
        if !paused {
            stored.state.next_fire = stored.spec.timing().ok().and_then(|timing| timing.after(now));
        }
        if store(state, tenant, &name, &stored, Expect::Revision(revision)).await? {
            return Ok(view(name, stored, now));
        }
    }
    Err(ApiError::new(
        ErrorCode::Unavailable,
        format!("schedule {name:?} kept changing; try again"),
    ))
}
