//! Approval steps from outside the scheduler: deciding one (a message to
//! the scheduler, like a signal) and listing a tenant's pending ones (read
//! from the store, so any node of a cluster answers the same).

use serde::Serialize;
use tokio::sync::oneshot;

use super::actor::Msg;
use super::run_state::deciders;
use super::{Engine, EngineError};
use crate::model::{Millis, RunId, RunStatus, UnitKey, UnitStatus};
use crate::store::RunFilter;

/// A decision on an approval step.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The approval step's id.
    pub step: String,
    /// Approve (`true`) or reject.
    pub approve: bool,
    /// Who decides, as they name themselves.
    pub by: String,
    /// Why, if they say.
    pub comment: Option<String>,
}

/// An approval step waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingApproval {
    /// The run.
    #[schema(value_type = u64)]
    pub run: RunId,
    /// The run's workflow.
    pub workflow: String,
    /// The approval step's id.
    pub step: String,
    /// Who may decide now: its approvers, and once it escalated, the
    /// escalation's targets.
    pub deciders: Vec<String>,
    /// Whether it escalated.
    pub escalated: bool,
    /// When it escalates, if it has not yet (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>, required = false)]
    pub escalates_at: Option<Millis>,
    /// When it began waiting (ms since the epoch).
    #[schema(value_type = u64)]
    pub since: Millis,
    /// When it is rejected if nobody decides (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>, required = false)]
    pub expires_at: Option<Millis>,
}

/// The most running runs one listing of pending approvals reads.
pub const APPROVAL_SCAN_LIMIT: usize = 10_000;

impl Engine {
    /// Decides approval step `decision.step` of `run`; answers once the
    /// decision is durable.
    pub async fn decide(&self, run: RunId, decision: Decision) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Msg::Decide { run, decision, reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// `tenant`'s approval steps waiting for a decision, oldest run first:
    /// read from the store, over its newest [`APPROVAL_SCAN_LIMIT`]
    /// running runs.
    pub async fn pending_approvals(&self, tenant: &str) -> Result<Vec<PendingApproval>, EngineError> {
        let now = self.now();
        let mut pending = Vec::new();
        let mut filter = RunFilter {
            workflow: None,
            status: Some(RunStatus::Running),
            limit: 500,
            ..RunFilter::default()
        };
        let mut scanned = 0;
        loop {
            let (runs, next) = self.store.tenant_runs(tenant, &filter).await?;
            scanned += runs.len();
            for run in runs {
                let workflow = self.workflow(tenant, &run.workflow_digest).await?;
                if !workflow.steps.iter().any(|s| s.approval().is_some()) {
                    continue;
                }
                for (key, unit) in self.store.units(tenant, run.id).await? {
                    let Some(approval) = workflow.steps.get(key.step as usize).and_then(|s| s.approval()) else {
                        continue;
                    };
                    if key != UnitKey::step(key.step as usize) || unit.status != UnitStatus::Waiting {
                        continue;
                    }
                    let since = unit.since.unwrap_or(run.updated_at);
                    let at = |length: std::time::Duration| since.saturating_add(length.as_millis() as u64);
                    let escalates_at = approval.escalate.as_ref().map(|(after, _)| at(*after));
                    pending.push(PendingApproval {
                        run: run.id,
                        workflow: run.workflow.clone(),
                        step: workflow.steps[key.step as usize].id.clone(),
                        deciders: deciders(approval, since, now),
                        escalated: escalates_at.is_some_and(|at| now >= at),
                        escalates_at: escalates_at.filter(|at| now < *at),
                        since,
                        expires_at: approval.timeout.map(at),
                    });
                }
            }
            match next {
                Some(before) if scanned < APPROVAL_SCAN_LIMIT => filter.before = Some(before),
                _ => break,
            }
        }
        pending.sort_by_key(|p| (p.run, p.since));
        Ok(pending)
    }
}
