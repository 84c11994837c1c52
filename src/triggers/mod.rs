//! What starts runs besides a caller's request: schedules (cron, in a
//! time zone), fired by every node's scheduler loop with exactly one run
//! per instant; and inbound hooks, requests signed with a tenant's secret
//! whose body a CEL mapping turns into a run's input (docs/architecture.md,
//! "Schedules, inbound hooks and notifications").

pub mod hook;
pub mod mapping;
pub mod schedule;
pub mod scheduler;
pub mod signature;

use serde_json::{Map, Value};

use crate::engine::StartRun;
use crate::model::AttemptCaps;
use crate::tenant::TenantRecord;

/// The start of a run of `workflow` for `tenant`, under its quotas,
/// keyed by `key`: what a request, a schedule's fire and a hook's
/// delivery ask the engine.
pub fn start_request(
    tenant: &TenantRecord,
    workflow: &str,
    input: Map<String, Value>,
    key: Option<String>,
) -> StartRun {
    StartRun {
        tenant: tenant.id.clone(),
        workflow: workflow.to_string(),
        input: Value::Object(input),
        priority: 0,
        idempotency_key: key,
        caps: Some(AttemptCaps {
            fuel: tenant.quotas.max_fuel,
            memory: tenant.quotas.max_memory,
            concurrent_attempts: tenant.quotas.max_concurrent_attempts,
        }),
        max_active: Some(tenant.quotas.max_concurrent_runs),
        parent: None,
    }
}
