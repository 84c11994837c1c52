//! What an attempt came to, classified so the scheduler can decide from
//! the type, never from a message.

use serde::{Deserialize, Serialize};
use wasmtime::Trap;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The task returned output (JSON text, checked).
    Ok {
        /// The output, as JSON text.
        output: String,
    },
    /// The task returned its own error.
    GuestError {
        /// The task's error code.
        code: String,
        /// The task's message.
        message: String,
        /// Whether the task says another attempt could succeed.
        retryable: bool,
    },
    /// The task trapped: a panic, an out-of-bounds access, a stack
    /// overflow, an `exit` instead of a result.
    Trap {
        /// What trapped.
        message: String,
    },
    /// The attempt used all of its fuel.
    OutOfFuel,
    /// The task needed more memory than its limit.
    MemoryLimit,
    /// The attempt ran past its wall-clock limit.
    Timeout,
    /// The task returned output that breaks the contract: too large, or
    /// not JSON.
    InvalidOutput {
        /// What was wrong with it.
        reason: String,
    },
}

impl Outcome {
    /// Every outcome's name, as [`Outcome::kind`] gives them.
    pub const KINDS: [&str; 7] = [
        "ok",
        "guest_error",
        "trap",
        "out_of_fuel",
        "memory_limit",
        "timeout",
        "invalid_output",
    ];

    /// The schema of an outcome's name, for API documents.
    pub fn kind_schema() -> utoipa::openapi::schema::Object {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Outcome::KINDS))
            .build()
    }

    /// The outcome's name as stored and shown: `ok`, `guest_error`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::GuestError { .. } => "guest_error",
            Outcome::Trap { .. } => "trap",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::Timeout => "timeout",
            Outcome::InvalidOutput { .. } => "invalid_output",
        }
    }

    /// Whether the attempt succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// Whether another attempt may succeed, by default: the guest's word for
    /// its own errors, yes for a timeout (the cause may be outside the
    /// task), no for the rest, which recur with the same input and limits.
    pub fn is_retryable(&self) -> bool {
        match self {
            Outcome::GuestError { retryable, .. } => *retryable,
            Outcome::Timeout => true,
            Outcome::Ok { .. }
            | Outcome::Trap { .. }
            | Outcome::OutOfFuel
            | Outcome::MemoryLimit
            | Outcome::InvalidOutput { .. } => false,
        }
    }
}

/// The longest guest error code kept.
const MAX_CODE: usize = 128;
/// The longest guest error message kept.
const MAX_MESSAGE: usize = 8 << 10;

/// Classifies what the task returned.
pub(crate) fn returned(result: Result<String, (String, String, bool)>, max_output: u64) -> Outcome {
    match result {
        Ok(output) if output.len() as u64 > max_output => Outcome::InvalidOutput {
            reason: format!(
                "the output is {} bytes, over the limit of {max_output} bytes",
                output.len()
            ),
        },
        Ok(output) => match serde_json::from_str::<serde::de::IgnoredAny>(&output) {
            Ok(_) => Outcome::Ok { output },
            Err(e) => Outcome::InvalidOutput {
                reason: format!("the output is not JSON: {e}"),
            },
        },
        Err((code, message, retryable)) => Outcome::GuestError {
            code: truncate(code, MAX_CODE),
            message: truncate(message, MAX_MESSAGE),
            retryable,
        },
    }
}

/// Classifies an error raised while instantiating or running the task.
/// `memory_denied` says whether the store refused a memory or table growth
/// during the attempt: a trap after that is the memory limit at work (Rust
/// aborts on a failed allocation).
pub(crate) fn failed(error: &wasmtime::Error, memory_denied: bool) -> Outcome {
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => Outcome::OutOfFuel,
            Trap::Interrupt => Outcome::Timeout,
            _ if memory_denied => Outcome::MemoryLimit,
            trap => Outcome::Trap {
                message: trap.to_string(),
            },
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Outcome::Trap {
            message: format!("the task exited with status {} instead of returning a result", exit.0),
        };
    }
    if memory_denied {
        return Outcome::MemoryLimit;
    }
    Outcome::Trap {
        message: truncate(format!("{error:#}"), MAX_MESSAGE),
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_every_kind() {
        let every = [
            Outcome::Ok { output: "1".into() },
            Outcome::GuestError {
                code: "c".into(),
                message: "m".into(),
                retryable: false,
            },
            Outcome::Trap { message: "t".into() },
            Outcome::OutOfFuel,
            Outcome::MemoryLimit,
            Outcome::Timeout,
            Outcome::InvalidOutput { reason: "r".into() },
        ];
        assert_eq!(every.map(|o| o.kind()), Outcome::KINDS);
    }

    #[test]
    fn accepts_json_output_within_the_cap() {
        assert_eq!(
            returned(Ok("{\"a\":1}".into()), 100),
            Outcome::Ok {
                output: "{\"a\":1}".into()
            }
        );
    }

    #[test]
    fn rejects_oversized_or_non_json_output() {
        let big = returned(Ok("\"abcdef\"".into()), 4);
        assert!(matches!(&big, Outcome::InvalidOutput { reason } if reason.contains("8 bytes, over the limit of 4")));
        let text = returned(Ok("hello".into()), 100);
        assert!(matches!(&text, Outcome::InvalidOutput { reason } if reason.starts_with("the output is not JSON")));
    }

    #[test]
    fn caps_guest_error_text() {
        let outcome = returned(Err(("c".repeat(500), "é".repeat(10_000), true)), 100);
        let Outcome::GuestError {
            code,
            message,
            retryable,
        } = outcome
        else {
            panic!()
        };
        assert_eq!(code.len(), MAX_CODE);
        assert!(message.len() <= MAX_MESSAGE && message.len() > MAX_MESSAGE - 2);
        assert!(retryable);
    }

    #[test]
    fn serialises_with_a_tag() {
        let json = serde_json::to_string(&Outcome::OutOfFuel).unwrap();
        assert_eq!(json, r#"{"outcome":"out_of_fuel"}"#);
    }
}
