//! A cache in front of any store for the lookups every request and every
//! run start makes, and whose answers change only when a person changes
//! them: API keys, tenants, and which workflow or module version a name
//! means. On PostgreSQL each is a round trip; cached, a start costs none.
//!
//! Every write goes through [`Store::submit`], so the cache sees each
//! change that could make an answer stale and forgets that answer when
//! the change is submitted and again when it is durable. A read that
//! raced a change does not put what it read into the cache: every
//! invalidation bumps a generation, and a read only fills the cache if
//! the generation is the one it started under.
//!
//! Other nodes sharing the store write too: on a store with a
//! [`Cluster`], every commit that changes such an answer notifies every
//! node ([`Notice::Names`]), and the cache forgets everything when told,
//! or when notices may have been missed. Another node's change is then
//! seen here a few milliseconds after it commits, not at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

use super::cluster::{Cluster, Notice};
use super::{
    Change, Continuation, Cursor, Expect, Keycheck, ObjectKind, Page, Record, RunFilter, SecretRecord, Store,
    StoreError, StoredObject, Table,
};
use crate::digest::Digest;
use crate::model::{
    AttemptRecord, Event, Millis, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord, WorkflowVersion,
};
use crate::tenant::{KeyRecord, TenantRecord};

/// Answers kept per kind; past this a kind is emptied, so lookups of
/// made-up keys cannot grow memory.
const MAX_ENTRIES: usize = 10_000;

/// One kind of answer.
struct Answers<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Answers<K, V> {
    fn new() -> Self {
        Answers {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, value);
    }

    fn forget(&self, key: &K) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    fn forget_all(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

struct Cache {
    generation: AtomicU64,
    keys: Answers<String, Option<KeyRecord>>,
    tenants: Answers<String, Option<TenantRecord>>,
    workflow_names: Answers<(String, String), Option<Digest>>,
    module_names: Answers<(String, String), Option<Digest>>,
}

impl Cache {
    /// Forgets every answer `changes` could make stale; whether there was
    /// any.
    fn invalidate(&self, changes: &[Change]) -> bool {
        let mut bumped = false;
        for change in changes {
            bumped |= match change {
                Change::PutTenant(tenant) => {
                    self.tenants.forget(&tenant.id);
                    true
                }
                Change::PutKey(key) => {
                    self.keys.forget(&key.key_id);
                    true
                }
                Change::DeleteKey { key_id } => {
                    self.keys.forget(key_id);
                    true
                }
                Change::PutWorkflow { tenant, name, .. } => {
                    self.workflow_names.forget(&(tenant.clone(), name.clone()));
                    true
                }
                Change::PutModuleVersion { tenant, record } => {
                    self.module_names.forget(&(tenant.clone(), record.name.clone()));
                    true
                }
                Change::DeleteModule { tenant, name } => {
                    self.module_names.forget(&(tenant.clone(), name.clone()));
                    true
                }
                _ => false,
            };
        }
        if bumped {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        bumped
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.keys.forget_all();
        self.tenants.forget_all();
        self.workflow_names.forget_all();
        self.module_names.forget_all();
    }
}

/// `inner`, with its name, key and tenant lookups cached.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    cache: Arc<Cache>,
}

impl CachedStore {
    /// A cache in front of `inner`.
    pub fn new(inner: Arc<dyn Store>) -> CachedStore {
        let cache = Arc::new(Cache {
            generation: AtomicU64::new(0),
            keys: Answers::new(),
            tenants: Answers::new(),
            workflow_names: Answers::new(),
            module_names: Answers::new(),
        });
        if let Some(cluster) = inner.cluster() {
            let mut notices = cluster.notices();
            let cache = cache.clone();
            tokio::spawn(async move {
                loop {
                    match notices.recv().await {
                        Ok(Notice::Names | Notice::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            cache.forget_all()
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        CachedStore { inner, cache }
    }

    /// The cached answer, or `read`'s, kept unless a change raced it.
    async fn through<K, V, F>(&self, answers: &Answers<K, V>, key: K, read: F) -> Result<V, StoreError>
    where
        K: Hash + Eq,
        V: Clone,
        F: Future<Output = Result<V, StoreError>>,
    {
        if let Some(value) = answers.get(&key) {
            return Ok(value);
        }
        let generation = self.cache.generation.load(Ordering::SeqCst);
        let value = read.await?;
        if self.cache.generation.load(Ordering::SeqCst) == generation {
            answers.put(key, value.clone());
        }
        Ok(value)
    }
}

#[async_trait]
impl Store for CachedStore {
    fn submit(&self, changes: Vec<Change>, then: Continuation) {
        if !self.cache.invalidate(&changes) {
            return self.inner.submit(changes, then);
        }
        let cache = self.cache.clone();
        let invalidated = changes.clone();
        self.inner.submit(
            changes,
            Box::new(move |result| {
                cache.invalidate(&invalidated);
                then(result);
            }),
        );
    }

    fn is_available(&self) -> bool {
        self.inner.is_available()
    }

    fn cluster(&self) -> Option<Arc<dyn Cluster>> {
        self.inner.cluster()
    }

    async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.through(&self.cache.keys, key_id.to_string(), self.inner.key(key_id))
            .await
    }

    async fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.through(&self.cache.tenants, id.to_string(), self.inner.tenant(id))
            .await
    }

    async fn workflow_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        let key = (tenant.to_string(), name.to_string());
        self.through(&self.cache.workflow_names, key, self.inner.workflow_named(tenant, name))
            .await
    }

    async fn module_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        let key = (tenant.to_string(), name.to_string());
        self.through(&self.cache.module_names, key, self.inner.module_named(tenant, name))
            .await
    }

    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError> {
        // Imports write names and keys directly: forget everything.
        self.cache.forget_all();
        let result = self.inner.import(records).await;
        self.cache.forget_all();
        result
    }

    // Everything else goes straight through.

    async fn last_run_id(&self) -> Result<u64, StoreError> {
        self.inner.last_run_id().await
    }
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.inner.run(id).await
    }
    async fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        self.inner.active_runs().await
    }
    async fn units(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, UnitRecord)>, StoreError> {
        self.inner.units(tenant, run).await
    }
    async fn attempts(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, AttemptRecord)>, StoreError> {
        self.inner.attempts(tenant, run).await
    }
    async fn events_from(&self, tenant: &str, run: RunId, from: u32) -> Result<Vec<(u32, Event)>, StoreError> {
        self.inner.events_from(tenant, run, from).await
    }
    async fn next_event_seq(&self, tenant: &str, run: RunId) -> Result<u32, StoreError> {
        self.inner.next_event_seq(tenant, run).await
    }
    async fn tenant_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
    ) -> Result<(Vec<RunRecord>, Option<RunId>), StoreError> {
        self.inner.tenant_runs(tenant, filter).await
    }
    async fn idempotent_run(&self, tenant: &str, key: &str) -> Result<Option<RunId>, StoreError> {
        self.inner.idempotent_run(tenant, key).await
    }
    async fn module(&self, tenant: &str, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.module(tenant, digest).await
    }
    async fn module_version(
        &self,
        tenant: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        self.inner.module_version(tenant, name, version).await
    }
    async fn module_versions(&self, tenant: &str) -> Result<Vec<ModuleRecord>, StoreError> {
        self.inner.module_versions(tenant).await
    }
    async fn workflow(&self, tenant: &str, digest: &Digest) -> Result<Option<String>, StoreError> {
        self.inner.workflow(tenant, digest).await
    }
    async fn workflow_versions(&self, tenant: &str, name: &str) -> Result<Vec<WorkflowVersion>, StoreError> {
        self.inner.workflow_versions(tenant, name).await
    }
    async fn workflow_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.inner.workflow_names(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.inner.tenants().await
    }
    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.kv_get(tenant, key).await
    }
    async fn kv_entries(&self, tenant: &str) -> Result<Vec<(String, Value)>, StoreError> {
        self.inner.kv_entries(tenant).await
    }
    async fn expired_runs(&self, tenant: &str, before: Millis, limit: usize) -> Result<Vec<RunId>, StoreError> {
        self.inner.expired_runs(tenant, before, limit).await
    }
    async fn export_page(&self, table: Table, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.inner.export_page(table, after, limit).await
    }
    // Secrets are read once per attempt that uses one and written by
    // people: not cached, so a change is seen at once on every node.
    async fn secret(&self, tenant: &str, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        self.inner.secret(tenant, name).await
    }
    async fn secrets(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        self.inner.secrets(tenant).await
    }
    async fn put_secret(&self, record: SecretRecord) -> Result<bool, StoreError> {
        self.inner.put_secret(record).await
    }
    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.inner.delete_secret(tenant, name).await
    }
    async fn keycheck(&self) -> Result<Option<Keycheck>, StoreError> {
        self.inner.keycheck().await
    }
    async fn put_keycheck(&self, check: Keycheck) -> Result<Keycheck, StoreError> {
        self.inner.put_keycheck(check).await
    }
    // Named records are few and changed by any node: not cached.
    async fn object(&self, kind: ObjectKind, tenant: &str, name: &str) -> Result<Option<StoredObject>, StoreError> {
        self.inner.object(kind, tenant, name).await
    }
    async fn objects(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.inner.objects(kind, tenant, prefix, limit).await
    }
    async fn objects_after(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.inner.objects_after(kind, tenant, after, limit).await
    }
    async fn put_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: &Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.put_object(kind, tenant, name, value, expect).await
    }
    async fn delete_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        self.inner.delete_object(kind, tenant, name, expect).await
    }
}
