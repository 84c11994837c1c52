//! Reads of what tenants own: tenants and keys, module and workflow
//! versions, the runs of a tenant page by page, idempotency keys.

use redb::{ReadableDatabase, ReadableTable};

use super::tables::*;
use super::{Db, DbError, storage};
use crate::model::{ModuleRecord, RunId, RunRecord, RunStatus, WorkflowVersion};
use crate::tenant::{KeyRecord, TenantRecord};

/// Which of a tenant's runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// Only runs older than this one (the previous page's cursor).
    pub before: Option<RunId>,
    /// The most runs to return.
    pub limit: usize,
}

/// The most runs one page scans past a filter before it returns what it
/// has, so a selective filter over a long history cannot stall a request.
const MAX_SCAN: usize = 10_000;

impl Db {
    /// A tenant.
    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let tenants = txn.open_table(TENANTS).map_err(storage)?;
        tenants
            .get(id)
            .map_err(storage)?
            .map(|v| decode(v.value(), "tenant"))
            .transpose()
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let tenants = txn.open_table(TENANTS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in tenants.iter().map_err(storage)? {
            out.push(decode(entry.map_err(storage)?.1.value(), "tenant")?);
        }
        Ok(out)
    }

    /// An API key by its id.
    pub fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let keys = txn.open_table(API_KEYS).map_err(storage)?;
        keys.get(key_id)
            .map_err(storage)?
            .map(|v| decode(v.value(), "api key"))
            .transpose()
    }

    /// One version of a tenant's module.
    pub fn module_version(&self, tenant: &str, name: &str, version: &str) -> Result<Option<ModuleRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let versions = txn.open_table(MODULE_VERSIONS).map_err(storage)?;
        versions
            .get((tenant, name, version))
            .map_err(storage)?
            .map(|v| decode(v.value(), "module version"))
            .transpose()
    }

    /// Every module version a tenant stores, by name then version.
    pub fn module_versions(&self, tenant: &str) -> Result<Vec<ModuleRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let versions = txn.open_table(MODULE_VERSIONS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in versions.range((tenant, "", "")..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            if k.value().0 != tenant {
                break;
            }
            out.push(decode(v.value(), "module version")?);
        }
        Ok(out)
    }

    /// The versions of a tenant's workflow, oldest first.
    pub fn workflow_versions(&self, tenant: &str, name: &str) -> Result<Vec<WorkflowVersion>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let versions = txn.open_table(WORKFLOW_VERSIONS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in versions
            .range((tenant, name, 0)..=(tenant, name, u32::MAX))
            .map_err(storage)?
        {
            out.push(decode(entry.map_err(storage)?.1.value(), "workflow version")?);
        }
        Ok(out)
    }

    /// The names of a tenant's workflows, sorted.
    pub fn workflow_names(&self, tenant: &str) -> Result<Vec<String>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let names = txn.open_table(WORKFLOW_NAMES).map_err(storage)?;
        let mut out = Vec::new();
        for entry in names.range((tenant, "")..).map_err(storage)? {
            let (k, _) = entry.map_err(storage)?;
            let (t, name) = k.value();
            if t != tenant {
                break;
            }
            out.push(name.to_string());
        }
        Ok(out)
    }

    /// A page of a tenant's runs, newest first, and whether more may
    /// follow (the id to pass as `before` next).
    pub fn tenant_runs(&self, tenant: &str, filter: &RunFilter) -> Result<(Vec<RunRecord>, Option<RunId>), DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let index = txn.open_table(TENANT_RUNS).map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        let upper = filter.before.map_or(u64::MAX, |b| b.0.saturating_sub(1));
        let mut out = Vec::new();
        let mut last = None;
        for (scanned, entry) in index
            .range((tenant, 0)..=(tenant, upper))
            .map_err(storage)?
            .rev()
            .enumerate()
        {
            let id = entry.map_err(storage)?.0.value().1;
            if out.len() == filter.limit || scanned == MAX_SCAN {
                return Ok((out, last));
            }
            last = Some(RunId(id));
            let Some(bytes) = runs.get(id).map_err(storage)? else {
                continue;
            };
            let run: RunRecord = decode(bytes.value(), "run")?;
            if filter.workflow.as_ref().is_some_and(|w| *w != run.workflow)
                || filter.status.is_some_and(|s| s != run.status)
            {
                continue;
            }
            out.push(run);
        }
        Ok((out, None))
    }

    /// The run an idempotency key started, if any.
    pub fn idempotent_run(&self, tenant: &str, key: &str) -> Result<Option<RunId>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let keys = txn.open_table(IDEMPOTENCY).map_err(storage)?;
        Ok(keys.get((tenant, key)).map_err(storage)?.map(|v| RunId(v.value())))
    }
}

impl Db {
    /// A run's history from event `from` on, with each event's number.
    pub fn events_from(&self, run: RunId, from: u32) -> Result<Vec<(u32, crate::model::Event)>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in events.range((run.0, from)..=(run.0, u32::MAX)).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            out.push((k.value().1, decode(v.value(), "event")?));
        }
        Ok(out)
    }
}
