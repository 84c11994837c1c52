//! Making a run's record before it starts: the workflow's newest
//! definition, the input checked against its schema, and the exact module
//! of each step pinned. Shared by starts over the API and the child runs
//! of `workflow` steps, which the scheduler starts itself.

use std::sync::Arc;

use super::{EngineError, StartRun, Workflows};
use crate::digest::Digest;
use crate::model::{Millis, ModuleRecord, RunId, RunRecord, RunStatus};
use crate::spec::{SpecErrors, TaskRef, Workflow};
use crate::store::Store;

/// The record of a run `request` asks for, at `now`, and its workflow.
pub(crate) async fn prepare(
    store: &dyn Store,
    workflows: &Workflows,
    now: Millis,
    request: &StartRun,
) -> Result<(RunRecord, Arc<Workflow>), EngineError> {
    let digest = store
        .workflow_named(&request.tenant, &request.workflow)
        .await?
        .ok_or_else(|| EngineError::UnknownWorkflow(request.workflow.clone()))?;
    let workflow = workflows.load(store, &request.tenant, &digest).await?;
    workflow
        .check_input(&request.input)
        .map_err(|problems| EngineError::InvalidInput(SpecErrors(problems)))?;
    let modules = resolve_modules(store, &request.tenant, &workflow).await?;
    let record = RunRecord {
        id: RunId(0),
        tenant: request.tenant.clone(),
        workflow: workflow.name.clone(),
        workflow_digest: digest,
        modules,
        input: request.input.clone(),
        priority: request.priority,
        status: RunStatus::Running,
        output: None,
        error: None,
        created_at: now,
        updated_at: now,
        caps: request.caps,
        signals: Vec::new(),
        signal_ids: Vec::new(),
        signals_received: 0,
        paused: false,
        parent: request.parent.clone(),
    };
    Ok((record, workflow))
}

/// The exact module each step of `workflow` runs for `tenant` now.
pub(crate) async fn resolve_modules(
    store: &dyn Store,
    tenant: &str,
    workflow: &Workflow,
) -> Result<Vec<Digest>, EngineError> {
    let mut owned = None;
    let mut modules = Vec::with_capacity(workflow.steps.len());
    for step in &workflow.steps {
        let Some(task) = step.task() else {
            modules.push(Digest::NONE);
            continue;
        };
        let digest = match task {
            // Only a digest the tenant uploaded: bytes are shared by
            // content, so another tenant's digest must look missing.
            TaskRef::Digest(d) => {
                let owned = match &mut owned {
                    Some(owned) => owned,
                    None => owned.insert(store.module_versions(tenant).await?),
                };
                owned.iter().any(|m: &ModuleRecord| m.digest == *d).then_some(*d)
            }
            TaskRef::Name { name, version: None } => store.module_named(tenant, name).await?,
            TaskRef::Name {
                name,
                version: Some(version),
            } => store.module_version(tenant, name, version).await?.map(|m| m.digest),
        };
        modules.push(digest.ok_or_else(|| EngineError::UnknownModule {
            step: step.id.clone(),
            task: task.to_string(),
        })?);
    }
    Ok(modules)
}
