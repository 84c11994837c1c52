//! The write vocabulary of every backend: a batch of [`Change`]s is one
//! state transition, committed atomically, and touches one tenant.

use std::sync::Arc;

use super::ObjectKind;
use crate::digest::Digest;
use crate::model::{AttemptRecord, Event, Millis, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord};
use crate::tenant::{KeyRecord, TenantRecord};

/// One thing to write. Every change is keyed by its natural key, so
/// applying a batch twice leaves the same state as applying it once (a
/// backend re-applies a batch whose commit outcome it could not learn).
#[derive(Debug, Clone)]
pub enum Change {
    /// Stores a module's bytes for a tenant.
    PutModule {
        /// The tenant that uploaded them.
        tenant: String,
        /// Digest of the bytes.
        digest: Digest,
        /// The component.
        bytes: Arc<Vec<u8>>,
    },
    /// Stores a version of a tenant's module and makes it the newest.
    PutModuleVersion {
        /// The tenant.
        tenant: String,
        /// The version.
        record: Box<ModuleRecord>,
    },
    /// Removes every version of a tenant's module (the bytes stay until
    /// retention finds nothing that names them).
    DeleteModule {
        /// The tenant.
        tenant: String,
        /// The module's name.
        name: String,
    },
    /// Stores a workflow document and points its name at it.
    PutWorkflow {
        /// The tenant.
        tenant: String,
        /// The workflow's name.
        name: String,
        /// Digest of the text.
        digest: Digest,
        /// The document.
        source: Arc<str>,
        /// When it was pushed; a new version is recorded only when the
        /// text differs from the newest.
        at: Millis,
    },
    /// Inserts or replaces a tenant.
    PutTenant(Box<TenantRecord>),
    /// Stores an API key.
    PutKey(Box<KeyRecord>),
    /// Revokes an API key.
    DeleteKey {
        /// Its id.
        key_id: String,
    },
    /// Remembers which run an idempotency key started. On a database that
    /// several nodes share, a key that already names another run makes
    /// the whole batch fail with `StoreError::Duplicate`, naming that run
    /// (and later batches of the refused run fail too): so one key starts
    /// one run, whichever node is asked.
    PutIdempotencyKey {
        /// The tenant.
        tenant: String,
        /// The key the client sent.
        key: String,
        /// The run.
        run: RunId,
    },
    /// Inserts or replaces a run (and keeps the set of active runs).
    PutRun(Box<RunRecord>),
    /// Inserts or replaces a unit.
    PutUnit {
        /// The tenant that owns the run.
        tenant: String,
        /// The run.
        run: RunId,
        /// Which unit.
        key: UnitKey,
        /// Its state.
        record: UnitRecord,
    },
    /// Records a finished attempt.
    PutAttempt {
        /// The tenant that owns the run.
        tenant: String,
        /// The run.
        run: RunId,
        /// Which unit.
        key: UnitKey,
        /// The attempt.
        record: Box<AttemptRecord>,
    },
    /// Appends to a run's history.
    AppendEvent {
        /// The tenant that owns the run.
        tenant: String,
        /// The run.
        run: RunId,
        /// Its position in the history.
        seq: u32,
        /// What happened.
        event: Event,
    },
    /// Deletes finished runs with their units, attempts (and so logs),
    /// events, idempotency keys and notification deliveries: retention.
    DeleteRuns {
        /// The tenant that owns them.
        tenant: String,
        /// The runs.
        runs: Vec<RunId>,
    },
    /// Deletes the module bytes no module version and no unfinished run
    /// of `tenant` names any more (on a backend that shares bytes between
    /// tenants: that no tenant names). Decided inside the transaction, so
    /// an upload committed before it is never collected.
    CollectModuleBytes {
        /// The tenant.
        tenant: String,
    },
    /// Sets (`Some`) or deletes (`None`) a kv entry.
    Kv {
        /// The tenant.
        tenant: String,
        /// The key.
        key: String,
        /// The new value.
        value: Option<Vec<u8>>,
    },
    /// Stores a named record at revision 1 unless one of that name exists
    /// (then changes nothing): what a batch adds to the outbox.
    InsertObject {
        /// What it is.
        kind: ObjectKind,
        /// The tenant.
        tenant: String,
        /// Its name.
        name: String,
        /// Its content.
        value: serde_json::Value,
    },
    /// The batch holds `run`'s lease: it commits only while the run is
    /// leased to `node` at `epoch`, checked in the same transaction, else
    /// the whole batch fails with `StoreError::Fenced`. A run that is not
    /// stored yet (a start) is inserted leased to `node` at `epoch`. A
    /// backend that one process owns (redb) has nothing to check.
    Hold {
        /// The run's tenant.
        tenant: String,
        /// The run.
        run: RunId,
        /// The node (its incarnation) that holds the lease.
        node: i64,
        /// The lease's epoch.
        epoch: u64,
    },
}
