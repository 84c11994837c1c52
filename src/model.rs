//! The engine's vocabulary: ids, run and step states, and the records that
//! are stored. No I/O, no wasmtime, no redb: plain data with serde.
//!
//! A run's steps are made of *units*: a plain step is one unit; a
//! `for_each` step is a parent unit plus one unit per item. Units are what
//! the scheduler queues, runs, retries and records.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::sandbox::{AttemptLogs, Outcome};

/// A run's id: unique in its database, increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Where a unit sits in its run: the step's index, and the item's index for
/// a `for_each` item (`None` for a plain step or a fan-out's parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitKey {
    /// The step's index in the workflow.
    pub step: u32,
    /// The item's index, for `for_each` items.
    pub item: Option<u32>,
}

impl UnitKey {
    /// A plain step (or a fan-out's parent).
    pub fn step(step: usize) -> UnitKey {
        UnitKey {
            step: step as u32,
            item: None,
        }
    }

    /// Item `item` of fan-out step `step`.
    pub fn item(step: usize, item: usize) -> UnitKey {
        UnitKey {
            step: step as u32,
            item: Some(item as u32),
        }
    }
}

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Steps are running or will run.
    Running,
    /// Every step that should run succeeded; the output is set.
    Succeeded,
    /// A step failed for good; compensations have run; the error is set.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        })
    }
}

/// How a step (or a `for_each` item) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Waiting for its needs (or, for a compensation, for a failure).
    Pending,
    /// Queued to run.
    Ready,
    /// An attempt is running (a fan-out parent: its items are).
    Running,
    /// Waiting for a retry timer.
    Retrying,
    /// A wait step waiting: for its timer (a sleep, or a signal's
    /// timeout, at `due`), or for a signal.
    Waiting,
    /// Done, with output.
    Succeeded,
    /// Failed for good, with an error.
    Failed,
    /// Not run: its condition was false, or a need was skipped.
    Skipped,
    /// Not run, or stopped, because the run was cancelled or failed.
    Cancelled,
}

impl UnitStatus {
    /// Whether the unit will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            UnitStatus::Succeeded | UnitStatus::Failed | UnitStatus::Skipped | UnitStatus::Cancelled
        )
    }
}

impl fmt::Display for UnitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        f.write_str(text.as_deref().unwrap_or("?"))
    }
}

/// Why a unit or a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// A stable code: the task's error code, or the outcome (`timeout`,
    /// `out_of_fuel`, ...), or an engine code (`expression_error`, ...).
    pub code: String,
    /// What happened.
    pub message: String,
    /// The step it happened in, for a run's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub step: Option<String>,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            code: code.into(),
            message: message.into(),
            step: None,
        }
    }

    /// The failure an attempt's outcome stands for.
    pub fn from_outcome(outcome: &Outcome) -> Failure {
        match outcome {
            Outcome::GuestError { code, message, .. } => Failure::new(code.clone(), message.clone()),
            Outcome::Trap { message } => Failure::new("trap", message.clone()),
            Outcome::InvalidOutput { reason } => Failure::new("invalid_output", reason.clone()),
            Outcome::OutOfFuel => Failure::new("out_of_fuel", "the attempt used all of its fuel"),
            Outcome::MemoryLimit => Failure::new("memory_limit", "the attempt needed more memory than its limit"),
            Outcome::Timeout => Failure::new("timeout", "the attempt ran past its timeout"),
            Outcome::Ok { .. } => Failure::new("ok", "not a failure"),
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// The tenant that owns it.
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// The exact definition it runs (pinned at start).
    pub workflow_digest: Digest,
    /// The exact module each step runs, by step index (pinned at start).
    pub modules: Vec<Digest>,
    /// Its input.
    pub input: Value,
    /// Higher runs first.
    pub priority: i32,
    /// How it stands.
    pub status: RunStatus,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// The error, once failed.
    pub error: Option<Failure>,
    /// When it was created.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// The most fuel and memory any attempt of this run may use: the
    /// tenant's quota when the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<AttemptCaps>,
    /// Signals received before the step that reads them waited, oldest
    /// first; each is taken by the first step to wait for its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<KeptSignal>,
    /// The ids of the signals delivered with one, so a repeat does nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signal_ids: Vec<String>,
    /// Paused: no new attempt starts until it is resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Signals accepted in all (at most [`MAX_SIGNALS`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub signals_received: u32,
    /// The run and step that started this one, for a sub-workflow's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
}

/// Where a child run comes from: a `workflow` step of another run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParentLink {
    /// The parent run.
    #[schema(value_type = u64)]
    pub run: RunId,
    /// The parent's step that waits for this run.
    pub step: String,
    /// How deep it is nested: 1 for a child of a top-level run.
    pub depth: u32,
}

/// The deepest sub-workflows nest.
pub const MAX_DEPTH: u32 = 8;

/// The most signals one run accepts.
pub const MAX_SIGNALS: u32 = 1_000;

/// A signal no step has taken yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptSignal {
    /// Its name.
    pub name: String,
    /// Its payload, the output of the step that takes it.
    pub payload: Value,
}

/// Upper bounds on an attempt's limits, whatever its step asks for, and
/// on how many of its tenant's attempts run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptCaps {
    /// Fuel.
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory: u64,
    /// The tenant's attempts running at once, on one node (0: no cap but
    /// the node's slots).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub concurrent_attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One stored version of a tenant's module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleRecord {
    /// The module's name.
    pub name: String,
    /// The version: given at upload, or the digest's first 12 hex digits.
    pub version: String,
    /// `sha256:<hex>` of the bytes.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// What the component imports (interface names).
    pub imports: Vec<String>,
    /// When it was uploaded (ms since the epoch).
    #[schema(value_type = u64)]
    pub created_at: Millis,
}

impl ModuleRecord {
    /// A version of `name` holding `bytes`, labelled by their digest.
    pub fn of(name: &str, bytes: &[u8], imports: Vec<String>, at: Millis) -> ModuleRecord {
        let digest = Digest::of(bytes);
        ModuleRecord {
            name: name.into(),
            version: digest.short(),
            digest,
            size: bytes.len() as u64,
            imports,
            created_at: at,
        }
    }
}

/// One stored definition of a tenant's workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowVersion {
    /// 1 for the first definition pushed, then counting up.
    pub version: u32,
    /// `sha256:<hex>` of the document's text.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// When it was pushed (ms since the epoch).
    #[schema(value_type = u64)]
    pub created_at: Millis,
}

/// A unit as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// How it stands.
    pub status: UnitStatus,
    /// Attempts finished so far.
    pub attempts: u32,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// The last error.
    pub error: Option<Failure>,
    /// When the retry timer fires, while `Retrying`; when the wait ends
    /// (a sleep) or times out (a signal), while `Waiting`.
    pub due: Option<Millis>,
    /// For a fan-out parent: how many items it has (once expanded).
    pub items: Option<u32>,
    /// When its wait began, while `Waiting` for a decision or a child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Millis>,
    /// The child run a `workflow` step started (its latest attempt's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<RunId>,
}

impl UnitRecord {
    /// A unit that has not started.
    pub fn pending() -> UnitRecord {
        UnitRecord {
            status: UnitStatus::Pending,
            attempts: 0,
            output: None,
            error: None,
            due: None,
            items: None,
            since: None,
            child: None,
        }
    }
}

/// One finished attempt as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Fuel it used.
    pub fuel_used: u64,
    /// When it started.
    pub started_at: Millis,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// What it logged.
    pub logs: AttemptLogs,
    /// Its outbound HTTP requests, refused ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<crate::sandbox::http::HttpCall>,
    /// The node that ran it (its `--node-id`) when the store is shared by
    /// a cluster (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One entry of a run's history, appended and never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at: Millis,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run was created.
    RunStarted,
    /// The run was retried from its failed steps.
    RunRetried,
    /// The run was reset: it runs again from this step (and what the
    /// run's retry would run); earlier attempts stay in its history.
    RunReset {
        /// The step it runs again from.
        from: String,
    },
    /// The run was paused: no new attempt starts.
    RunPaused,
    /// The run was resumed.
    RunResumed,
    /// An attempt finished.
    AttemptFinished {
        /// The step's id.
        step: String,
        /// The item, for fan-out items.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false)]
        item: Option<u32>,
        /// Which attempt.
        attempt: u32,
        /// Its outcome's kind (`ok`, `guest_error`, `timeout`, ...).
        #[schema(schema_with = Outcome::kind_schema)]
        outcome: String,
        /// How long it ran, in microseconds.
        duration_us: u64,
        /// Fuel the attempt burned.
        #[serde(default)]
        fuel_used: u64,
        /// Its outbound HTTP requests, counted (the requests themselves are
        /// in the attempt's record).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false, nullable = false)]
        http: Option<HttpTally>,
    },
    /// A retry was scheduled.
    RetryScheduled {
        /// The step's id.
        step: String,
        /// The item, for fan-out items.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false)]
        item: Option<u32>,
        /// When it will run.
        #[schema(value_type = u64)]
        due: Millis,
    },
    /// A wait step began waiting.
    Waiting {
        /// The step's id.
        step: String,
        /// When the wait ends (a sleep) or times out (a signal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<u64>, required = false)]
        until: Option<Millis>,
        /// The signal it waits for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false)]
        signal: Option<String>,
    },
    /// A signal was accepted: taken by the step waiting for it, or kept
    /// for the step that will.
    SignalReceived {
        /// The signal's name.
        signal: String,
        /// The id it was sent with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false)]
        id: Option<String>,
        /// The step that took it; absent when it was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false)]
        step: Option<String>,
    },
    /// Nobody decided an approval in time: its escalation targets may
    /// decide too, from now on.
    ApprovalEscalated {
        /// The step's id.
        step: String,
        /// Who may decide now, besides its approvers.
        to: Vec<String>,
    },
    /// A `workflow` step started its child run.
    ChildStarted {
        /// The step's id.
        step: String,
        /// The child run.
        #[schema(value_type = u64)]
        run: RunId,
    },
    /// An approval was decided.
    ApprovalDecided {
        /// The step's id.
        step: String,
        /// Approved (`true`) or rejected.
        approved: bool,
        /// Who decided, as they named themselves.
        by: String,
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(required = false)]
        comment: Option<String>,
    },
    /// A step reached a final status.
    StepFinished {
        /// The step's id.
        step: String,
        /// Its status.
        status: UnitStatus,
    },
    /// The run ended.
    RunFinished {
        /// Its status.
        status: RunStatus,
    },
}

impl EventKind {
    /// The kind's name, as in the `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::RunRetried => "run_retried",
            EventKind::RunReset { .. } => "run_reset",
            EventKind::RunPaused => "run_paused",
            EventKind::RunResumed => "run_resumed",
            EventKind::AttemptFinished { .. } => "attempt_finished",
            EventKind::RetryScheduled { .. } => "retry_scheduled",
            EventKind::Waiting { .. } => "waiting",
            EventKind::SignalReceived { .. } => "signal_received",
            EventKind::ApprovalEscalated { .. } => "approval_escalated",
            EventKind::ApprovalDecided { .. } => "approval_decided",
            EventKind::ChildStarted { .. } => "child_started",
            EventKind::StepFinished { .. } => "step_finished",
            EventKind::RunFinished { .. } => "run_finished",
        }
    }
}

/// An attempt's outbound HTTP requests, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HttpTally {
    /// Requests that got an answer and read it without error.
    pub ok: u32,
    /// Requests the host refused (the allow-list, an address, a cap).
    pub refused: u32,
    /// Requests that failed on the way (connection, timeout, a cap
    /// reached mid-body).
    pub failed: u32,
    /// Body bytes sent.
    pub sent: u64,
    /// Body bytes received.
    pub received: u64,
}

impl HttpTally {
    /// The tally of `calls`; `None` when there were none.
    pub fn of(calls: &[crate::sandbox::http::HttpCall]) -> Option<HttpTally> {
        if calls.is_empty() {
            return None;
        }
        let mut tally = HttpTally::default();
        for call in calls {
            match (&call.refused, &call.error) {
                (Some(_), _) => tally.refused += 1,
                (None, Some(_)) => tally.failed += 1,
                (None, None) => tally.ok += 1,
            }
            tally.sent += call.sent;
            tally.received += call.received;
        }
        Some(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_kind_is_named_as_it_is_tagged() {
        let kinds = [
            EventKind::RunStarted,
            EventKind::RunRetried,
            EventKind::RunReset { from: "s".into() },
            EventKind::RunPaused,
            EventKind::RunResumed,
            EventKind::AttemptFinished {
                step: "s".into(),
                item: None,
                attempt: 1,
                outcome: "ok".into(),
                duration_us: 1,
                fuel_used: 1,
                http: None,
            },
            EventKind::RetryScheduled {
                step: "s".into(),
                item: None,
                due: 1,
            },
            EventKind::StepFinished {
                step: "s".into(),
                status: UnitStatus::Succeeded,
            },
            EventKind::RunFinished {
                status: RunStatus::Succeeded,
            },
        ];
        for kind in kinds {
            assert_eq!(serde_json::to_value(&kind).unwrap()["event"], kind.name());
        }
    }
}
