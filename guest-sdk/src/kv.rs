//! Tenant-scoped key-value state, with JSON-typed helpers.
//!
//! Writes are buffered and committed with the step's result only when the
//! attempt succeeds, so a task can read, decide and write without worrying
//! about half-done work: a failed or retried attempt leaves no trace.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::bindings::weft::task::kv as wit;
use crate::TaskError;

/// Why a kv call failed.
#[derive(Debug)]
pub enum KvError {
    /// The key is empty or longer than the cap (bytes).
    InvalidKey {
        /// The largest key allowed, in bytes.
        max_bytes: u32,
    },
    /// The value is larger than the cap (bytes).
    ValueTooLarge {
        /// The largest value allowed, in bytes.
        max_bytes: u32,
    },
    /// This attempt made as many writes as it may.
    TooManyWrites {
        /// The number of writes allowed per attempt.
        max_writes: u32,
    },
    /// The store could not be read; worth retrying.
    Unavailable(String),
    /// The stored value is not the JSON the caller asked for.
    Decode(serde_json::Error),
    /// The value could not be encoded as JSON.
    Encode(serde_json::Error),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::InvalidKey { max_bytes } => {
                write!(f, "kv key must be 1 to {max_bytes} bytes")
            }
            KvError::ValueTooLarge { max_bytes } => {
                write!(f, "kv value is larger than {max_bytes} bytes")
            }
            KvError::TooManyWrites { max_writes } => {
                write!(f, "an attempt may make at most {max_writes} kv writes")
            }
            KvError::Unavailable(why) => write!(f, "kv store unavailable: {why}"),
            KvError::Decode(e) => write!(f, "stored kv value does not decode: {e}"),
            KvError::Encode(e) => write!(f, "kv value does not encode as JSON: {e}"),
        }
    }
}

impl std::error::Error for KvError {}

impl From<wit::KvError> for KvError {
    fn from(e: wit::KvError) -> Self {
        match e {
            wit::KvError::InvalidKey(max_bytes) => KvError::InvalidKey { max_bytes },
            wit::KvError::ValueTooLarge(max_bytes) => KvError::ValueTooLarge { max_bytes },
            wit::KvError::TooManyWrites(max_writes) => KvError::TooManyWrites { max_writes },
            wit::KvError::Unavailable(why) => KvError::Unavailable(why),
        }
    }
}

/// A kv failure inside a task fails the attempt with code `kv_error`,
/// retryable only when the store was unavailable.
impl From<KvError> for TaskError {
    fn from(e: KvError) -> Self {
        let retryable = matches!(e, KvError::Unavailable(_));
        TaskError {
            code: "kv_error".into(),
            message: e.to_string(),
            retryable,
        }
    }
}

/// Reads a JSON value; `Ok(None)` when the key is not set.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, KvError> {
    match get_bytes(key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(KvError::Decode),
        None => Ok(None),
    }
}

/// Stores a value as JSON.
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(value).map_err(KvError::Encode)?;
    set_bytes(key, &bytes)
}

/// Reads raw bytes; `Ok(None)` when the key is not set.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    Ok(wit::get(key)?)
}

/// Stores raw bytes.
pub fn set_bytes(key: &str, value: &[u8]) -> Result<(), KvError> {
    Ok(wit::set(key, value)?)
}

/// Deletes a key; deleting a missing key is not an error.
pub fn delete(key: &str) -> Result<(), KvError> {
    Ok(wit::delete(key)?)
}
