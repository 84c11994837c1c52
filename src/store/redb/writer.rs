//! The writer thread: applies queued [`Change`]s in one redb transaction
//! per batch and hands every caller the batch's result.

use std::sync::mpsc;

use redb::{Database, ReadableTable, Table};

use super::tables::*;
use super::{Job, MAX_BATCH};
use crate::digest::Digest;
use crate::model::{ModuleRecord, RunRecord, WorkflowVersion};
use crate::store::{Change, StoreError, storage};

/// The writer thread: one transaction per batch of queued jobs.
pub(super) fn write_loop(database: &Database, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut changes = batch[0].changes.len();
        while changes < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => {
                    changes += job.changes.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let result = apply(database, &batch);
        for job in batch {
            (job.then)(result.clone());
        }
    }
}

fn apply(database: &Database, batch: &[Job]) -> Result<(), StoreError> {
    let txn = database.begin_write().map_err(storage)?;
    {
        let mut modules = txn.open_table(MODULES).map_err(storage)?;
        let mut module_names = txn.open_table(MODULE_NAMES).map_err(storage)?;
        let mut workflows = txn.open_table(WORKFLOWS).map_err(storage)?;
        let mut workflow_names = txn.open_table(WORKFLOW_NAMES).map_err(storage)?;
        let mut runs = txn.open_table(RUNS).map_err(storage)?;
        let mut active = txn.open_table(ACTIVE).map_err(storage)?;
        let mut units = txn.open_table(UNITS).map_err(storage)?;
        let mut attempts = txn.open_table(ATTEMPTS).map_err(storage)?;
        let mut events = txn.open_table(EVENTS).map_err(storage)?;
        let mut kv = txn.open_table(KV).map_err(storage)?;
        let mut tenants = txn.open_table(TENANTS).map_err(storage)?;
        let mut keys = txn.open_table(API_KEYS).map_err(storage)?;
        let mut module_versions = txn.open_table(MODULE_VERSIONS).map_err(storage)?;
        let mut workflow_versions = txn.open_table(WORKFLOW_VERSIONS).map_err(storage)?;
        let mut tenant_runs = txn.open_table(TENANT_RUNS).map_err(storage)?;
        let mut idempotency = txn.open_table(IDEMPOTENCY).map_err(storage)?;
        let mut objects = txn.open_table(OBJECTS).map_err(storage)?;
        for change in batch.iter().flat_map(|job| &job.changes) {
            match change {
                Change::PutModule { digest, bytes, .. } => {
                    modules
                        .insert(digest.as_bytes().as_slice(), bytes.as_slice())
                        .map_err(storage)?;
                }
                Change::PutModuleVersion { tenant, record } => {
                    let key = (tenant.as_str(), record.name.as_str(), record.version.as_str());
                    module_versions
                        .insert(key, encode(record.as_ref()).as_slice())
                        .map_err(storage)?;
                    module_names
                        .insert(
                            (tenant.as_str(), record.name.as_str()),
                            record.digest.as_bytes().as_slice(),
                        )
                        .map_err(storage)?;
                }
                Change::DeleteModule { tenant, name } => {
                    module_names.remove((tenant.as_str(), name.as_str())).map_err(storage)?;
                    let mut versions = Vec::new();
                    for entry in module_versions
                        .range((tenant.as_str(), name.as_str(), "")..)
                        .map_err(storage)?
                    {
                        let (k, _) = entry.map_err(storage)?;
                        let (t, n, v) = k.value();
                        if t != tenant || n != name {
                            break;
                        }
                        versions.push(v.to_string());
                    }
                    for version in versions {
                        module_versions
                            .remove((tenant.as_str(), name.as_str(), version.as_str()))
                            .map_err(storage)?;
                    }
                }
                Change::PutWorkflow {
                    tenant,
                    name,
                    digest,
                    source,
                    at,
                } => {
                    add_workflow_version(&mut workflow_versions, tenant, name, *digest, *at)?;
                    workflows
                        .insert(digest.as_bytes().as_slice(), &**source)
                        .map_err(storage)?;
                    workflow_names
                        .insert((tenant.as_str(), name.as_str()), digest.as_bytes().as_slice())
                        .map_err(storage)?;
                }
                Change::PutRun(run) => {
                    runs.insert(run.id.0, encode(run.as_ref()).as_slice())
                        .map_err(storage)?;
                    tenant_runs
                        .insert((run.tenant.as_str(), run.id.0), ())
                        .map_err(storage)?;
                    if run.status.is_final() {
                        active.remove(run.id.0).map_err(storage)?;
                    } else {
                        active.insert(run.id.0, ()).map_err(storage)?;
                    }
                }
                Change::PutUnit { run, key, record, .. } => {
                    let k = (run.0, key.step, key.item.unwrap_or(NO_ITEM));
                    units.insert(k, encode(record).as_slice()).map_err(storage)?;
                }
                Change::PutAttempt { run, key, record, .. } => {
                    let k = (run.0, key.step, key.item.unwrap_or(NO_ITEM), record.attempt);
                    attempts
                        .insert(k, encode(record.as_ref()).as_slice())
                        .map_err(storage)?;
                }
                Change::AppendEvent { run, seq, event, .. } => {
                    events
                        .insert((run.0, *seq), encode(event).as_slice())
                        .map_err(storage)?;
                }
                Change::PutTenant(tenant) => {
                    tenants
                        .insert(tenant.id.as_str(), encode(tenant.as_ref()).as_slice())
                        .map_err(storage)?;
                }
                Change::PutKey(key) => {
                    keys.insert(key.key_id.as_str(), encode(key.as_ref()).as_slice())
                        .map_err(storage)?;
                }
                Change::DeleteKey { key_id } => {
                    keys.remove(key_id.as_str()).map_err(storage)?;
                }
                Change::PutIdempotencyKey { tenant, key, run } => {
                    idempotency
                        .insert((tenant.as_str(), key.as_str()), run.0)
                        .map_err(storage)?;
                }
                Change::DeleteRuns { tenant, runs: ids } => {
                    for id in ids {
                        runs.remove(id.0).map_err(storage)?;
                        active.remove(id.0).map_err(storage)?;
                        tenant_runs.remove((tenant.as_str(), id.0)).map_err(storage)?;
                        units
                            .retain_in((id.0, 0, 0)..=(id.0, u32::MAX, u32::MAX), |_, _| false)
                            .map_err(storage)?;
                        attempts
                            .retain_in((id.0, 0, 0, 0)..=(id.0, u32::MAX, u32::MAX, u32::MAX), |_, _| false)
                            .map_err(storage)?;
                        events
                            .retain_in((id.0, 0)..=(id.0, u32::MAX), |_, _| false)
                            .map_err(storage)?;
                        super::objects::delete_of_run(&mut objects, tenant, id.0)?;
                    }
                    let gone: std::collections::HashSet<u64> = ids.iter().map(|id| id.0).collect();
                    let mut keys = Vec::new();
                    for entry in idempotency.range((tenant.as_str(), "")..).map_err(storage)? {
                        let (k, v) = entry.map_err(storage)?;
                        let (t, key) = k.value();
                        if t != tenant {
                            break;
                        }
                        if gone.contains(&v.value()) {
                            keys.push(key.to_string());
                        }
                    }
                    for key in keys {
                        idempotency.remove((tenant.as_str(), key.as_str())).map_err(storage)?;
                    }
                }
                Change::CollectModuleBytes { .. } => {
                    // Bytes are shared between tenants here: collect what no
                    // tenant's version and no unfinished run names.
                    let mut named = std::collections::HashSet::new();
                    for entry in module_versions.iter().map_err(storage)? {
                        let record: ModuleRecord = decode(entry.map_err(storage)?.1.value(), "module version")?;
                        named.insert(record.digest);
                    }
                    for entry in active.iter().map_err(storage)? {
                        let id = entry.map_err(storage)?.0.value();
                        if let Some(bytes) = runs.get(id).map_err(storage)? {
                            let run: RunRecord = decode(bytes.value(), "run")?;
                            named.extend(run.modules);
                        }
                    }
                    let mut unnamed = Vec::new();
                    for entry in modules.iter().map_err(storage)? {
                        let key = entry.map_err(storage)?.0;
                        if !Digest::from_slice(key.value()).is_some_and(|d| named.contains(&d)) {
                            unnamed.push(key.value().to_vec());
                        }
                    }
                    for digest in unnamed {
                        modules.remove(digest.as_slice()).map_err(storage)?;
                    }
                }
                Change::InsertObject {
                    kind,
                    tenant,
                    name,
                    value,
                } => super::objects::insert(&mut objects, *kind, tenant, name, value)?,
                // One process owns a redb store: no lease can move.
                Change::Hold { .. } => {}
                Change::Kv { tenant, key, value } => {
                    match value {
                        Some(v) => kv.insert((tenant.as_str(), key.as_str()), v.as_slice()).map(|_| ()),
                        None => kv.remove((tenant.as_str(), key.as_str())).map(|_| ()),
                    }
                    .map_err(storage)?;
                }
            }
        }
    }
    txn.commit().map_err(storage)
}

/// Records `digest` as the next version of a workflow, unless it already
/// is the newest.
fn add_workflow_version(
    versions: &mut Table<(&str, &str, u32), &[u8]>,
    tenant: &str,
    name: &str,
    digest: crate::digest::Digest,
    at: crate::model::Millis,
) -> Result<(), StoreError> {
    let last = versions
        .range((tenant, name, 0)..=(tenant, name, u32::MAX))
        .map_err(storage)?
        .next_back()
        .transpose()
        .map_err(storage)?
        .map(|(_, v)| decode::<WorkflowVersion>(v.value(), "workflow version"))
        .transpose()?;
    if last.as_ref().is_some_and(|l| l.digest == digest) {
        return Ok(());
    }
    let version = last.map_or(1, |l| l.version + 1);
    let record = WorkflowVersion {
        version,
        digest,
        created_at: at,
    };
    versions
        .insert((tenant, name, version), encode(&record).as_slice())
        .map_err(storage)?;
    Ok(())
}
