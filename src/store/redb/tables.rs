//! Every redb table, in one place, and how values are encoded.
//!
//! Values are a format byte followed by JSON: readable when debugging,
//! tolerant of added fields, and versioned so the format can change.

use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// The schema this build reads and writes. Opening a database with another
/// version fails with a clear error instead of misreading it.
pub(crate) const SCHEMA_VERSION: u64 = 2;

/// `schema_version`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Module bytes by digest.
pub(crate) const MODULES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("modules");
/// (tenant, module name) → digest of its newest version.
pub(crate) const MODULE_NAMES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("module_names");
/// Workflow documents by digest of their text (immutable).
pub(crate) const WORKFLOWS: TableDefinition<&[u8], &str> = TableDefinition::new("workflows");
/// (tenant, workflow name) → digest of its newest definition.
pub(crate) const WORKFLOW_NAMES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("workflow_names");
/// Runs by id.
pub(crate) const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
/// Ids of runs that have not finished: what recovery resumes.
pub(crate) const ACTIVE: TableDefinition<u64, ()> = TableDefinition::new("active_runs");
/// (run, step, item or NO_ITEM) → unit.
pub(crate) const UNITS: TableDefinition<(u64, u32, u32), &[u8]> = TableDefinition::new("units");
/// (run, step, item or NO_ITEM, attempt) → finished attempt.
pub(crate) const ATTEMPTS: TableDefinition<(u64, u32, u32, u32), &[u8]> = TableDefinition::new("attempts");
/// (run, sequence) → event; append-only.
pub(crate) const EVENTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("events");
/// (tenant, key) → value.
pub(crate) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

/// Tenants by id.
pub(crate) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// API keys by key id (the secret only as a hash).
pub(crate) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// (tenant, module name, version) → module record.
pub(crate) const MODULE_VERSIONS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("module_versions");
/// (tenant, workflow name, version) → workflow version record.
pub(crate) const WORKFLOW_VERSIONS: TableDefinition<(&str, &str, u32), &[u8]> =
    TableDefinition::new("workflow_versions");
/// (tenant, run id): a tenant's runs, for listing them.
pub(crate) const TENANT_RUNS: TableDefinition<(&str, u64), ()> = TableDefinition::new("tenant_runs");
/// (tenant, idempotency key) → the run it started.
pub(crate) const IDEMPOTENCY: TableDefinition<(&str, &str), u64> = TableDefinition::new("idempotency_keys");
/// (tenant, secret name) → sealed secret (`SecretRecord`).
pub(crate) const SECRETS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("secrets");
/// `keycheck` → the master key's check record (`Keycheck`); one entry.
pub(crate) const KEYCHECK: TableDefinition<&str, &[u8]> = TableDefinition::new("keycheck");
/// (kind, tenant, name) → a named record (`objects::Body`).
pub(crate) const OBJECTS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("objects");
/// The one key of [`KEYCHECK`].
pub(crate) const KEYCHECK_KEY: &str = "keycheck";

/// The item slot of a unit that is not a fan-out item.
pub(crate) const NO_ITEM: u32 = u32::MAX;

const FORMAT_JSON: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_JSON];
    serde_json::to_writer(&mut bytes, value).expect("records serialise to JSON");
    bytes
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_JSON, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
        }
        Some((format, _)) => Err(StoreError::Corrupt(format!("{what}: unknown record format {format}"))),
        None => Err(StoreError::Corrupt(format!("{what}: empty record"))),
    }
}
