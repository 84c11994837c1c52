//! Write weft tasks as plain Rust functions.
//!
//! A task is a function from a deserialisable input to a serialisable
//! output, exported with [`export_task!`]:
//!
//! ```ignore
//! use serde::{Deserialize, Serialize};
//! use weft_sdk::TaskError;
//!
//! #[derive(Deserialize)]
//! struct Input { name: String }
//!
//! #[derive(Serialize)]
//! struct Output { greeting: String }
//!
//! fn greet(input: Input) -> Result<Output, TaskError> {
//!     Ok(Output { greeting: format!("Hello, {}!", input.name) })
//! }
//!
//! weft_sdk::export_task!(greet);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm`
//! file in `target/wasm32-wasip2/release/` is the component to upload. See
//! `README.md` for the whole picture: logging ([`log`]), the attempt's
//! identity ([`context()`]), tenant-scoped state ([`kv`]), outbound HTTP
//! ([`http`]) and secrets ([`secrets`]).

mod context;
mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod secrets;

pub use context::{Context, context};
pub use error::TaskError;

/// Items the macros expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    /// The bindings generated from the single root `wit/` of the engine.
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "task",
            pub_export_macro: true,
            export_macro_name: "__export_task_world",
            default_bindings_module: "weft_sdk::__private::bindings",
        });
    }

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::TaskError;
    use bindings::weft::task::types::TaskError as WitTaskError;

    /// Decodes the JSON input, calls the task and encodes its output.
    pub fn dispatch<I, O, E>(input: &str, task: fn(I) -> Result<O, E>) -> Result<String, WitTaskError>
    where
        I: DeserializeOwned,
        O: Serialize,
        E: Into<TaskError>,
    {
        let input: I = serde_json::from_str(input).map_err(|e| {
            WitTaskError::from(TaskError::new(
                "invalid_input",
                format!("the input does not match what the task expects: {e}"),
            ))
        })?;
        let output = task(input).map_err(|e| WitTaskError::from(e.into()))?;
        serde_json::to_string(&output).map_err(|e| {
            WitTaskError::from(TaskError::new(
                "invalid_output",
                format!("the task's output cannot be encoded as JSON: {e}"),
            ))
        })
    }

    impl From<TaskError> for WitTaskError {
        fn from(e: TaskError) -> Self {
            WitTaskError {
                code: e.code,
                message: e.message,
                retryable: e.retryable,
            }
        }
    }
}

/// Exports a function as this component's weft task.
///
/// The function takes one argument, the step's input, of any type that
/// implements `serde::Deserialize`, and returns `Result<O, E>` where `O`
/// implements `serde::Serialize` and `E: Into<TaskError>`. An input that
/// does not decode ends the attempt with the non-retryable error code
/// `invalid_input`, naming the field that did not match.
///
/// Use it once per crate, at the top level.
#[macro_export]
macro_rules! export_task {
    ($task:path) => {
        #[doc(hidden)]
        pub struct __WeftTask;

        impl $crate::__private::bindings::Guest for __WeftTask {
            fn run(
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::bindings::weft::task::types::TaskError>
            {
                $crate::__private::dispatch(&input, $task)
            }
        }

        $crate::__private::bindings::__export_task_world!(__WeftTask);
    };
}
