//! Outbound notifications (docs/architecture.md, "Schedules, inbound
//! hooks and notifications"): when a run ends, or an approval escalates,
//! and its workflow's `notify:` asks for it, weft POSTs a signed JSON
//! message to the target, at least once.
//!
//! The message is written as an outbox record in the same commit as the
//! event it tells of ([`changes`]), so nothing is told that did not
//! happen and nothing that happened is forgotten by a crash. Every node's
//! delivery loop (`deliver.rs`) claims due records with a compare-and-set
//! and POSTs them (`client.rs`); each try is recorded on the delivery,
//! which `GET /v1/runs/{id}/notifications` shows.

pub mod client;
pub mod deliver;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Event, EventKind, Failure, Millis, RunRecord};
use crate::spec::Workflow;
use crate::store::{Change, ObjectKind};

/// How a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_at`.
    Pending,
    /// A try was answered 2xx.
    Delivered,
    /// Every try failed; no more are made.
    Failed,
}

/// One try to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    /// When it was made (ms since the epoch).
    pub at: Millis,
    /// The answer's status code, if one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub code: Option<u16>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// A notification and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// `RUN/SEQ/TARGET`: the run, its event's number, the target's index
    /// in `notify:`. Sent as `X-Weft-Delivery`, so a receiver can drop a
    /// message it has had (delivery is at least once).
    pub id: String,
    /// What it tells of: `run.succeeded`, `run.failed`, `run.cancelled`
    /// or `approval.escalated`.
    pub event: String,
    /// Where it goes.
    pub url: String,
    /// The tenant secret that signs it.
    pub secret: String,
    /// The JSON body sent.
    pub payload: Value,
    /// How it stands.
    pub status: DeliveryStatus,
    /// Every try, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// When it was written (with its event).
    pub created_at: Millis,
    /// When the next try is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub next_at: Option<Millis>,
}

/// What the outbox keeps of a pending delivery: when it is next due (or,
/// while a node holds it, when that node's claim runs out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// ms since the epoch.
    pub due: Millis,
}

/// What the message calls an event, if notifications tell of it.
fn event_name(kind: &EventKind) -> Option<&'static str> {
    match kind {
        EventKind::RunFinished { status } => Some(match status {
            crate::model::RunStatus::Succeeded => "run.succeeded",
            crate::model::RunStatus::Failed => "run.failed",
            crate::model::RunStatus::Cancelled => "run.cancelled",
            crate::model::RunStatus::Running => return None,
        }),
        EventKind::ApprovalEscalated { .. } => Some("approval.escalated"),
        _ => None,
    }
}

/// The outbox records `event` (number `seq` of `run`) adds, one per
/// target of `workflow` that wants it: written in the event's batch.
pub fn changes(workflow: &Workflow, run: &RunRecord, seq: u32, event: &Event) -> Vec<Change> {
    if workflow.notify.is_empty() {
        return Vec::new();
    }
    let Some(name) = event_name(&event.kind) else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for (index, target) in workflow.notify.iter().enumerate() {
        if !target.wants(&event.kind) {
            continue;
        }
        let id = format!("{}/{seq}/{index}", run.id.0);
        let delivery = Delivery {
            id: id.clone(),
            event: name.to_string(),
            url: target.url.clone(),
            secret: target.secret.clone(),
            payload: payload(&id, name, run, event),
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            created_at: event.at,
            next_at: Some(event.at),
        };
        let value = serde_json::to_value(&delivery).expect("deliveries serialise to JSON");
        changes.push(Change::InsertObject {
            kind: ObjectKind::Delivery,
            tenant: run.tenant.clone(),
            name: id.clone(),
            value,
        });
        changes.push(Change::InsertObject {
            kind: ObjectKind::Outbox,
            tenant: run.tenant.clone(),
            name: id,
            value: json!(Due { due: event.at }),
        });
    }
    changes
}

/// The message's body.
fn payload(id: &str, name: &str, run: &RunRecord, event: &Event) -> Value {
    let mut body = json!({
        "id": id,
        "type": name,
        "tenant": run.tenant,
        "run": run.id.0,
        "workflow": run.workflow,
        "at": event.at,
    });
    match &event.kind {
        EventKind::RunFinished { status } => {
            body["status"] = json!(status);
            if let Some(Failure { code, message, step }) = &run.error {
                body["error"] = json!({"code": code, "message": message, "step": step});
            }
        }
        EventKind::ApprovalEscalated { step, to } => {
            body["step"] = json!(step);
            body["to"] = json!(to);
        }
        _ => {}
    }
    body
}
