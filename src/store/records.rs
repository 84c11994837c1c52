//! Every record a store holds, as a backend-neutral value: what `weft
//! migrate` copies, `weft check` inspects, and a checksum sums.
//!
//! A backend reads its tables a page at a time ([`Store::export_page`]),
//! in its own key order, resuming after an opaque [`Cursor`]; a record
//! that does not decode comes back as a [`Corrupt`] in its place, so one
//! bad record neither stops a copy nor hides the rest from a check. It
//! writes records back verbatim with [`Store::import`].
//!
//! [`Store::export_page`]: super::Store::export_page
//! [`Store::import`]: super::Store::import

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Keycheck, SecretRecord, StoredObject};
use crate::digest::Digest;
use crate::model::{AttemptRecord, Event, ModuleRecord, RunId, RunRecord, UnitKey, UnitRecord, WorkflowVersion};
use crate::tenant::{KeyRecord, TenantRecord};

/// A kind of record; copies go table by table in this order, so a record
/// never arrives before what it refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Tenants.
    Tenants,
    /// API keys.
    Keys,
    /// Module bytes, per tenant.
    ModuleBytes,
    /// Module versions.
    ModuleVersions,
    /// Which version a module name means.
    ModuleNames,
    /// Workflow documents.
    Workflows,
    /// Workflow versions.
    WorkflowVersions,
    /// Which version a workflow name means.
    WorkflowNames,
    /// Runs.
    Runs,
    /// Units (steps and items) of runs.
    Units,
    /// Finished attempts.
    Attempts,
    /// Run histories.
    Events,
    /// Tenants' kv entries.
    Kv,
    /// Idempotency keys.
    IdempotencyKeys,
    /// Tenants' sealed secrets.
    Secrets,
    /// The master key's check record.
    Keycheck,
    /// Schedules, hooks and notification deliveries.
    Objects,
}

impl Table {
    /// Every table, in copy order.
    pub const ALL: [Table; 17] = [
        Table::Tenants,
        Table::Keys,
        Table::ModuleBytes,
        Table::ModuleVersions,
        Table::ModuleNames,
        Table::Workflows,
        Table::WorkflowVersions,
        Table::WorkflowNames,
        Table::Runs,
        Table::Units,
        Table::Attempts,
        Table::Events,
        Table::Kv,
        Table::IdempotencyKeys,
        Table::Secrets,
        Table::Keycheck,
        Table::Objects,
    ];

    /// Its name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Keys => "api_keys",
            Table::ModuleBytes => "module_bytes",
            Table::ModuleVersions => "module_versions",
            Table::ModuleNames => "module_names",
            Table::Workflows => "workflows",
            Table::WorkflowVersions => "workflow_versions",
            Table::WorkflowNames => "workflow_names",
            Table::Runs => "runs",
            Table::Units => "units",
            Table::Attempts => "attempts",
            Table::Events => "events",
            Table::Kv => "kv",
            Table::IdempotencyKeys => "idempotency_keys",
            Table::Secrets => "secrets",
            Table::Keycheck => "keycheck",
            Table::Objects => "objects",
        }
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum Record {
    /// A tenant.
    Tenant(TenantRecord),
    /// An API key.
    Key(KeyRecord),
    /// A module's bytes, as a tenant uploaded them.
    ModuleBytes {
        /// The tenant.
        tenant: String,
        /// Their digest.
        digest: Digest,
        /// The component.
        bytes: Vec<u8>,
    },
    /// A version of a tenant's module.
    ModuleVersion {
        /// The tenant.
        tenant: String,
        /// The version.
        record: ModuleRecord,
    },
    /// The digest a module name means now.
    ModuleName {
        /// The tenant.
        tenant: String,
        /// The module's name.
        name: String,
        /// Its newest version's digest.
        digest: Digest,
    },
    /// A workflow document.
    Workflow {
        /// The tenant.
        tenant: String,
        /// Digest of the text.
        digest: Digest,
        /// The text.
        source: String,
    },
    /// A version of a tenant's workflow.
    WorkflowVersion {
        /// The tenant.
        tenant: String,
        /// The workflow's name.
        name: String,
        /// The version.
        version: WorkflowVersion,
    },
    /// The digest a workflow name means now.
    WorkflowName {
        /// The tenant.
        tenant: String,
        /// The workflow's name.
        name: String,
        /// Its newest definition's digest.
        digest: Digest,
    },
    /// A run.
    Run(RunRecord),
    /// A unit of a run.
    Unit {
        /// The tenant.
        tenant: String,
        /// The run.
        run: RunId,
        /// Which unit.
        key: UnitKey,
        /// Its state.
        record: UnitRecord,
    },
    /// A finished attempt.
    Attempt {
        /// The tenant.
        tenant: String,
        /// The run.
        run: RunId,
        /// Which unit.
        key: UnitKey,
        /// The attempt.
        record: AttemptRecord,
    },
    /// An event of a run's history.
    Event {
        /// The tenant.
        tenant: String,
        /// The run.
        run: RunId,
        /// Its position.
        seq: u32,
        /// What happened.
        event: Event,
    },
    /// A kv entry.
    Kv {
        /// The tenant.
        tenant: String,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// An idempotency key.
    IdempotencyKey {
        /// The tenant.
        tenant: String,
        /// The key.
        key: String,
        /// The run it started.
        run: RunId,
    },
    /// A sealed secret, copied as it is (never opened).
    Secret(SecretRecord),
    /// The master key's check record.
    Keycheck(Keycheck),
    /// A schedule, hook or delivery.
    Object(StoredObject),
}

impl Record {
    /// The table it belongs to.
    pub fn table(&self) -> Table {
        match self {
            Record::Tenant(_) => Table::Tenants,
            Record::Key(_) => Table::Keys,
            Record::ModuleBytes { .. } => Table::ModuleBytes,
            Record::ModuleVersion { .. } => Table::ModuleVersions,
            Record::ModuleName { .. } => Table::ModuleNames,
            Record::Workflow { .. } => Table::Workflows,
            Record::WorkflowVersion { .. } => Table::WorkflowVersions,
            Record::WorkflowName { .. } => Table::WorkflowNames,
            Record::Run(_) => Table::Runs,
            Record::Unit { .. } => Table::Units,
            Record::Attempt { .. } => Table::Attempts,
            Record::Event { .. } => Table::Events,
            Record::Kv { .. } => Table::Kv,
            Record::IdempotencyKey { .. } => Table::IdempotencyKeys,
            Record::Secret(_) => Table::Secrets,
            Record::Keycheck(_) => Table::Keycheck,
            Record::Object(_) => Table::Objects,
        }
    }

    /// A digest of its content, the same whichever backend it was read
    /// from: SHA-256 of its JSON (whose maps have sorted keys).
    pub fn content_digest(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).expect("records serialise to JSON");
        Sha256::digest(json).into()
    }
}

/// A record that is stored but does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// Where it is.
    pub table: Table,
    /// Its key, as the backend shows it.
    pub key: String,
    /// Why it does not decode.
    pub error: String,
}

/// Where the next page of a table starts: the backend's own key of the
/// last record of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub serde_json::Value);

/// Records of one table, in key order.
#[derive(Debug, Default)]
pub struct Page {
    /// The records, a corrupt one in its place.
    pub records: Vec<Result<Record, Corrupt>>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<Cursor>,
}

/// Per-table counts and an order-independent checksum of a store's
/// content: equal for two stores holding the same records, whatever their
/// backends and key orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Per table: records, and the sum of their content digests.
    pub tables: std::collections::BTreeMap<Table, (u64, u128)>,
}

impl Tally {
    /// Counts `record`.
    pub fn add(&mut self, record: &Record) {
        let digest = record.content_digest();
        let low = u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"));
        let entry = self.tables.entry(record.table()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.wrapping_add(low);
    }

    /// The checksum over every table, hex.
    pub fn checksum(&self) -> String {
        let mut hash = Sha256::new();
        for (table, (count, sum)) in &self.tables {
            hash.update(table.name().as_bytes());
            hash.update(count.to_le_bytes());
            hash.update(sum.to_le_bytes());
        }
        hex::encode(&hash.finalize()[..16])
    }

    /// Records in `table`.
    pub fn count(&self, table: Table) -> u64 {
        self.tables.get(&table).map_or(0, |(n, _)| *n)
    }
}
