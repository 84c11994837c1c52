//! Small named records kept beside runs: schedules, inbound hooks, and
//! the notification deliveries with their outbox (docs/architecture.md,
//! "Schedules, inbound hooks and notifications").
//!
//! Each is a JSON value under (kind, tenant, name) with a revision that
//! every write moves on, so two nodes changing one record race safely: a
//! write may expect a revision ([`Expect`]) and is refused, changing
//! nothing, when the record has moved.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A schedule (`crate::engine::schedules`).
    Schedule,
    /// An inbound hook.
    Hook,
    /// A notification and what became of each try to deliver it, named
    /// `RUN/SEQ` after the event it tells of.
    Delivery,
    /// A delivery still to make, named as its delivery: the outbox the
    /// delivery loop reads.
    Outbox,
    /// An entry of the audit trail (`crate::api::audit`), named so that
    /// names sort newest first.
    Audit,
}

impl ObjectKind {
    /// Its name in storage.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Schedule => "schedule",
            ObjectKind::Hook => "hook",
            ObjectKind::Delivery => "delivery",
            ObjectKind::Outbox => "outbox",
            ObjectKind::Audit => "audit",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<ObjectKind> {
        [
            ObjectKind::Schedule,
            ObjectKind::Hook,
            ObjectKind::Delivery,
            ObjectKind::Outbox,
            ObjectKind::Audit,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    /// Whether records of this kind belong to a run (named `RUN/...`) and
    /// go when retention deletes it.
    pub fn of_runs(self) -> bool {
        matches!(self, ObjectKind::Delivery | ObjectKind::Outbox)
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    /// What it is.
    pub kind: ObjectKind,
    /// The tenant that owns it.
    pub tenant: String,
    /// Its name, unique per kind and tenant.
    pub name: String,
    /// 1 when first written, one more at every write.
    pub revision: u64,
    /// Its content.
    pub value: Value,
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything: the write always happens.
    Any,
    /// No record of that name.
    Absent,
    /// The record at this revision.
    Revision(u64),
}

/// The prefix of the names of `run`'s records of a run kind.
pub fn run_prefix(run: crate::model::RunId) -> String {
    format!("{}/", run.0)
}
