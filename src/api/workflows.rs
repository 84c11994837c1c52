//! `/v1/workflows`: push a definition (YAML or JSON), list, get with its
//! versions.

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
use super::params::{Name, Path, check_name};
use crate::engine::EngineError;
use crate::model::WorkflowVersion;
use crate::spec::SpecConfig;
use crate::tenant::Quotas;

/// The workflow a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkflowPath {
    /// The workflow's name, as in its document.
    #[param(inline, value_type = Name)]
    pub name: String,
}

const DOCUMENT_TYPES: &[&str] = &[
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "application/json",
];

/// A workflow and its versions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    /// Its name.
    name: String,
    /// The newest version, which new runs use.
    latest: WorkflowVersion,
    /// Every version, oldest first.
    versions: Vec<WorkflowVersion>,
    /// The newest version's document.
    source: String,
    /// The newest version's steps in the document's order: its graph.
    steps: Vec<GraphStep>,
}

/// A step as the workflow's graph shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GraphStep {
    /// Its id.
    id: String,
    /// What it does, as the document says it.
    #[schema(schema_with = crate::spec::StepKind::name_schema)]
    kind: &'static str,
    /// The steps it needs, by id.
    needs: Vec<String>,
    /// The steps it compensates, for a compensation step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    compensates: Vec<String>,
    /// Whether it runs once per item of a list.
    for_each: bool,
}

/// The tenant's workflows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    /// Each with its newest version.
    workflows: Vec<WorkflowSummary>,
}

/// A workflow's name and newest version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    /// Its name.
    name: String,
    /// The newest version.
    latest: WorkflowVersion,
}

/// What a tenant's documents may ask for: the server's limits, lowered to
/// the tenant's quota.
fn spec_config(quotas: &Quotas) -> SpecConfig {
    let mut config = SpecConfig::default();
    config.max_limits.fuel = config.max_limits.fuel.min(quotas.max_fuel);
    config.max_limits.memory = config.max_limits.memory.min(quotas.max_memory);
    config.default_limits.fuel = config.default_limits.fuel.min(quotas.max_fuel);
    config.default_limits.memory = config.default_limits.memory.min(quotas.max_memory);
    let http = &mut config.http;
    // Parsed when the quotas were set; a list that no longer parses allows
    // nothing.
    http.allow = Some(crate::sandbox::http::AllowList::parse(&quotas.http_allow).unwrap_or_default());
    http.max.requests = http.max.requests.min(quotas.max_http_requests);
    http.max.sent = http.max.sent.min(quotas.max_http_sent);
    http.max.received = http.max.received.min(quotas.max_http_received);
    config
}

/// Push a workflow definition.
///
/// The document is checked in full (every problem is reported, with its
/// line and column), its `name` must match the path, and every module its
/// steps name must be uploaded. Pushing the same text again is a no-op;
/// other text becomes the next version.
#[utoipa::path(
    put,
    path = "/v1/workflows/{name}",
    tag = "workflows",
    params(WorkflowPath),
    request_body(
        description = "The workflow document (docs/workflow-format.md), as YAML or as JSON",
        content(
            (String = "application/yaml"),
            (String = "application/x-yaml"),
            (String = "text/yaml"),
            (String = "text/x-yaml"),
            (Object = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "Stored", body = WorkflowView),
        (status = 422, description = "An invalid document (`invalid_workflow`, every problem in `details`), \
            a `name` other than the path's (`name_mismatch`), or a module not uploaded (`unknown_module`)",
            body = ErrorBody),
    )
)]
pub async fn put_workflow(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(WorkflowPath { name }): Path<WorkflowPath>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<WorkflowView>> {
    check_name("workflow", "name", &name)?;
    if !body::content_type(&headers).is_some_and(|t| DOCUMENT_TYPES.contains(&t.as_str())) {
        return Err(body::unsupported(&headers, DOCUMENT_TYPES));
    }
    let bytes = body::bytes(bytes)?;
    let source = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::MalformedDocument, format!("the document is not UTF-8: {e}")))?;
    let engine = &state.engine;
    let workflow = engine.compile(source, &spec_config(&tenant.quotas))?;
    if workflow.name != name {
        return Err(EngineError::NameMismatch {
            path: name.clone(),
            document: workflow.name.clone(),
        }
        .into());
    }
    engine.resolve_modules(&tenant.id, &workflow).await?;
    engine.store_workflow(&tenant.id, source, workflow).await?;
    view(&state, &tenant.id, &name).await.map(Json)
}

/// List the tenant's workflows.
#[utoipa::path(
    get,
    path = "/v1/workflows",
    tag = "workflows",
    responses((status = 200, description = "Every workflow with its newest version", body = WorkflowList))
)]
pub async fn list_workflows(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
) -> ApiResult<Json<WorkflowList>> {
    let mut workflows = Vec::new();
    for name in state.store.workflow_names(&tenant.id).await? {
        if let Some(latest) = state.store.workflow_versions(&tenant.id, &name).await?.pop() {
            workflows.push(WorkflowSummary { name, latest });
        }
    }
    Ok(Json(WorkflowList { workflows }))
}

/// A workflow with its versions and newest document.
#[utoipa::path(
    get,
    path = "/v1/workflows/{name}",
    tag = "workflows",
    params(WorkflowPath),
    responses(
        (status = 200, description = "The workflow", body = WorkflowView),
        (status = 404, description = "No such workflow (`not_found`)", body = ErrorBody),
    )
)]
pub async fn get_workflow(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(WorkflowPath { name }): Path<WorkflowPath>,
) -> ApiResult<Json<WorkflowView>> {
    check_name("workflow", "name", &name)?;
    view(&state, &tenant.id, &name).await.map(Json)
}

async fn view(state: &ApiState, tenant: &str, name: &str) -> ApiResult<WorkflowView> {
    let versions = state.store.workflow_versions(tenant, name).await?;
    let latest = versions
        .last()
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("workflow {name:?}")))?;
    let source = state.store.workflow(tenant, &latest.digest).await?.unwrap_or_default();
    let plan = state.engine.workflow(tenant, &latest.digest).await?;
    let ids = |indices: &[usize]| indices.iter().map(|&i| plan.steps[i].id.clone()).collect();
    let steps = plan
        .steps
        .iter()
        .map(|step| GraphStep {
            id: step.id.clone(),
            kind: step.kind.name(),
            needs: ids(&step.needs),
            compensates: ids(&step.compensates),
            for_each: step.for_each.is_some(),
        })
        .collect();
    Ok(WorkflowView {
        name: name.to_string(),
        latest,
        versions,
        source,
        steps,
    })
}
