//! Greets by name: the smallest useful task, and the benchmark's guest.

use serde::{Deserialize, Serialize};
use weft_sdk::TaskError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "world")]
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

fn world() -> String {
    "world".into()
}

fn hello(input: Input) -> Result<Output, TaskError> {
    if input.name.is_empty() {
        return Err(TaskError::new("invalid_input", "name must not be empty"));
    }
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
    })
}

weft_sdk::export_task!(hello);
