//! Reads: each one a redb read transaction, an MVCC snapshot that never
//! waits for the writer.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use serde_json::Value;

use super::tables::*;
use super::{RedbStore, digest_from, unit_key};
use crate::digest::Digest;
use crate::model::Millis;
use crate::model::{AttemptRecord, Event, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord, WorkflowVersion};
use crate::store::{
    Change, Continuation, Cursor, Expect, Keycheck, ObjectKind, Page, Record, RunFilter, SecretRecord, Store,
    StoreError, StoredObject, Table, kv_display, storage,
};
use crate::tenant::{KeyRecord, TenantRecord};

/// The most runs one page scans past a filter before it returns what it
/// has, so a selective filter over a long history cannot stall a request.
const MAX_SCAN: usize = 10_000;

#[async_trait]
impl Store for RedbStore {
    fn submit(&self, changes: Vec<Change>, then: Continuation) {
        self.write(changes, then);
    }

    fn is_available(&self) -> bool {
        true
    }
    /// The largest run id stored (0 when there is none).
    async fn last_run_id(&self) -> Result<u64, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        Ok(runs.last().map_err(storage)?.map_or(0, |(k, _)| k.value()))
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        runs.get(id.0)
            .map_err(storage)?
            .map(|v| decode(v.value(), "run"))
            .transpose()
    }

    async fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let active = txn.open_table(ACTIVE).map_err(storage)?;
        active
            .iter()
            .map_err(storage)?
            .map(|entry| entry.map(|(k, _)| RunId(k.value())).map_err(storage))
            .collect()
    }

    async fn units(&self, _tenant: &str, run: RunId) -> Result<Vec<(UnitKey, UnitRecord)>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let units = txn.open_table(UNITS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in units
            .range((run.0, 0, 0)..=(run.0, u32::MAX, u32::MAX))
            .map_err(storage)?
        {
            let (k, v) = entry.map_err(storage)?;
            let (_, step, item) = k.value();
            out.push((unit_key(step, item), decode(v.value(), "unit")?));
        }
        Ok(out)
    }

    async fn attempts(&self, _tenant: &str, run: RunId) -> Result<Vec<(UnitKey, AttemptRecord)>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let attempts = txn.open_table(ATTEMPTS).map_err(storage)?;
        let mut out = Vec::new();
        let range = (run.0, 0, 0, 0)..=(run.0, u32::MAX, u32::MAX, u32::MAX);
        for entry in attempts.range(range).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let (_, step, item, _) = k.value();
            out.push((unit_key(step, item), decode(v.value(), "attempt")?));
        }
        Ok(out)
    }

    async fn next_event_seq(&self, _tenant: &str, run: RunId) -> Result<u32, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let last = events
            .range((run.0, 0)..=(run.0, u32::MAX))
            .map_err(storage)?
            .next_back();
        Ok(match last {
            Some(entry) => entry.map_err(storage)?.0.value().1 + 1,
            None => 0,
        })
    }

    async fn module(&self, _tenant: &str, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let modules = txn.open_table(MODULES).map_err(storage)?;
        Ok(modules
            .get(digest.as_bytes().as_slice())
            .map_err(storage)?
            .map(|v| v.value().to_vec()))
    }

    async fn module_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let names = txn.open_table(MODULE_NAMES).map_err(storage)?;
        names
            .get((tenant, name))
            .map_err(storage)?
            .map(|v| digest_from(v.value()))
            .transpose()
    }

    async fn workflow(&self, _tenant: &str, digest: &Digest) -> Result<Option<String>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let workflows = txn.open_table(WORKFLOWS).map_err(storage)?;
        Ok(workflows
            .get(digest.as_bytes().as_slice())
            .map_err(storage)?
            .map(|v| v.value().to_string()))
    }

    async fn workflow_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let names = txn.open_table(WORKFLOW_NAMES).map_err(storage)?;
        names
            .get((tenant, name))
            .map_err(storage)?
            .map(|v| digest_from(v.value()))
            .transpose()
    }

    async fn kv_entries(&self, tenant: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let kv = txn.open_table(KV).map_err(storage)?;
        let mut out = Vec::new();
        for entry in kv.range((tenant, "")..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let (t, key) = k.value();
            if t != tenant {
                break;
            }
            let value = kv_display(v.value());
            out.push((key.to_string(), value));
        }
        Ok(out)
    }

    async fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let tenants = txn.open_table(TENANTS).map_err(storage)?;
        tenants
            .get(id)
            .map_err(storage)?
            .map(|v| decode(v.value(), "tenant"))
            .transpose()
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let tenants = txn.open_table(TENANTS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in tenants.iter().map_err(storage)? {
            out.push(decode(entry.map_err(storage)?.1.value(), "tenant")?);
        }
        Ok(out)
    }

    async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let keys = txn.open_table(API_KEYS).map_err(storage)?;
        keys.get(key_id)
            .map_err(storage)?
            .map(|v| decode(v.value(), "api key"))
            .transpose()
    }

    async fn module_version(
        &self,
        tenant: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let versions = txn.open_table(MODULE_VERSIONS).map_err(storage)?;
        versions
            .get((tenant, name, version))
            .map_err(storage)?
            .map(|v| decode(v.value(), "module version"))
            .transpose()
    }

    async fn module_versions(&self, tenant: &str) -> Result<Vec<ModuleRecord>, StoreError> {
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

    async fn workflow_versions(&self, tenant: &str, name: &str) -> Result<Vec<WorkflowVersion>, StoreError> {
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

    async fn workflow_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
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

    async fn tenant_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
    ) -> Result<(Vec<RunRecord>, Option<RunId>), StoreError> {
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
                || filter.created_from.is_some_and(|t| run.created_at < t)
                || filter.created_until.is_some_and(|t| run.created_at >= t)
            {
                continue;
            }
            out.push(run);
        }
        Ok((out, None))
    }

    async fn idempotent_run(&self, tenant: &str, key: &str) -> Result<Option<RunId>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let keys = txn.open_table(IDEMPOTENCY).map_err(storage)?;
        Ok(keys.get((tenant, key)).map_err(storage)?.map(|v| RunId(v.value())))
    }

    async fn events_from(&self, _tenant: &str, run: RunId, from: u32) -> Result<Vec<(u32, Event)>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in events.range((run.0, from)..=(run.0, u32::MAX)).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            out.push((k.value().1, decode(v.value(), "event")?));
        }
        Ok(out)
    }

    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let kv = txn.open_table(KV).map_err(storage)?;
        Ok(kv.get((tenant, key)).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    async fn expired_runs(&self, tenant: &str, before: Millis, limit: usize) -> Result<Vec<RunId>, StoreError> {
        self.expired_runs_now(tenant, before, limit)
    }

    async fn export_page(&self, table: Table, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.export_page_now(table, after, limit)
    }

    async fn secret(&self, tenant: &str, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        self.secret_now(tenant, name)
    }

    async fn secrets(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        self.secrets_now(tenant)
    }

    async fn put_secret(&self, record: SecretRecord) -> Result<bool, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.put_secret_now(record))
            .await
            .map_err(storage)?
    }

    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let (store, tenant, name) = (self.clone(), tenant.to_string(), name.to_string());
        tokio::task::spawn_blocking(move || store.delete_secret_now(&tenant, &name))
            .await
            .map_err(storage)?
    }

    async fn keycheck(&self) -> Result<Option<Keycheck>, StoreError> {
        self.keycheck_now()
    }

    async fn put_keycheck(&self, check: Keycheck) -> Result<Keycheck, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.put_keycheck_now(check))
            .await
            .map_err(storage)?
    }

    async fn object(&self, kind: ObjectKind, tenant: &str, name: &str) -> Result<Option<StoredObject>, StoreError> {
        self.object_now(kind, tenant, name)
    }

    async fn objects(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.objects_now(kind, tenant, prefix, limit)
    }

    async fn objects_after(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.objects_after_now(kind, tenant, after, limit)
    }

    async fn put_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: &Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        let (store, tenant, name, value) = (self.clone(), tenant.to_string(), name.to_string(), value.clone());
        tokio::task::spawn_blocking(move || store.put_object_now(kind, &tenant, &name, value, expect))
            .await
            .map_err(storage)?
    }

    async fn delete_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        let (store, tenant, name) = (self.clone(), tenant.to_string(), name.to_string());
        tokio::task::spawn_blocking(move || store.delete_object_now(kind, &tenant, &name, expect))
            .await
            .map_err(storage)?
    }

    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.import_now(records))
            .await
            .map_err(storage)?
    }
}
