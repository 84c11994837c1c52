//! Reads: prepared statements (cached per pooled connection), every one
//! led by the tenant where the table has one, so it stays on one shard
//! when the tables are distributed.

use async_trait::async_trait;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::codes::{decode, digest, millis, run_status, unit_key};
use super::{PgStore, classify};
use crate::digest::Digest;
use crate::model::Millis;
use crate::model::{AttemptRecord, Event, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord, WorkflowVersion};
use crate::store::{
    Change, Continuation, Cursor, Expect, Keycheck, ObjectKind, Page, Record, RunFilter, SecretRecord, Store,
    StoreError, StoredObject, Table, kv_display,
};
use crate::tenant::{KeyRecord, TenantRecord};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Inserts or replaces a secret, keeping the `created_at` of the one it
/// replaces; answers whether the row is new.
pub(super) const PUT_SECRET: &str =
    "INSERT INTO secrets (tenant, name, key_id, nonce, ciphertext, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
         ciphertext = excluded.ciphertext, updated_at = excluded.updated_at
     RETURNING (xmax = 0)";

/// Runs [`PUT_SECRET`] on `client` (a connection or a transaction).
pub(super) async fn put_secret_on(
    client: &impl tokio_postgres::GenericClient,
    record: &SecretRecord,
) -> Result<bool, tokio_postgres::Error> {
    let (created, updated) = (millis(record.created_at), millis(record.updated_at));
    let row = client
        .query_one(
            PUT_SECRET,
            &[
                &record.tenant,
                &record.name,
                &record.key_id,
                &record.nonce,
                &record.ciphertext,
                &created,
                &updated,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The secret in `row`'s columns from `at` on: tenant, name, key_id,
/// nonce, ciphertext, created_at, updated_at.
pub(super) fn secret_of(row: &Row, at: usize) -> SecretRecord {
    SecretRecord {
        tenant: row.get(at),
        name: row.get(at + 1),
        key_id: row.get(at + 2),
        nonce: row.get(at + 3),
        ciphertext: row.get(at + 4),
        created_at: row.get::<_, i64>(at + 5) as Millis,
        updated_at: row.get::<_, i64>(at + 6) as Millis,
    }
}

impl PgStore {
    /// Runs `sql` as a statement prepared once per pooled connection; a
    /// lost connection marks the store unavailable (`/readyz`).
    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let client = self.reader().await?;
        let statement = client.prepare_cached(sql).await.map_err(|e| self.failed(e))?;
        client.query(&statement, params).await.map_err(|e| self.failed(e))
    }

    async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Records that the database could not be reached, for `/readyz`.
    pub(super) fn failed(&self, e: tokio_postgres::Error) -> StoreError {
        let error = classify(e);
        if matches!(error, StoreError::Unavailable(_)) {
            self.available.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        error
    }
}

fn records<T: serde::de::DeserializeOwned>(rows: Vec<Row>, what: &str) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|row| decode(row.get(0), what)).collect()
}

fn id(run: RunId) -> i64 {
    run.0 as i64
}

#[async_trait]
impl Store for PgStore {
    fn submit(&self, changes: Vec<Change>, then: Continuation) {
        self.submit_job(changes, then);
    }

    fn is_available(&self) -> bool {
        self.available.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cluster(&self) -> Option<std::sync::Arc<dyn crate::store::cluster::Cluster>> {
        (!self.exclusive).then(|| std::sync::Arc::new(self.clone()) as _)
    }

    async fn last_run_id(&self) -> Result<u64, StoreError> {
        let row = self.query_opt("SELECT max(run_id) FROM runs", &[]).await?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map_or(0, |id| id as u64))
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let row = self
            .query_opt("SELECT record::text FROM runs WHERE run_id = $1", &[&id(run)])
            .await?;
        row.map(|r| decode(r.get(0), "run")).transpose()
    }

    async fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        let rows = self
            .query("SELECT run_id FROM runs WHERE status = 0 ORDER BY run_id", &[])
            .await?;
        Ok(rows.iter().map(|r| RunId(r.get::<_, i64>(0) as u64)).collect())
    }

    async fn units(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, UnitRecord)>, StoreError> {
        // Items before their step's own row, as redb keys sort.
        let rows = self
            .query(
                "SELECT step, item, record::text FROM units WHERE tenant = $1 AND run_id = $2
                 ORDER BY step, item < 0, item",
                &[&tenant, &id(run)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((unit_key(r.get(0), r.get(1)), decode(r.get(2), "unit")?)))
            .collect()
    }

    async fn attempts(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, AttemptRecord)>, StoreError> {
        let rows = self
            .query(
                "SELECT step, item, record::text FROM attempts WHERE tenant = $1 AND run_id = $2
                 ORDER BY step, item < 0, item, attempt",
                &[&tenant, &id(run)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((unit_key(r.get(0), r.get(1)), decode(r.get(2), "attempt")?)))
            .collect()
    }

    async fn events_from(&self, tenant: &str, run: RunId, from: u32) -> Result<Vec<(u32, Event)>, StoreError> {
        let from = i32::try_from(from).unwrap_or(i32::MAX);
        let rows = self
            .query(
                "SELECT seq, event::text FROM events WHERE tenant = $1 AND run_id = $2 AND seq >= $3 ORDER BY seq",
                &[&tenant, &id(run), &from],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i32>(0) as u32, decode(r.get(1), "event")?)))
            .collect()
    }

    async fn next_event_seq(&self, tenant: &str, run: RunId) -> Result<u32, StoreError> {
        let row = self
            .query_opt(
                "SELECT max(seq) FROM events WHERE tenant = $1 AND run_id = $2",
                &[&tenant, &id(run)],
            )
            .await?;
        Ok(row
            .and_then(|r| r.get::<_, Option<i32>>(0))
            .map_or(0, |last| last as u32 + 1))
    }

    async fn tenant_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
    ) -> Result<(Vec<RunRecord>, Option<RunId>), StoreError> {
        let before = filter.before.map_or(i64::MAX, id);
        let status = filter.status.map(run_status);
        let from = filter.created_from.map(|t| t as i64);
        let until = filter.created_until.map(|t| t as i64);
        // One more than a page, to learn whether another follows.
        let limit = filter.limit as i64 + 1;
        let rows = self
            .query(
                "SELECT record::text FROM runs
                 WHERE tenant = $1 AND run_id < $2
                   AND ($3::text IS NULL OR workflow = $3) AND ($4::smallint IS NULL OR status = $4)
                   AND ($6::bigint IS NULL OR created_at >= $6) AND ($7::bigint IS NULL OR created_at < $7)
                 ORDER BY run_id DESC LIMIT $5",
                &[&tenant, &before, &filter.workflow, &status, &limit, &from, &until],
            )
            .await?;
        let mut runs: Vec<RunRecord> = records(rows, "run")?;
        let next = if runs.len() > filter.limit {
            runs.truncate(filter.limit);
            runs.last().map(|r| r.id)
        } else {
            None
        };
        Ok((runs, next))
    }

    async fn idempotent_run(&self, tenant: &str, key: &str) -> Result<Option<RunId>, StoreError> {
        let row = self
            .query_opt(
                "SELECT run_id FROM idempotency_keys WHERE tenant = $1 AND key = $2",
                &[&tenant, &key],
            )
            .await?;
        Ok(row.map(|r| RunId(r.get::<_, i64>(0) as u64)))
    }

    async fn module(&self, tenant: &str, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .query_opt(
                "SELECT bytes FROM module_bytes WHERE tenant = $1 AND digest = $2",
                &[&tenant, &digest.as_bytes().as_slice()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn module_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        let row = self
            .query_opt(
                "SELECT digest FROM module_names WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        row.map(|r| digest(r.get(0))).transpose()
    }

    async fn module_version(
        &self,
        tenant: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        let row = self
            .query_opt(
                "SELECT record::text FROM module_versions WHERE tenant = $1 AND name = $2 AND version = $3",
                &[&tenant, &name, &version],
            )
            .await?;
        row.map(|r| decode(r.get(0), "module version")).transpose()
    }

    async fn module_versions(&self, tenant: &str) -> Result<Vec<ModuleRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT record::text FROM module_versions WHERE tenant = $1 ORDER BY name, version",
                &[&tenant],
            )
            .await?;
        records(rows, "module version")
    }

    async fn workflow(&self, tenant: &str, digest: &Digest) -> Result<Option<String>, StoreError> {
        let row = self
            .query_opt(
                "SELECT source FROM workflows WHERE tenant = $1 AND digest = $2",
                &[&tenant, &digest.as_bytes().as_slice()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn workflow_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        let row = self
            .query_opt(
                "SELECT digest FROM workflow_names WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        row.map(|r| digest(r.get(0))).transpose()
    }

    async fn workflow_versions(&self, tenant: &str, name: &str) -> Result<Vec<WorkflowVersion>, StoreError> {
        let rows = self
            .query(
                "SELECT version, digest, created_at FROM workflow_versions
                 WHERE tenant = $1 AND name = $2 ORDER BY version",
                &[&tenant, &name],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkflowVersion {
                    version: r.get::<_, i32>(0) as u32,
                    digest: digest(r.get(1))?,
                    created_at: r.get::<_, i64>(2) as u64,
                })
            })
            .collect()
    }

    async fn workflow_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "SELECT name FROM workflow_names WHERE tenant = $1 ORDER BY name",
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn tenant(&self, tenant: &str) -> Result<Option<TenantRecord>, StoreError> {
        let row = self
            .query_opt("SELECT record::text FROM tenants WHERE tenant = $1", &[&tenant])
            .await?;
        row.map(|r| decode(r.get(0), "tenant")).transpose()
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = self
            .query("SELECT record::text FROM tenants ORDER BY tenant", &[])
            .await?;
        records(rows, "tenant")
    }

    async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = self
            .query_opt("SELECT record::text FROM api_keys WHERE key_id = $1", &[&key_id])
            .await?;
        row.map(|r| decode(r.get(0), "api key")).transpose()
    }

    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .query_opt("SELECT value FROM kv WHERE tenant = $1 AND key = $2", &[&tenant, &key])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn kv_entries(&self, tenant: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let rows = self
            .query("SELECT key, value FROM kv WHERE tenant = $1 ORDER BY key", &[&tenant])
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), kv_display(r.get::<_, &[u8]>(1))))
            .collect())
    }

    async fn expired_runs(&self, tenant: &str, before: Millis, limit: usize) -> Result<Vec<RunId>, StoreError> {
        let rows = self
            .query(
                "SELECT run_id FROM runs WHERE tenant = $1 AND status <> 0 AND updated_at < $2
                 ORDER BY updated_at LIMIT $3",
                &[&tenant, &millis(before), &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| RunId(r.get::<_, i64>(0) as u64)).collect())
    }

    async fn export_page(&self, table: Table, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.export_page_now(table, after, limit).await
    }

    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.import_now(records).await
    }

    async fn secret(&self, tenant: &str, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        let row = self
            .query_opt(
                "SELECT tenant, name, key_id, nonce, ciphertext, created_at, updated_at
                 FROM secrets WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        Ok(row.map(|r| secret_of(&r, 0)))
    }

    async fn secrets(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT tenant, name, key_id, nonce, ciphertext, created_at, updated_at
                 FROM secrets WHERE tenant = $1 ORDER BY name",
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(|r| secret_of(r, 0)).collect())
    }

    async fn put_secret(&self, record: SecretRecord) -> Result<bool, StoreError> {
        // One statement, committed (synchronously) before it returns.
        let client = self.reader().await?;
        let client: &tokio_postgres::Client = &client;
        put_secret_on(client, &record).await.map_err(|e| self.failed(e))
    }

    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "DELETE FROM secrets WHERE tenant = $1 AND name = $2 RETURNING name",
                &[&tenant, &name],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn keycheck(&self) -> Result<Option<Keycheck>, StoreError> {
        let row = self
            .query_opt("SELECT key_id, nonce, ciphertext FROM keycheck WHERE id = 1", &[])
            .await?;
        Ok(row.map(|r| Keycheck {
            key_id: r.get(0),
            nonce: r.get(1),
            ciphertext: r.get(2),
        }))
    }

    async fn put_keycheck(&self, check: Keycheck) -> Result<Keycheck, StoreError> {
        self.query(
            "INSERT INTO keycheck (id, key_id, nonce, ciphertext) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
            &[&check.key_id, &check.nonce, &check.ciphertext],
        )
        .await?;
        self.keycheck()
            .await?
            .ok_or_else(|| StoreError::Storage("the keycheck just written is not there".into()))
    }

    async fn object(&self, kind: ObjectKind, tenant: &str, name: &str) -> Result<Option<StoredObject>, StoreError> {
        self.object_row(kind, tenant, name).await
    }

    async fn objects(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.object_rows(kind, tenant, prefix, limit).await
    }

    async fn objects_after(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.object_rows_after(kind, tenant, after, limit).await
    }

    async fn put_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: &Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        self.put_object_row(kind, tenant, name, value, expect).await
    }

    async fn delete_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        self.delete_object_row(kind, tenant, name, expect).await
    }
}
