//! The identity of the attempt being run.

use crate::__private::bindings::weft::task::context as wit;

/// Which tenant, workflow, run, step and attempt this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The tenant that owns the run.
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// The run's id.
    pub run_id: String,
    /// The step's id within the workflow.
    pub step_id: String,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// For a `for_each` step, the index of this attempt's item.
    pub item_index: Option<u32>,
}

/// Returns the identity of the current attempt.
pub fn context() -> Context {
    let info = wit::current();
    Context {
        tenant: info.tenant,
        workflow: info.workflow,
        run_id: info.run_id,
        step_id: info.step_id,
        attempt: info.attempt,
        item_index: info.item_index,
    }
}
