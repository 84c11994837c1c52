//! The checked, compiled workflow the scheduler runs: steps by index, each
//! with its dependencies resolved, expressions compiled, and every setting
//! decided (step, else workflow defaults, else server defaults).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::SpecError;
pub use super::document::{IfNeedsSkipped, Jitter, OnFailure};
use super::expr::{Expr, Template};
use crate::digest::Digest;
use crate::sandbox::{Limits, Outcome};

/// A workflow ready to run.
#[derive(Debug)]
pub struct Workflow {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// The steps; a step's index is its identity within a run.
    pub steps: Vec<Step>,
    /// Step indices in an order where every step comes after its needs.
    pub order: Vec<usize>,
    /// The run's output, if the document gives one.
    pub output: Option<Template>,
    /// The most attempts of one run in flight at once.
    pub concurrency: Option<u32>,
    /// The input schema, compiled.
    pub input_schema: Option<Arc<jsonschema::Validator>>,
    /// Where to notify of the run's end and of escalations.
    pub notify: Vec<super::notify::Notify>,
}

/// One step, compiled.
#[derive(Debug)]
pub struct Step {
    /// Its id.
    pub id: String,
    /// What it does: run a task, or wait.
    pub kind: StepKind,
    /// Indices of the steps it needs.
    pub needs: Vec<usize>,
    /// Indices of the steps that need it.
    pub dependents: Vec<usize>,
    /// Its input; `None` passes the run's input.
    pub input: Option<Template>,
    /// Its condition.
    pub when: Option<Expr>,
    /// Its item list, for a fan-out.
    pub for_each: Option<Expr>,
    /// The most items in flight, for a fan-out.
    pub concurrency: Option<u32>,
    /// The steps it compensates (non-empty for compensation steps only).
    pub compensates: Vec<usize>,
    /// What its failure does to the run.
    pub on_failure: OnFailure,
    /// What a skipped need does to it.
    pub if_needs_skipped: IfNeedsSkipped,
    /// How its attempts are retried.
    pub retry: RetryPolicy,
    /// What each attempt may use.
    pub limits: Limits,
    /// Where its attempts may send HTTP requests.
    pub http: std::sync::Arc<super::StepHttp>,
    /// Secrets its task may read through the `secrets` import.
    pub secrets: Vec<String>,
}

impl Step {
    /// Whether it only runs to compensate another step's failure.
    pub fn is_compensation(&self) -> bool {
        !self.compensates.is_empty()
    }

    /// The module it runs, if it runs one.
    pub fn task(&self) -> Option<&TaskRef> {
        match &self.kind {
            StepKind::Task(task) => Some(task),
            _ => None,
        }
    }

    /// The workflow it runs as a child, if it does.
    pub fn child_workflow(&self) -> Option<&str> {
        match &self.kind {
            StepKind::Workflow(name) => Some(name),
            _ => None,
        }
    }

    /// Its approval, if it is one.
    pub fn approval(&self) -> Option<&Approval> {
        match &self.kind {
            StepKind::Approval(approval) => Some(approval),
            _ => None,
        }
    }

    /// The signal it waits for, if it does.
    pub fn signal(&self) -> Option<&str> {
        match &self.kind {
            StepKind::Signal { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Who decides an approval step, and by when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Who may decide.
    pub approvers: Vec<String>,
    /// How long to wait before the step is rejected.
    pub timeout: Option<Duration>,
    /// Who else may decide, and how long after the step began.
    pub escalate: Option<(Duration, Vec<String>)>,
}

/// What a step does.
#[derive(Debug)]
pub enum StepKind {
    /// Runs a module.
    Task(TaskRef),
    /// Waits this long.
    Sleep(Duration),
    /// Waits until the time the template gives.
    SleepUntil(Template),
    /// Waits for a person's decision.
    Approval(Approval),
    /// Runs this workflow as a child run and waits for it.
    Workflow(String),
    /// Waits for a signal of this name, at most `timeout`.
    Signal {
        /// The signal's name.
        name: String,
        /// How long to wait before failing.
        timeout: Option<Duration>,
    },
}

impl StepKind {
    /// Every kind's name, as [`StepKind::name`] gives them.
    pub const NAMES: [&str; 6] = ["task", "sleep", "sleep_until", "wait_for", "approval", "workflow"];

    /// The schema of a kind's name, for API documents.
    pub fn name_schema() -> utoipa::openapi::schema::Object {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(StepKind::NAMES))
            .build()
    }

    /// Its name in the document.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Task(_) => "task",
            StepKind::Sleep(_) => "sleep",
            StepKind::SleepUntil(_) => "sleep_until",
            StepKind::Signal { .. } => "wait_for",
            StepKind::Approval(_) => "approval",
            StepKind::Workflow(_) => "workflow",
        }
    }
}

impl Workflow {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<(usize, &Step)> {
        self.steps.iter().enumerate().find(|(_, s)| s.id == id)
    }

    /// Checks a run's input against the input schema; every problem, with
    /// the place in the input where it is (`input.items[0]`).
    pub fn check_input(&self, input: &Value) -> Result<(), Vec<SpecError>> {
        let Some(schema) = &self.input_schema else {
            return Ok(());
        };
        let problems: Vec<SpecError> = schema
            .iter_errors(input)
            .map(|e| SpecError {
                path: input_path(&e.instance_path().to_string()),
                line: None,
                column: None,
                message: e.to_string(),
            })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// `input` followed by a JSON pointer into it, written as a path:
/// `/items/0/sku` becomes `input.items[0].sku`.
fn input_path(pointer: &str) -> String {
    let mut path = String::from("input");
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{segment}]"));
        } else {
            path.push('.');
            path.push_str(&segment);
        }
    }
    path
}

/// Which module a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRef {
    /// By name: the newest version, or the one named.
    Name {
        /// The module's name.
        name: String,
        /// A version, if pinned in the document.
        version: Option<String>,
    },
    /// Exactly these bytes.
    Digest(Digest),
}

impl std::fmt::Display for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskRef::Name { name, version: Some(v) } => write!(f, "{name}@{v}"),
            TaskRef::Name { name, version: None } => f.write_str(name),
            TaskRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// How a step's failed attempts are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry.
    pub initial_interval: Duration,
    /// Growth of the wait per retry.
    pub backoff: f64,
    /// The longest wait.
    pub max_interval: Duration,
    /// Randomisation of the wait.
    pub jitter: Jitter,
    /// Task error codes never retried.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    /// Three attempts, 1 s then 2 s apart: what Step Functions and most
    /// engines do unless told otherwise.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_interval: Duration::from_secs(1),
            backoff: 2.0,
            max_interval: Duration::from_secs(60),
            jitter: Jitter::None,
            non_retryable: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (1-based), which ended with
    /// `outcome`, is followed by another.
    pub fn retries(&self, outcome: &Outcome, attempt: u32) -> bool {
        if attempt >= self.max_attempts || !outcome.is_retryable() {
            return false;
        }
        match outcome {
            Outcome::GuestError { code, .. } => !self.non_retryable.contains(code),
            _ => true,
        }
    }

    /// The wait after attempt number `attempt` (1-based) failed. `unit` is a
    /// random number in [0, 1), used only with full jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let interval = self.initial_interval.as_secs_f64() * self.backoff.powi(exponent);
        let capped = interval.min(self.max_interval.as_secs_f64());
        let wait = match self.jitter {
            Jitter::None => capped,
            Jitter::Full => capped * unit.clamp(0.0, 1.0),
        };
        Duration::from_secs_f64(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest_error(code: &str, retryable: bool) -> Outcome {
        Outcome::GuestError {
            code: code.into(),
            message: String::new(),
            retryable,
        }
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            max_interval: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (1..=5).map(|a| policy.delay(a, 0.5).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn full_jitter_scales_the_wait() {
        let policy = RetryPolicy {
            jitter: Jitter::Full,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay(3, 0.25), Duration::from_secs(1));
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
    }

    #[test]
    fn retries_only_what_is_retryable_and_allowed() {
        let policy = RetryPolicy {
            non_retryable: vec!["card_declined".into()],
            ..RetryPolicy::default()
        };
        assert!(policy.retries(&guest_error("transient", true), 1));
        assert!(policy.retries(&Outcome::Timeout, 2));
        assert!(
            !policy.retries(&guest_error("transient", true), 3),
            "attempts exhausted"
        );
        assert!(
            !policy.retries(&guest_error("card_declined", true), 1),
            "listed as non-retryable"
        );
        assert!(!policy.retries(&guest_error("bad", false), 1));
        assert!(!policy.retries(&Outcome::OutOfFuel, 1));
    }
}
