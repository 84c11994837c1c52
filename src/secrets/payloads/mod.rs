//! Payloads sealed at rest (docs/architecture.md, "Payloads sealed at
//! rest"): [`SealedStore`] wraps whichever store the server opened and
//! implements the same [`Store`], sealing the payload fields of every
//! change for a tenant with the `encrypt_payloads` quota before the
//! backend sees it, and opening sealed fields on every read. Neither
//! backend knows, and nothing above the store does either.
//!
//! - `envelope`: how a sealed value sits in a record, and which fields
//!   are sealed;
//! - `keys`: each tenant's data key, sealed by the master key.
//!
//! Sealing happens in [`Store::submit`], which cannot wait: a batch whose
//! tenant's policy is known (the common case: every tenant after its
//! first batch) is sealed and passed on at once; a batch that needs a
//! store read first (the tenant's quota, its data key) waits in a queue,
//! and every batch after it waits behind it, so batches still reach the
//! backend in the order they were submitted.

mod envelope;
mod keys;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

pub use envelope::PREFIX;
use envelope::{KeyLookup, Opening, Place, Sealing, Unopened};
pub use keys::{NAME_PREFIX, is_data_key};

use crate::digest::Digest;
use crate::model::{
    AttemptRecord, Event, Millis, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord, WorkflowVersion,
};
use crate::secrets::{MasterKey, Sealer};
use crate::store::cluster::{Cluster, Notice};
use crate::store::{
    Change, Continuation, Cursor, Expect, Keycheck, ObjectKind, Page, Record, RunFilter, SecretRecord, Store,
    StoreError, StoredObject, Table,
};
use crate::tenant::{KeyRecord, TenantRecord};

/// `store`, sealing the payloads of tenants with `encrypt_payloads` under
/// data keys sealed by `master`. Without a master key nothing can be
/// sealed: a batch of such a tenant fails, naming the missing key, rather
/// than being written in the clear. Call from within the runtime.
pub fn seal_payloads(store: Arc<dyn Store>, master: Option<MasterKey>) -> Arc<dyn Store> {
    let shared = Arc::new(Shared {
        keys: keys::DataKeys::new(store.clone(), master),
        inner: store,
        policies: Mutex::new(Policies::default()),
        queue: Mutex::new(Queue::default()),
        runtime: tokio::runtime::Handle::current(),
    });
    if let Some(cluster) = shared.inner.cluster() {
        // Another node changed a tenant: learn its policy again.
        let mut notices = cluster.notices();
        let weak = Arc::downgrade(&shared);
        shared.runtime.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let forget = match notices.recv().await {
                    Ok(Notice::Names | Notice::Missed) | Err(RecvError::Lagged(_)) => true,
                    Ok(_) => false,
                    Err(RecvError::Closed) => return,
                };
                match weak.upgrade() {
                    Some(shared) if forget => shared.policies().forget_all(),
                    Some(_) => {}
                    None => return,
                }
            }
        });
    }
    Arc::new(SealedStore { shared })
}

/// How a tenant's payloads are written.
#[derive(Clone)]
enum Policy {
    /// As they are.
    Plain,
    /// Sealed with this data key.
    Seal(Sealer),
    /// Sealed, with a data key not loaded (or made) yet: set when a
    /// change turns `encrypt_payloads` on.
    NeedsKey,
}

#[derive(Default)]
struct Policies {
    by_tenant: HashMap<String, Policy>,
    /// Bumped whenever a policy may have changed, so a lookup that raced
    /// the change does not record what it read.
    generation: u64,
}

impl Policies {
    fn ready(&self, tenant: &str) -> Option<&Policy> {
        self.by_tenant.get(tenant).filter(|p| !matches!(p, Policy::NeedsKey))
    }

    fn forget(&mut self, tenant: &str) {
        self.generation += 1;
        self.by_tenant.remove(tenant);
    }

    fn forget_all(&mut self) {
        self.generation += 1;
        self.by_tenant.clear();
    }
}

/// Batches that wait for a policy, in order.
#[derive(Default)]
struct Queue {
    /// Whether a task is draining `waiting`: while it is, every new batch
    /// queues behind.
    busy: bool,
    waiting: VecDeque<(Vec<Change>, Continuation)>,
}

struct Shared {
    inner: Arc<dyn Store>,
    keys: keys::DataKeys,
    policies: Mutex<Policies>,
    queue: Mutex<Queue>,
    runtime: tokio::runtime::Handle,
}

/// A store whose tenants' payloads are sealed where they ask for it.
pub struct SealedStore {
    shared: Arc<Shared>,
}

/// The tenant whose payload a change carries, if it carries one.
fn payload_tenant(change: &Change) -> Option<&str> {
    match change {
        Change::PutRun(run) => Some(&run.tenant),
        Change::PutUnit { tenant, record, .. } if record.output.is_some() || record.error.is_some() => Some(tenant),
        Change::PutAttempt { tenant, .. }
        | Change::Kv {
            tenant, value: Some(_), ..
        } => Some(tenant),
        _ => None,
    }
}

/// The tenant whose policy must be known before `change` is passed on:
/// its payload's, or a tenant's that turns sealing on (its data key is
/// made first).
fn needs_policy(change: &Change) -> Option<&str> {
    match change {
        Change::PutTenant(tenant) if tenant.quotas.encrypt_payloads => Some(&tenant.id),
        other => payload_tenant(other),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn policies(&self) -> MutexGuard<'_, Policies> {
        lock(&self.policies)
    }

    /// Notes what the tenants a batch changes will need, and seals the
    /// batch if every policy it needs is known; else gives it back.
    fn prepare_now(&self, mut changes: Vec<Change>) -> Result<Vec<Change>, Vec<Change>> {
        let mut policies = self.policies();
        for change in &changes {
            if let Change::PutTenant(tenant) = change
                && tenant.quotas.encrypt_payloads
                && !matches!(policies.by_tenant.get(&tenant.id), Some(Policy::Seal(_)))
            {
                // Made durable before the tenant is: the key check then
                // refuses a node without the key from then on.
                policies.generation += 1;
                policies.by_tenant.insert(tenant.id.clone(), Policy::NeedsKey);
            }
        }
        let ready = changes
            .iter()
            .all(|change| needs_policy(change).is_none_or(|t| policies.ready(t).is_some()));
        if !ready {
            return Err(changes);
        }
        for change in &mut changes {
            let Some(Policy::Seal(key)) = payload_tenant(change).and_then(|t| policies.ready(t)) else {
                continue;
            };
            seal(&Sealing { key }, change);
        }
        Ok(changes)
    }

    /// Looks up what `prepare_now` lacked, then seals the batch.
    async fn prepare(&self, mut changes: Vec<Change>) -> Result<Vec<Change>, StoreError> {
        let mut resolved: HashMap<String, Policy> = HashMap::new();
        for change in &changes {
            if let Some(tenant) = needs_policy(change)
                && !resolved.contains_key(tenant)
            {
                resolved.insert(tenant.to_string(), self.policy_when_available(tenant).await?);
            }
        }
        for change in &mut changes {
            if let Some(Policy::Seal(key)) = payload_tenant(change).and_then(|t| resolved.get(t)) {
                seal(&Sealing { key }, change);
            }
        }
        Ok(changes)
    }

    /// [`Shared::policy`], waiting out a store that cannot be reached: the
    /// batch waits, as the backend's writer holds its batches through an
    /// outage, instead of failing for want of a lookup.
    async fn policy_when_available(&self, tenant: &str) -> Result<Policy, StoreError> {
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            match self.policy(tenant).await {
                Err(StoreError::Unavailable(why)) => {
                    tracing::debug!(
                        tenant,
                        why,
                        "waiting for the store to learn how to write a tenant's payloads"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// `tenant`'s policy, read from the store (and its data key made) if
    /// it is not known.
    async fn policy(&self, tenant: &str) -> Result<Policy, StoreError> {
        let (generation, turned_on) = {
            let policies = self.policies();
            if let Some(policy) = policies.ready(tenant) {
                return Ok(policy.clone());
            }
            let turned_on = matches!(policies.by_tenant.get(tenant), Some(Policy::NeedsKey));
            (policies.generation, turned_on)
        };
        let seals = turned_on
            || self
                .inner
                .tenant(tenant)
                .await?
                .is_some_and(|record| record.quotas.encrypt_payloads);
        let policy = match seals {
            true => Policy::Seal(self.keys.current(tenant).await?),
            false => Policy::Plain,
        };
        let mut policies = self.policies();
        if policies.generation == generation {
            policies.by_tenant.insert(tenant.to_string(), policy.clone());
        }
        Ok(policy)
    }

    /// Passes a sealed batch on; once a tenant change is durable (or has
    /// failed), its policy is learnt again.
    fn forward(self: &Arc<Self>, changes: Vec<Change>, then: Continuation) {
        let tenants: Vec<(String, bool)> = changes
            .iter()
            .filter_map(|change| match change {
                Change::PutTenant(tenant) => Some((tenant.id.clone(), tenant.quotas.encrypt_payloads)),
                _ => None,
            })
            .collect();
        if tenants.is_empty() {
            return self.inner.submit(changes, then);
        }
        let shared = Arc::downgrade(self);
        self.inner.submit(
            changes,
            Box::new(move |result| {
                if let Some(shared) = shared.upgrade() {
                    let mut policies = shared.policies();
                    for (tenant, seals) in &tenants {
                        // A tenant that turned sealing on keeps the key
                        // made for it; any other learns its policy again.
                        let sealing = matches!(policies.by_tenant.get(tenant), Some(Policy::Seal(_)));
                        if result.is_err() || !(*seals && sealing) {
                            policies.forget(tenant);
                        }
                    }
                }
                then(result);
            }),
        );
    }

    /// Prepares and passes on the queued batches, in order, until none is
    /// left.
    async fn drain(self: Arc<Self>) {
        loop {
            let (changes, then) = {
                let mut queue = lock(&self.queue);
                match queue.waiting.pop_front() {
                    Some(job) => job,
                    None => {
                        queue.busy = false;
                        return;
                    }
                }
            };
            match self.prepare(changes).await {
                Ok(changes) => self.forward(changes, then),
                Err(e) => then(Err(e)),
            }
        }
    }

    /// Opens the sealed fields `visit` finds in one tenant's records: a
    /// first pass learns which data keys they name, the second opens.
    async fn open<F>(&self, tenant: &str, mut visit: F) -> Result<(), StoreError>
    where
        F: FnMut(&mut Opening<'_>) -> Result<(), Unopened>,
    {
        let mut lookup = KeyLookup::Collect(Vec::new());
        visit(&mut Opening { keys: &mut lookup })
            .map_err(|e| StoreError::Corrupt(format!("tenant {tenant:?}: {e}")))?;
        let KeyLookup::Collect(ids) = lookup else {
            unreachable!("the first pass collects")
        };
        if ids.is_empty() {
            return Ok(());
        }
        let mut lookup = KeyLookup::Known(self.keys.find(tenant, &ids).await?);
        visit(&mut Opening { keys: &mut lookup }).map_err(|e| StoreError::Corrupt(format!("tenant {tenant:?}: {e}")))
    }

    async fn open_run(&self, run: &mut RunRecord) -> Result<(), StoreError> {
        let tenant = run.tenant.clone();
        self.open(&tenant, |opening| opening.run(run)).await
    }
}

/// Seals the payload fields of `change`.
fn seal(sealing: &Sealing<'_>, change: &mut Change) {
    match change {
        Change::PutRun(run) => sealing.run(run),
        Change::PutUnit {
            tenant,
            run,
            key,
            record,
        } => sealing.unit(&Place::unit(tenant, *run, *key), record),
        Change::PutAttempt {
            tenant,
            run,
            key,
            record,
        } => sealing.attempt(&Place::attempt(tenant, *run, *key, record.attempt), record),
        Change::Kv {
            tenant,
            key,
            value: Some(value),
        } => sealing.kv(&Place::kv(tenant, key), value),
        _ => {}
    }
}

#[async_trait]
impl Store for SealedStore {
    fn submit(&self, changes: Vec<Change>, then: Continuation) {
        let shared = &self.shared;
        let mut queue = lock(&shared.queue);
        if queue.busy {
            queue.waiting.push_back((changes, then));
            return;
        }
        match shared.prepare_now(changes) {
            Ok(changes) => {
                drop(queue);
                shared.forward(changes, then);
            }
            Err(changes) => {
                queue.waiting.push_back((changes, then));
                queue.busy = true;
                drop(queue);
                shared.runtime.spawn(shared.clone().drain());
            }
        }
    }

    fn is_available(&self) -> bool {
        self.shared.inner.is_available()
    }

    fn cluster(&self) -> Option<Arc<dyn Cluster>> {
        self.shared.inner.cluster()
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let mut run = self.shared.inner.run(id).await?;
        if let Some(run) = &mut run {
            self.shared.open_run(run).await?;
        }
        Ok(run)
    }

    async fn tenant_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
    ) -> Result<(Vec<RunRecord>, Option<RunId>), StoreError> {
        let (mut runs, next) = self.shared.inner.tenant_runs(tenant, filter).await?;
        self.shared
            .open(tenant, |opening| runs.iter_mut().try_for_each(|run| opening.run(run)))
            .await?;
        Ok((runs, next))
    }

    async fn units(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, UnitRecord)>, StoreError> {
        let mut units = self.shared.inner.units(tenant, run).await?;
        self.shared
            .open(tenant, |opening| {
                units
                    .iter_mut()
                    .try_for_each(|(key, unit)| opening.unit(&Place::unit(tenant, run, *key), unit))
            })
            .await?;
        Ok(units)
    }

    async fn attempts(&self, tenant: &str, run: RunId) -> Result<Vec<(UnitKey, AttemptRecord)>, StoreError> {
        let mut attempts = self.shared.inner.attempts(tenant, run).await?;
        self.shared
            .open(tenant, |opening| {
                attempts.iter_mut().try_for_each(|(key, attempt)| {
                    opening.attempt(&Place::attempt(tenant, run, *key, attempt.attempt), attempt)
                })
            })
            .await?;
        Ok(attempts)
    }

    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut value = self.shared.inner.kv_get(tenant, key).await?;
        if let Some(value) = &mut value {
            self.shared
                .open(tenant, |opening| opening.kv(&Place::kv(tenant, key), value))
                .await?;
        }
        Ok(value)
    }

    async fn kv_entries(&self, tenant: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let mut entries = self.shared.inner.kv_entries(tenant).await?;
        let mut sealed: Vec<(usize, Vec<u8>)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, (_, value))| match value {
                Value::String(text) if text.starts_with(PREFIX) => {
                    Some((i, serde_json::to_vec(value).expect("a string serialises")))
                }
                _ => None,
            })
            .collect();
        if sealed.is_empty() {
            return Ok(entries);
        }
        self.shared
            .open(tenant, |opening| {
                sealed
                    .iter_mut()
                    .try_for_each(|(i, bytes)| opening.kv(&Place::kv(tenant, &entries[*i].0), bytes))
            })
            .await?;
        for (i, bytes) in sealed {
            entries[i].1 = crate::store::kv_display(&bytes);
        }
        Ok(entries)
    }

    // Nothing else carries payloads: straight through. The export and
    // import of `weft migrate` and `weft check` see sealed values as they
    // are stored.

    async fn last_run_id(&self) -> Result<u64, StoreError> {
        self.shared.inner.last_run_id().await
    }
    async fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        self.shared.inner.active_runs().await
    }
    async fn events_from(&self, tenant: &str, run: RunId, from: u32) -> Result<Vec<(u32, Event)>, StoreError> {
        self.shared.inner.events_from(tenant, run, from).await
    }
    async fn next_event_seq(&self, tenant: &str, run: RunId) -> Result<u32, StoreError> {
        self.shared.inner.next_event_seq(tenant, run).await
    }
    async fn idempotent_run(&self, tenant: &str, key: &str) -> Result<Option<RunId>, StoreError> {
        self.shared.inner.idempotent_run(tenant, key).await
    }
    async fn module(&self, tenant: &str, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        self.shared.inner.module(tenant, digest).await
    }
    async fn module_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        self.shared.inner.module_named(tenant, name).await
    }
    async fn module_version(
        &self,
        tenant: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        self.shared.inner.module_version(tenant, name, version).await
    }
    async fn module_versions(&self, tenant: &str) -> Result<Vec<ModuleRecord>, StoreError> {
        self.shared.inner.module_versions(tenant).await
    }
    async fn workflow(&self, tenant: &str, digest: &Digest) -> Result<Option<String>, StoreError> {
        self.shared.inner.workflow(tenant, digest).await
    }
    async fn workflow_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        self.shared.inner.workflow_named(tenant, name).await
    }
    async fn workflow_versions(&self, tenant: &str, name: &str) -> Result<Vec<WorkflowVersion>, StoreError> {
        self.shared.inner.workflow_versions(tenant, name).await
    }
    async fn workflow_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.shared.inner.workflow_names(tenant).await
    }
    async fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.shared.inner.tenant(id).await
    }
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.shared.inner.tenants().await
    }
    async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.shared.inner.key(key_id).await
    }
    async fn expired_runs(&self, tenant: &str, before: Millis, limit: usize) -> Result<Vec<RunId>, StoreError> {
        self.shared.inner.expired_runs(tenant, before, limit).await
    }
    async fn secret(&self, tenant: &str, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        self.shared.inner.secret(tenant, name).await
    }
    async fn secrets(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        self.shared.inner.secrets(tenant).await
    }
    async fn put_secret(&self, record: SecretRecord) -> Result<bool, StoreError> {
        self.shared.inner.put_secret(record).await
    }
    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.shared.inner.delete_secret(tenant, name).await
    }
    async fn keycheck(&self) -> Result<Option<Keycheck>, StoreError> {
        self.shared.inner.keycheck().await
    }
    async fn put_keycheck(&self, check: Keycheck) -> Result<Keycheck, StoreError> {
        self.shared.inner.put_keycheck(check).await
    }
    async fn export_page(&self, table: Table, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.shared.inner.export_page(table, after, limit).await
    }
    // Named records (schedules, hooks, deliveries) are stored as they
    // are: a schedule's input and a delivery's body are not sealed.
    async fn object(&self, kind: ObjectKind, tenant: &str, name: &str) -> Result<Option<StoredObject>, StoreError> {
        self.shared.inner.object(kind, tenant, name).await
    }
    async fn objects(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.shared.inner.objects(kind, tenant, prefix, limit).await
    }
    async fn objects_after(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        self.shared.inner.objects_after(kind, tenant, after, limit).await
    }
    async fn put_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: &Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        self.shared.inner.put_object(kind, tenant, name, value, expect).await
    }
    async fn delete_object(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        self.shared.inner.delete_object(kind, tenant, name, expect).await
    }
    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError> {
        // Imports are copies of stored records: sealed as they were.
        self.shared.policies().forget_all();
        self.shared.inner.import(records).await
    }
}

#[cfg(test)]
mod tests;
