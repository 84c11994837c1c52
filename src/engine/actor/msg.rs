//! The scheduler's inbox: every message the engine handle, the attempts
//! it runs, the store's writer and the cluster send to the one task that
//! owns the runs (`super::Actor`).

use std::sync::Arc;

use tokio::sync::oneshot;

use super::After;
use crate::engine::run_state::{Delivery, StoredRun};
use crate::engine::runner::RunnerError;
use crate::engine::{EngineError, ReadyWork};
use crate::model::{Millis, RunId, RunRecord, UnitKey};
use crate::sandbox::AttemptReport;
use crate::spec::Workflow;
use crate::store::StoreError;
use crate::store::cluster::{Lease, Notice};

pub(crate) enum Msg {
    Start {
        record: Box<RunRecord>,
        workflow: Arc<Workflow>,
        idempotency_key: Option<String>,
        max_active: Option<u32>,
        reply: oneshot::Sender<Result<RunId, EngineError>>,
    },
    /// Retries an ended run, or resets it to run again `from` a step.
    Restart {
        run: RunId,
        from: Option<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Cancel {
        run: RunId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Pauses (`paused: true`) or resumes a run.
    Pause {
        run: RunId,
        paused: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Signal {
        run: RunId,
        name: String,
        id: Option<String>,
        payload: serde_json::Value,
        reply: oneshot::Sender<Result<Delivery, EngineError>>,
    },
    /// A child run a `workflow` step asked for started, or could not.
    ChildStarted {
        parent: RunId,
        key: UnitKey,
        result: Result<RunId, EngineError>,
    },
    /// A child run ended.
    ChildEnded {
        child: Box<RunRecord>,
    },
    /// Decides an approval step.
    Decide {
        run: RunId,
        decision: crate::engine::Decision,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Attempt {
        run: RunId,
        key: UnitKey,
        started_at: Millis,
        result: Result<AttemptReport, RunnerError>,
    },
    Committed {
        run: RunId,
        after: After,
        result: Result<(), StoreError>,
    },
    /// Answered once the run is not active (at once if it is not now),
    /// with its final record when it ended in this process.
    Watch {
        run: RunId,
        reply: oneshot::Sender<Option<RunRecord>>,
    },
    Drain {
        reply: oneshot::Sender<()>,
    },
    /// What is queued for a slot now, for a scrape of the metrics.
    Ready {
        reply: oneshot::Sender<ReadyWork>,
    },
    /// What the database told every node.
    Notice(Notice),
    /// The runs a claim leased to this node, read back.
    Adopt {
        adopted: Result<Vec<(StoredRun, Lease)>, StoreError>,
        /// How many it asked for.
        room: usize,
    },
    /// The cluster's answer to a request for attempt permits.
    Permits {
        tenant: Arc<str>,
        granted: Result<u32, StoreError>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}
