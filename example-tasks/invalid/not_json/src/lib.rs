//! Implements the task world directly, without the SDK, and breaks its
//! contract: the output is not JSON. The host must classify the attempt
//! `invalid_output` (tasks need not be written with the SDK, or in Rust).

wit_bindgen::generate!({ path: "../../../wit", world: "task" });

struct NotJson;

impl Guest for NotJson {
    fn run(input: String) -> Result<String, weft::task::types::TaskError> {
        Ok(format!("this is not JSON: {input}"))
    }
}

export!(NotJson);
