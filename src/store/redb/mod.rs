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
//! writer (`reads.rs`).

mod export;
mod objects;
mod reads;
mod secrets;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableTable};

use crate::digest::Digest;
use crate::model::UnitKey;
use crate::store::{Change, Continuation, StoreError, storage};
use tables::*;

pub(crate) struct Job {
    pub(crate) changes: Vec<Change>,
    pub(crate) then: Continuation,
}

/// The embedded store. Cheap to clone; when the last clone is dropped, queued
/// writes are committed and the file is closed.
#[derive(Clone)]
pub struct RedbStore {
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

/// Whether `dir` holds an embedded store.
pub fn exists(dir: &Path) -> bool {
    dir.join(STORE_FILE).exists()
}

/// The store's own page cache by default: 16 MiB. redb reads the file
/// with `pread`, so the kernel's page cache holds what this one does not,
/// and a backlog of runs does not pin its pages in the process (redb's own
/// default is 1 GiB).
pub const DEFAULT_CACHE: usize = 16 << 20;

/// The most changes one commit takes; the rest wait for the next.
const MAX_BATCH: usize = 4096;

impl RedbStore {
    /// Opens (or creates) the database file at `path`, with the default
    /// page cache.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        RedbStore::open_with_cache(path, DEFAULT_CACHE)
    }

    /// Opens (or creates) the database file at `path`, with a page cache of
    /// `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<RedbStore, StoreError> {
        let database = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        let txn = database.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let version = meta.get("schema_version").map_err(storage)?.map(|v| v.value());
            match version {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION).map_err(storage)?;
                }
                Some(found) if found != SCHEMA_VERSION => {
                    return Err(StoreError::SchemaVersion {
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
            // Added without a schema version: an older build ignores them.
            txn.open_table(SECRETS).map_err(storage)?;
            txn.open_table(KEYCHECK).map_err(storage)?;
            txn.open_table(OBJECTS).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;

        let database = Arc::new(database);
        let (sender, jobs) = mpsc::channel::<Job>();
        let for_writer = database.clone();
        let thread = std::thread::Builder::new()
            .name("weft-db-writer".into())
            .spawn(move || writer::write_loop(&for_writer, &jobs))
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        let writer = Writer {
            jobs: std::sync::Mutex::new(Some(sender)),
            thread: std::sync::Mutex::new(Some(thread)),
        };
        Ok(RedbStore {
            database,
            writer: Arc::new(writer),
        })
    }

    /// Queues `changes` for the next commit; `then` runs on the writer
    /// thread once they are durable (or failed). Keep `then` short.
    fn write(&self, changes: Vec<Change>, then: Continuation) {
        let job = Job { changes, then };
        let jobs = self.writer.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let unsent = match jobs.as_ref() {
            Some(sender) => sender.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        drop(jobs);
        if let Some(job) = unsent {
            (job.then)(Err(StoreError::Closed));
        }
    }
}

fn unit_key(step: u32, item: u32) -> UnitKey {
    UnitKey {
        step,
        item: (item != NO_ITEM).then_some(item),
    }
}

fn digest_from(bytes: &[u8]) -> Result<Digest, StoreError> {
    Digest::from_slice(bytes).ok_or_else(|| StoreError::Corrupt(format!("a digest of {} bytes", bytes.len())))
}

#[cfg(test)]
mod tests;
