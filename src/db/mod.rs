//! Durable state in one redb file, written by one thread that commits
//! concurrent changes together (group commit).
//!
//! Callers describe what to write as [`Change`]s; the writer thread takes
//! every change queued while the previous commit ran, applies them in one
//! transaction, commits durably (fsync), and only then runs each caller's
//! continuation. Many runs finishing at once therefore cost one fsync, not
//! one each, and no caller hears "done" before its data is on disk.
//!
//! Reads use redb's MVCC snapshots from any thread, never blocking the
//! writer. The interface is narrow on purpose (records in, records out) so
//! a PostgreSQL backend can stand in later.

mod catalog;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable};
use serde_json::Value;

use crate::digest::Digest;
use crate::model::{AttemptRecord, Event, Millis, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord};
use crate::sandbox::KvRead;
use crate::tenant::{KeyRecord, TenantRecord};
pub use catalog::RunFilter;
use tables::*;

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The database file could not be opened or created.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The database was written by a build with another schema.
    #[error("the database has schema version {found}; this build of weft reads version {expected}")]
    SchemaVersion {
        /// The version in the file.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
    /// Reading or writing failed (disk full, I/O error).
    #[error("storage error: {0}")]
    Storage(String),
    /// A stored record does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The writer has stopped.
    #[error("the database is closed")]
    Closed,
}

impl DbError {
    /// Whether trying again could work.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DbError::Storage(_))
    }
}

fn storage(e: impl std::fmt::Display) -> DbError {
    DbError::Storage(e.to_string())
}

/// One thing to write.
#[derive(Debug, Clone)]
pub enum Change {
    /// Stores a module's bytes.
    PutModule {
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
    /// Removes every version of a tenant's module (the bytes stay: they
    /// are content-addressed, and finished runs still name them).
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
    /// Remembers which run an idempotency key started.
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
        /// The run.
        run: RunId,
        /// Which unit.
        key: UnitKey,
        /// Its state.
        record: UnitRecord,
    },
    /// Records a finished attempt.
    PutAttempt {
        /// The run.
        run: RunId,
        /// Which unit.
        key: UnitKey,
        /// The attempt.
        record: Box<AttemptRecord>,
    },
    /// Appends to a run's history.
    AppendEvent {
        /// The run.
        run: RunId,
        /// Its position in the history.
        seq: u32,
        /// What happened.
        event: Event,
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
}

type Continuation = Box<dyn FnOnce(Result<(), DbError>) + Send>;

pub(crate) struct Job {
    pub(crate) changes: Vec<Change>,
    pub(crate) then: Continuation,
}

/// The store. Cheap to clone; when the last clone is dropped, queued
/// writes are committed and the file is closed.
#[derive(Clone)]
pub struct Db {
    database: Arc<Database>,
    writer: Arc<Writer>,
}

/// The writer thread and the way to it.
struct Writer {
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish what is queued and
        // exit; joining it releases the file before we return.
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// The store's file name inside a data directory.
pub const STORE_FILE: &str = "weft.redb";

/// The store's own page cache by default: 16 MiB. redb reads the file
/// with `pread`, so the kernel's page cache holds what this one does not,
/// and a backlog of runs does not pin its pages in the process (redb's own
/// default is 1 GiB).
pub const DEFAULT_CACHE: usize = 16 << 20;

/// The most changes one commit takes; the rest wait for the next.
const MAX_BATCH: usize = 4096;

impl Db {
    /// Opens (or creates) the database file at `path`, with the default
    /// page cache.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_with_cache(path, DEFAULT_CACHE)
    }

    /// Opens (or creates) the database file at `path`, with a page cache of
    /// `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Db, DbError> {
        let database = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| DbError::Open(format!("{}: {e}", path.display())))?;
        let txn = database.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let version = meta.get("schema_version").map_err(storage)?.map(|v| v.value());
            match version {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION).map_err(storage)?;
                }
                Some(found) if found != SCHEMA_VERSION => {
                    return Err(DbError::SchemaVersion {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
                Some(_) => {}
            }
            // Create every table so that reads never meet a missing one.
            txn.open_table(MODULES).map_err(storage)?;
            txn.open_table(MODULE_NAMES).map_err(storage)?;
            txn.open_table(WORKFLOWS).map_err(storage)?;
            txn.open_table(WORKFLOW_NAMES).map_err(storage)?;
            txn.open_table(RUNS).map_err(storage)?;
            txn.open_table(ACTIVE).map_err(storage)?;
            txn.open_table(UNITS).map_err(storage)?;
            txn.open_table(ATTEMPTS).map_err(storage)?;
            txn.open_table(EVENTS).map_err(storage)?;
            txn.open_table(KV).map_err(storage)?;
            txn.open_table(TENANTS).map_err(storage)?;
            txn.open_table(API_KEYS).map_err(storage)?;
            txn.open_table(MODULE_VERSIONS).map_err(storage)?;
            txn.open_table(WORKFLOW_VERSIONS).map_err(storage)?;
            txn.open_table(TENANT_RUNS).map_err(storage)?;
            txn.open_table(IDEMPOTENCY).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;

        let database = Arc::new(database);
        let (sender, jobs) = mpsc::channel::<Job>();
        let for_writer = database.clone();
        let thread = std::thread::Builder::new()
            .name("weft-db-writer".into())
            .spawn(move || writer::write_loop(&for_writer, &jobs))
            .map_err(|e| DbError::Open(format!("cannot start the writer thread: {e}")))?;
        let writer = Writer {
            jobs: std::sync::Mutex::new(Some(sender)),
            thread: std::sync::Mutex::new(Some(thread)),
        };
        Ok(Db {
            database,
            writer: Arc::new(writer),
        })
    }

    /// Queues `changes` for the next commit; `then` runs on the writer
    /// thread once they are durable (or failed). Keep `then` short.
    pub fn write(&self, changes: Vec<Change>, then: impl FnOnce(Result<(), DbError>) + Send + 'static) {
        let job = Job {
            changes,
            then: Box::new(then),
        };
        let jobs = self.writer.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let unsent = match jobs.as_ref() {
            Some(sender) => sender.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        drop(jobs);
        if let Some(job) = unsent {
            (job.then)(Err(DbError::Closed));
        }
    }

    /// Writes `changes` and waits until they are durable.
    pub async fn commit(&self, changes: Vec<Change>) -> Result<(), DbError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.write(changes, move |result| {
            let _ = done.send(result);
        });
        wait.await.unwrap_or(Err(DbError::Closed))
    }

    /// The largest run id stored (0 when there is none).
    pub fn last_run_id(&self) -> Result<u64, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        Ok(runs.last().map_err(storage)?.map_or(0, |(k, _)| k.value()))
    }

    /// A run.
    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        runs.get(id.0)
            .map_err(storage)?
            .map(|v| decode(v.value(), "run"))
            .transpose()
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in runs.iter().map_err(storage)?.rev() {
            let (_, v) = entry.map_err(storage)?;
            out.push(decode(v.value(), "run")?);
        }
        Ok(out)
    }

    /// Ids of runs that have not finished.
    pub fn active_runs(&self) -> Result<Vec<RunId>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let active = txn.open_table(ACTIVE).map_err(storage)?;
        active
            .iter()
            .map_err(storage)?
            .map(|entry| entry.map(|(k, _)| RunId(k.value())).map_err(storage))
            .collect()
    }

    /// A run's units, in key order.
    pub fn units(&self, run: RunId) -> Result<Vec<(UnitKey, UnitRecord)>, DbError> {
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

    /// A run's finished attempts, by unit and attempt number.
    pub fn attempts(&self, run: RunId) -> Result<Vec<(UnitKey, AttemptRecord)>, DbError> {
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

    /// A run's history, in order.
    pub fn events(&self, run: RunId) -> Result<Vec<Event>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in events.range((run.0, 0)..=(run.0, u32::MAX)).map_err(storage)? {
            let (_, v) = entry.map_err(storage)?;
            out.push(decode(v.value(), "event")?);
        }
        Ok(out)
    }

    /// The sequence number the next event of `run` gets: one past the
    /// last stored, without reading the history.
    pub fn next_event_seq(&self, run: RunId) -> Result<u32, DbError> {
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

    /// A module's bytes.
    pub fn module(&self, digest: &Digest) -> Result<Option<Vec<u8>>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let modules = txn.open_table(MODULES).map_err(storage)?;
        Ok(modules
            .get(digest.as_bytes().as_slice())
            .map_err(storage)?
            .map(|v| v.value().to_vec()))
    }

    /// The digest a tenant's module name points at.
    pub fn module_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let names = txn.open_table(MODULE_NAMES).map_err(storage)?;
        names
            .get((tenant, name))
            .map_err(storage)?
            .map(|v| digest_from(v.value()))
            .transpose()
    }

    /// A workflow document by digest.
    pub fn workflow(&self, digest: &Digest) -> Result<Option<String>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let workflows = txn.open_table(WORKFLOWS).map_err(storage)?;
        Ok(workflows
            .get(digest.as_bytes().as_slice())
            .map_err(storage)?
            .map(|v| v.value().to_string()))
    }

    /// The digest of a tenant's newest definition of a workflow.
    pub fn workflow_named(&self, tenant: &str, name: &str) -> Result<Option<Digest>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let names = txn.open_table(WORKFLOW_NAMES).map_err(storage)?;
        names
            .get((tenant, name))
            .map_err(storage)?
            .map(|v| digest_from(v.value()))
            .transpose()
    }

    /// Every kv entry of a tenant, for inspection.
    pub fn kv_entries(&self, tenant: &str) -> Result<Vec<(String, Value)>, DbError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let kv = txn.open_table(KV).map_err(storage)?;
        let mut out = Vec::new();
        for entry in kv.range((tenant, "")..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let (t, key) = k.value();
            if t != tenant {
                break;
            }
            let value = serde_json::from_slice(v.value()).unwrap_or_else(|_| Value::String(format!("{:?}", v.value())));
            out.push((key.to_string(), value));
        }
        Ok(out)
    }
}

impl KvRead for Db {
    fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let read = || -> Result<Option<Vec<u8>>, DbError> {
            let txn = self.database.begin_read().map_err(storage)?;
            let kv = txn.open_table(KV).map_err(storage)?;
            Ok(kv.get((tenant, key)).map_err(storage)?.map(|v| v.value().to_vec()))
        };
        read().map_err(|e| e.to_string())
    }
}

fn unit_key(step: u32, item: u32) -> UnitKey {
    UnitKey {
        step,
        item: (item != NO_ITEM).then_some(item),
    }
}

fn digest_from(bytes: &[u8]) -> Result<Digest, DbError> {
    let hex = hex::encode(bytes);
    format!("sha256:{hex}")
        .parse()
        .map_err(|e| DbError::Corrupt(format!("digest: {e}")))
}

#[cfg(test)]
mod tests;
