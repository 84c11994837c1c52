//! {{name}}: a weft task. It takes the step's input as JSON, does its work
//! and returns its output, or a `TaskError` that says whether another
//! attempt could succeed.

use serde::{Deserialize, Serialize};
use weft_sdk::TaskError;

/// The step's input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "world")]
    name: String,
}

/// The step's output.
#[derive(Serialize)]
struct Output {
    greeting: String,
    attempt: u32,
}

fn world() -> String {
    "world".into()
}

fn {{name}}(input: Input) -> Result<Output, TaskError> {
    if input.name.is_empty() {
        // Not worth another attempt: the same input fails the same way.
        return Err(TaskError::new("invalid_input", "name must not be empty"));
    }
    let attempt = weft_sdk::context().attempt;
    weft_sdk::info!("greeting {} (attempt {attempt})", input.name);
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
        attempt,
    })
}

weft_sdk::export_task!({{name}});
