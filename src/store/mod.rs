//! The storage seam (docs/architecture.md, "Storage: one seam, two
//! backends"): the engine, the API and the tools talk to a [`Store`], and
//! only the backend folders, `redb/` and `postgres/`, name a database.
//!
//! Writes are batches of [`Change`]s handed to [`Store::submit`]; each
//! backend has one writer that commits every queued batch in one
//! transaction (group commit) and runs each batch's continuation only once
//! it is durable. Reads are `async` and see only what has committed.

mod cached;
mod change;
pub mod check;
pub mod cluster;
mod error;
mod location;
mod objects;
pub mod postgres;
mod records;
pub mod redb;
pub mod retention;
mod secrets;
pub mod transfer;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub use change::Change;
pub use error::StoreError;
pub(crate) use error::storage;
pub use location::{LocationError, PgLocation, StoreLocation, TlsMode};
pub use objects::{Expect, ObjectKind, StoredObject, run_prefix};
pub use records::{Corrupt, Cursor, Page, Record, Table, Tally};
pub use secrets::{Keycheck, SecretRecord};

use crate::digest::Digest;
use crate::model::{
    AttemptRecord, Event, Millis, ModuleRecord, RunId, RunRecord, RunStatus, UnitKey, UnitRecord, WorkflowVersion,
};
use crate::tenant::{KeyRecord, TenantRecord};

/// What runs once a batch is durable, or has failed.
pub type Continuation = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Which of a tenant's runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// Only runs older than this one (the previous page's cursor).
    pub before: Option<RunId>,
    /// Only runs created at or after this time (ms since the epoch).
    pub created_from: Option<Millis>,
    /// Only runs created before this time (ms since the epoch).
    pub created_until: Option<Millis>,
    /// The most runs to return.
    pub limit: usize,
}

/// Durable state: one implementation per backend.
///
/// Contracts every backend keeps (`tests/store.rs` holds them):
/// a batch commits entirely or not at all; `then` runs after the commit,
/// never before; batches commit in the order they were submitted; reads
/// see every batch whose continuation has run.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues `changes` for the next commit; `then` runs once they are
    /// durable (or failed). Keep `then` short: it runs on the writer.
    fn submit(&self, changes: Vec<Change>, then: Continuation);

    /// Whether the database can be reached now (`/readyz`).
    fn is_available(&self) -> bool;

    /// Coordination with the other nodes sharing this store; `None` where
    /// one process owns the store (its node owns every run).
    fn cluster(&self) -> Option<Arc<dyn cluster::Cluster>> {
        None
    }

    /// The largest run id stored (0 when there is none).
    async fn last_run_id(&self) -> Result<u64, StoreError>;
    /// A run.
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// Ids of runs that have not finished: what recovery resumes.
    async fn active_runs(&self) -> Result<Vec<RunId>, StoreError>;
    /// A run's units, in key order.
    async fn units(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, UnitRecord)>, StoreError>;
    /// A run's finished attempts, by unit and attempt number.
    async fn attempts(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, AttemptRecord)>, StoreError>;
    /// A run's history from event `from` on, with each event's number.
    async fn events_from(&self, tenant: &str, run: RunId, from: u32) -> Result<Vec<(u32, Event)>, StoreError>;
    /// The number the next event of `run` gets: one past the last stored.
    async fn next_event_seq(&self, tenant: &str, run: RunId) -> Result<u32, StoreError>;
    /// A page of a tenant's runs, newest first, and the cursor of the next
    /// page when more may follow.
    async fn tenant_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
    ) -> Result<(Vec<RunRecord>, Option<RunId>), StoreError>;
    /// The run an idempotency key started, if any.
    async fn idempotent_run(&self, tenant: &str, key: &str) -> Result<Option<RunId>, StoreError>;

    /// A module's bytes, as `tenant` uploaded them.
    async fn module(&self, tenant: &str, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError>;
    /// The digest a tenant's module name points at (its newest version).
    async fn module_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError>;
    /// One version of a tenant's module.
    async fn module_version(&self, tenant: &str, name: &str, version: &str)
    -> Result<Option<ModuleRecord>, StoreError>;
    /// Every module version a tenant stores, by name then version.
    async fn module_versions(&self, tenant: &str) -> Result<Vec<ModuleRecord>, StoreError>;

    /// A workflow document by the digest of its text.
    async fn workflow(&self, tenant: &str, digest: &Digest) -> Result<Option<String>, StoreError>;
    /// The digest of a tenant's newest definition of a workflow.
    async fn workflow_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError>;
    /// The versions of a tenant's workflow, oldest first.
    async fn workflow_versions(&self, tenant: &str, name: &str) -> Result<Vec<WorkflowVersion>, StoreError>;
    /// The names of a tenant's workflows, sorted.
    async fn workflow_names(&self, tenant: &str) -> Result<Vec<String>, StoreError>;

    /// A tenant.
    async fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError>;
    /// Every tenant, by id.
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
    /// An API key by its id.
    async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// The committed value of a kv key.
    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every kv entry of a tenant, for inspection.
    async fn kv_entries(&self, tenant: &str) -> Result<Vec<(String, Value)>, StoreError>;

    /// Finished runs of `tenant` last changed before `before`, oldest
    /// first, at most `limit`: what retention deletes next.
    async fn expired_runs(&self, tenant: &str, before: Millis, limit: usize) -> Result<Vec<RunId>, StoreError>;

    /// A tenant's sealed secret.
    async fn secret(&self, tenant: &str, name: &str) -> Result<Option<SecretRecord>, StoreError>;
    /// Every sealed secret of a tenant, by name.
    async fn secrets(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError>;
    /// Stores a sealed secret, replacing the tenant's secret of that name
    /// but keeping its `created_at`; durable before it returns. Whether
    /// the name was new.
    async fn put_secret(&self, record: SecretRecord) -> Result<bool, StoreError>;
    /// Deletes a tenant's secret, durably; whether there was one.
    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// The store's keycheck, if one is recorded.
    async fn keycheck(&self) -> Result<Option<Keycheck>, StoreError>;
    /// Records `check` unless the store has a keycheck already; returns
    /// the one the store holds afterwards (so two nodes starting at once
    /// agree on one).
    async fn put_keycheck(&self, check: Keycheck) -> Result<Keycheck, StoreError>;

    /// A named record (a schedule, a hook, a delivery).
    async fn object(&self, kind: ObjectKind, tenant: &str, name: &str) -> Result<Option<StoredObject>, StoreError>;
    /// Up to `limit` records of `kind` whose names start with `prefix`, of
    /// `tenant` or (`None`) of every tenant, by tenant then name.
    async fn objects(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError>;
    /// Up to `limit` of `tenant`'s records of `kind` whose names come after
    /// `after` (all, when `None`), by name: a page of a list that a cursor
    /// resumes.
    async fn objects_after(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError>;
    /// Writes a named record, durably, if it is as `expect` says; returns
    /// its new revision, or `None` (nothing written) when it is not.
    async fn put_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: &Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError>;
    /// Deletes a named record, durably, if it is as `expect` says; whether
    /// one was deleted.
    async fn delete_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` records of `table` after `after`, in the backend's key
    /// order (see [`Record`]).
    async fn export_page(&self, table: Table, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError>;

    /// Writes `records` as they are, in one transaction, replacing any
    /// with the same key: the other half of [`Store::export_page`].
    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError>;
}

impl dyn Store {
    /// Writes `changes` and waits until they are durable.
    pub async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.submit(
            changes,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        );
        wait.await.unwrap_or(Err(StoreError::Closed))
    }
}

pub use self::redb::DEFAULT_CACHE;

/// Opens the store at `location`, creating it (or its schema) if needed.
/// `redb_cache` is the embedded store's page cache, in bytes.
pub async fn open(location: &StoreLocation, redb_cache: usize) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match location {
        StoreLocation::Redb(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
            let file = dir.join(redb::STORE_FILE);
            Arc::new(redb::RedbStore::open_with_cache(&file, redb_cache)?)
        }
        StoreLocation::Postgres(pg) => Arc::new(postgres::PgStore::open(pg).await?),
    };
    Ok(Arc::new(cached::CachedStore::new(store)))
}

/// [`open`] for a tool that must be alone with the store (`weft
/// migrate`'s target): on PostgreSQL it fails while any node has it open.
pub async fn open_exclusive(location: &StoreLocation, redb_cache: usize) -> Result<Arc<dyn Store>, StoreError> {
    match location {
        StoreLocation::Redb(_) => open(location, redb_cache).await,
        StoreLocation::Postgres(pg) => Ok(Arc::new(cached::CachedStore::new(Arc::new(
            postgres::PgStore::open_exclusive(pg).await?,
        )))),
    }
}

/// Opens a store that must exist already, changing nothing to open it (no
/// file or schema created, none upgraded): for `weft check` and the
/// source of `weft migrate`. Like [`open`], it fails while a server holds
/// the store.
pub async fn open_existing(location: &StoreLocation) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match location {
        StoreLocation::Redb(dir) => {
            if !redb::exists(dir) {
                return Err(StoreError::Open(format!("{} holds no weft store", dir.display())));
            }
            Arc::new(redb::RedbStore::open(&dir.join(redb::STORE_FILE))?)
        }
        StoreLocation::Postgres(pg) => Arc::new(postgres::PgStore::open_existing(pg).await?),
    };
    Ok(Arc::new(cached::CachedStore::new(store)))
}

/// Decodes the JSON a kv value holds, for display.
pub(crate) fn kv_display(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(format!("{bytes:?}")))
}
