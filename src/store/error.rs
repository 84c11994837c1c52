//! Why a store failed, in terms every backend shares.

use crate::model::RunId;

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or created.
    #[error("cannot open the store: {0}")]
    Open(String),
    /// The store was written by a build with another schema.
    #[error("the store has schema version {found}; this build of weft reads version {expected}")]
    SchemaVersion {
        /// The version in the store.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
    /// The database cannot be reached now (a dropped connection, a
    /// restarting server). Retryable; the API answers 503.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Reading or writing failed (disk full, I/O error, a refused
    /// statement).
    #[error("storage error: {0}")]
    Storage(String),
    /// A stored record does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The batch held a lease that has moved on: the run was claimed by
    /// another node (this one was paused or cut off for too long, or the
    /// run was taken over). Nothing of the batch was written.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The batch stored an idempotency key that already names another
    /// run: two nodes started a run for the same key at once, and the
    /// other's start committed. Nothing of the batch was written, nor of
    /// any other batch of the run it would have started. Not retryable:
    /// the key's run is `run`.
    #[error("the idempotency key already started run {run}")]
    Duplicate {
        /// The run the key started.
        run: RunId,
    },
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether trying again could work.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Storage(_) | StoreError::Unavailable(_) | StoreError::Fenced(_)
        )
    }
}

pub(crate) fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}
