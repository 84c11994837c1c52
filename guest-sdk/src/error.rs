//! The error a task returns.

use std::fmt;

/// Why a task failed, and whether another attempt could succeed.
///
/// The `code` is short and stable (`card_declined`, `out_of_stock`):
/// workflows branch and retry policies filter on it. The `message` is for
/// people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// A short, stable, machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Whether the engine may try again.
    pub retryable: bool,
}

impl TaskError {
    /// A failure that another attempt would not fix (bad input, a business
    /// rule said no). The step fails without retrying.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// A transient failure (a dependency timed out, a lock was busy). The
    /// engine retries it under the step's retry policy.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError {
            retryable: true,
            ..TaskError::new(code, message)
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for TaskError {}
