//! Workflow documents: parse YAML or JSON (one schema, one parser: JSON is
//! YAML), check everything, and compile into a [`Workflow`] the scheduler
//! can run without parsing anything again.
//!
//! Structural problems (YAML syntax, an unknown field, a wrong type) stop
//! parsing at the first one, since what follows cannot be read reliably;
//! every other problem (ids, needs, cycles, expressions, durations, sizes,
//! limits, the input schema) is reported, all of them at once. Each carries
//! its path and line/column.
//!
//! Hostile documents are refused cheaply: a size cap before parsing, and a
//! parse budget (nesting depth, node count, aliases, scalar bytes) during.

mod document;
mod error;
pub mod expr;
mod http;
mod kind;
pub mod notify;
mod plan;
mod validate;

use std::time::Duration;

pub use document::Document;
pub use error::{SpecError, SpecErrors};
pub use expr::{EvalError, Expr, Scope, Template};
pub use http::{HeaderRule, HttpCaps, Piece, StepHttp, is_secret_name};
pub(crate) use kind::parse_time;
pub use plan::{Approval, IfNeedsSkipped, Jitter, OnFailure, RetryPolicy, Step, StepKind, TaskRef, Workflow};

use crate::sandbox::Limits;

/// What the server allows documents to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecConfig {
    /// Limits of steps that do not set their own.
    pub default_limits: Limits,
    /// The most any step may ask for.
    pub max_limits: Limits,
    /// The most steps in one workflow.
    pub max_steps: usize,
    /// The largest document, in bytes.
    pub max_document_bytes: usize,
    /// What steps' outbound HTTP may ask for.
    pub http: HttpCaps,
}

impl Default for SpecConfig {
    fn default() -> Self {
        SpecConfig {
            default_limits: Limits::default(),
            max_limits: Limits {
                fuel: 100_000_000_000,
                memory: 1 << 30,
                timeout: Duration::from_secs(24 * 3600),
                max_output: 16 << 20,
                max_log: 16 << 20,
            },
            max_steps: 1_000,
            max_document_bytes: 1 << 20,
            http: HttpCaps::default(),
        }
    }
}

/// Parses and checks a workflow document (YAML or JSON).
pub fn parse(text: &str, config: &SpecConfig) -> Result<Workflow, SpecErrors> {
    let doc = parse_document(text, config)?;
    validate::compile(doc, config).map_err(SpecErrors)
}

/// Parses a document without checking it beyond its structure.
pub fn parse_document(text: &str, config: &SpecConfig) -> Result<Document, SpecErrors> {
    if text.len() > config.max_document_bytes {
        let message = format!(
            "the document is {} bytes; the limit is {} bytes",
            text.len(),
            config.max_document_bytes
        );
        return Err(SpecErrors::one("", None, None, message));
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_total_scalar_bytes = config.max_document_bytes;
    let options = serde_saphyr::options! { budget: Some(budget) };
    serde_saphyr::from_str_with_options::<Document>(text, options).map_err(|e| {
        let location = e.location().filter(|l| l.line() > 0);
        let line = location.map(|l| l.line() as usize);
        let column = location.map(|l| l.column() as usize);
        SpecErrors::one("", line, column, plain_message(&e))
    })
}

/// The JSON Schema of the workflow document format.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Document)).expect("a schema is JSON")
}

/// serde-saphyr's message without its snippet or location prefix (the
/// location is reported separately).
fn plain_message(error: &serde_saphyr::Error) -> String {
    if let serde_saphyr::Error::SerdeUnknownField { field, expected, .. } = error.without_snippet() {
        return format!("unknown field `{field}`; expected one of {}", expected.join(", "));
    }
    let text = error.without_snippet().to_string();
    let text = text.lines().next().unwrap_or_default().trim();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    // "line 3 column 5: message" -> "message"
    let text = match text.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, message)) if position.contains(" column ") => message,
        _ => text,
    };
    // "... at line 5, column 12" -> "..."
    match text.rsplit_once(" at line ") {
        Some((message, position)) if position.contains(", column ") => message.to_string(),
        _ => text.to_string(),
    }
}
