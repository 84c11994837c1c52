//! Fails with a retryable error on its first `fail_times` attempts, then
//! succeeds: shows retries and backoff.

use serde::{Deserialize, Serialize};
use weft_sdk::TaskError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "two")]
    fail_times: u32,
}

#[derive(Serialize)]
struct Output {
    succeeded_on_attempt: u32,
}

fn two() -> u32 {
    2
}

fn flaky(input: Input) -> Result<Output, TaskError> {
    let attempt = weft_sdk::context().attempt;
    if attempt <= input.fail_times {
        weft_sdk::warn!("attempt {attempt} fails on purpose");
        let message = format!("attempt {attempt} of {} planned failures", input.fail_times);
        return Err(TaskError::retryable("transient", message));
    }
    Ok(Output {
        succeeded_on_attempt: attempt,
    })
}

weft_sdk::export_task!(flaky);
