//! Writing the audit trail: every mutating request that passed
//! authentication — who (key id and role, or the server admin), what
//! (method, route, path), from where, when, and how it ended — appended
//! to its tenant's trail, or for the admin's requests to the server's.
//! Called by the guards (`auth.rs`) once the handler has answered, and
//! written through the store's group commit; never a body, a token, a
//! query string or a secret's value. `audit.rs` reads it back.
//!
//! Entries are named so that names sort newest first (the time, counted
//! down, then random bits), and a page resumes after the last name.

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::model::Millis;
use crate::roles::Role;
use crate::store::{Change, ObjectKind};

/// The trail of the server admin's requests.
pub const SERVER: &str = "_server";
/// Bits of randomness under the time in an entry's id.
const RANDOM_BITS: u32 = 21;
/// Times count down from here (ms since the epoch; the year 2109).
const LATEST: u64 = (1 << 42) - 1;

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A tenant's API key.
    Key,
    /// The server admin token.
    Admin,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx or 3xx answer.
    Ok,
    /// Refused: the role lacks the permission (403).
    Refused,
    /// Any other 4xx or 5xx answer.
    Failed,
}

/// One entry of a trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Its id; entries are listed newest first by it.
    pub id: String,
    /// When the answer was given (ms since the epoch).
    pub at: Millis,
    /// Who.
    pub actor: ActorKind,
    /// The key's id, for a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub key_id: Option<String>,
    /// The key's role, for a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub role: Option<Role>,
    /// The method.
    pub method: String,
    /// The route: the path with its parameters named
    /// (`/v1/runs/{id}/cancel`).
    pub route: String,
    /// The path requested (the resource), without the query.
    pub path: String,
    /// The answer's status.
    pub status: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// The address the request came from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub address: Option<String>,
}

/// What a guard knows of a request before its handler runs.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) actor: ActorKind,
    pub(super) key_id: Option<String>,
    pub(super) role: Option<Role>,
    pub(super) method: String,
    pub(super) route: String,
    pub(super) path: String,
    pub(super) address: Option<String>,
}

/// Whether requests of `method` are audited.
pub(super) fn audited(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Appends the entry of `pending`, answered `status`, to `trail`. A
/// failure to write is logged: the request's own answer stands.
pub(super) async fn record(state: &ApiState, trail: &str, pending: Pending, status: StatusCode) {
    let at = state.engine.now();
    let id = ((LATEST.saturating_sub(at)) << RANDOM_BITS) | (rand::random::<u64>() & ((1 << RANDOM_BITS) - 1));
    let name = format!("{id:019}");
    let outcome = match status.as_u16() {
        0..400 => Outcome::Ok,
        403 => Outcome::Refused,
        _ => Outcome::Failed,
    };
    let entry = AuditEntry {
        id: name.clone(),
        at,
        actor: pending.actor,
        key_id: pending.key_id,
        role: pending.role,
        method: pending.method,
        route: pending.route,
        path: pending.path,
        status: status.as_u16(),
        outcome,
        address: pending.address,
    };
    let value = serde_json::to_value(&entry).expect("an audit entry is JSON");
    let change = Change::InsertObject {
        kind: ObjectKind::Audit,
        tenant: trail.to_string(),
        name,
        value,
    };
    if let Err(e) = state.store.commit(vec![change]).await {
        tracing::error!(error = %e, trail, route = %entry.route, "an audit entry could not be written");
    }
}
