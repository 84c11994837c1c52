//! How records become columns: statuses as the `smallint`s the schema
//! documents, records as JSON text, digests as bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::digest::Digest;
use crate::model::{RunStatus, UnitKey, UnitRecord, UnitStatus};
use crate::store::StoreError;

/// A run's status as stored (migration 0001 names each).
pub(super) fn run_status(status: RunStatus) -> i16 {
    match status {
        RunStatus::Running => 0,
        RunStatus::Succeeded => 1,
        RunStatus::Failed => 2,
        RunStatus::Cancelled => 3,
    }
}

/// A unit's status as stored.
pub(super) fn unit_status(status: UnitStatus) -> i16 {
    match status {
        UnitStatus::Pending => 0,
        UnitStatus::Ready => 1,
        UnitStatus::Running => 2,
        UnitStatus::Retrying => 3,
        UnitStatus::Succeeded => 4,
        UnitStatus::Failed => 5,
        UnitStatus::Skipped => 6,
        UnitStatus::Cancelled => 7,
        // Not in migration 0001's comment, which lists 0 to 7: added with
        // wait steps; the column is a plain smallint.
        UnitStatus::Waiting => 8,
    }
}

/// When a ready or retrying unit may start: the retry's due time, or 0
/// (now) for a ready one. Others are not in the queue.
pub(super) fn ready_at(record: &UnitRecord) -> Option<i64> {
    match record.status {
        UnitStatus::Ready | UnitStatus::Retrying => Some(record.due.map_or(0, millis)),
        _ => None,
    }
}

/// The item column: -1 for a plain step or a fan-out's parent.
pub(super) fn item(key: UnitKey) -> i32 {
    key.item.map_or(-1, |i| i as i32)
}

pub(super) fn unit_key(step: i32, item: i32) -> UnitKey {
    UnitKey {
        step: step as u32,
        item: u32::try_from(item).ok(),
    }
}

/// Milliseconds as a `bigint`.
pub(super) fn millis(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

pub(super) fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialise to JSON")
}

pub(super) fn decode<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn digest(bytes: &[u8]) -> Result<Digest, StoreError> {
    Digest::from_slice(bytes).ok_or_else(|| StoreError::Corrupt(format!("a digest of {} bytes", bytes.len())))
}
