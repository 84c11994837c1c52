//! The workflow document as written: the serde types that YAML and JSON
//! documents deserialise into, with source spans on every value that a
//! later check may need to point at. The JSON Schema of the format is
//! generated from these types (`weft schema`).
//!
//! Nothing here is interpreted; `validate` turns a [`Document`] into a
//! checked [`Workflow`](super::Workflow).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

/// A workflow: named steps with dependencies, run as a DAG.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The workflow's name: lowercase letters, digits, `_` and `-`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the workflow does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema that a run's input must satisfy; checked when a run
    /// starts.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub input_schema: Option<Spanned<Value>>,
    /// Settings every step inherits unless it sets its own.
    #[serde(default)]
    pub defaults: StepSettings,
    /// The most steps (and `for_each` items) of one run that may run at once.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<Spanned<u32>>,
    /// The steps, in any order; `needs` decides the order they run in.
    #[schemars(with = "Vec<StepDoc>")]
    pub steps: Spanned<Vec<StepDoc>>,
    /// The run's output: a template over `input` and `steps`. Without it,
    /// the output is an object of every succeeded step's output by id.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub output: Option<Spanned<Value>>,
    /// Where to POST a signed message when a run ends (or only fails,
    /// ...) and when an approval escalates; delivered at least once.
    #[serde(default)]
    #[schemars(with = "Option<Vec<super::notify::NotifyDoc>>")]
    pub notify: Option<Spanned<Vec<super::notify::NotifyDoc>>>,
}

/// One step: a task run with an input built from earlier results, or a
/// wait. A step is exactly one of `task`, `sleep`, `sleep_until`,
/// `wait_for`, `approval` and `workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    /// Unique within the workflow: lowercase letters, digits and `_`,
    /// starting with a letter (so expressions can say `steps.<id>`).
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// The module to run: `name`, `name@version` or `sha256:<digest>`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub task: Option<Spanned<String>>,
    /// Wait this long, e.g. `10m`, `36h`, then succeed with output `null`.
    /// The wait is durable: a restart keeps its end.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sleep: Option<Spanned<String>>,
    /// Wait until this time, then succeed with output `null`: an RFC 3339
    /// time (`2026-12-24T18:00:00+01:00`) or milliseconds since the epoch,
    /// usually a `${{ expr }}` template over the input and earlier steps.
    /// A time already past ends the step at once.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sleep_until: Option<Spanned<String>>,
    /// Wait for a signal (`POST /v1/runs/{id}/signals/{name}`); its
    /// payload is the step's output.
    #[serde(default)]
    pub wait_for: Option<WaitForDoc>,
    /// Wait for a person's decision (`weft approve` / `weft reject`): an
    /// approval is the step's output, a rejection its failure.
    #[serde(default)]
    pub approval: Option<ApprovalDoc>,
    /// Run this workflow of the same tenant as a child run, with the
    /// step's `input`, and wait for it: its output is the step's output,
    /// its failure the step's failure.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub workflow: Option<Spanned<String>>,
    /// Steps that must succeed before this one starts.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub needs: Vec<Spanned<String>>,
    /// The task's input: any JSON value; strings may hold `${{ expr }}`
    /// templates. Defaults to the run's input.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub input: Option<Spanned<Value>>,
    /// A CEL condition; when false the step is skipped.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    /// A CEL expression giving a list; the task runs once per item, with
    /// `item` and `index` in scope. The step's output is the list of the
    /// items' outputs.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub for_each: Option<Spanned<String>>,
    /// For `for_each`: the most items running at once.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<Spanned<u32>>,
    /// This step compensates these steps: it runs only when one of them
    /// fails for good, and never otherwise.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub on_failure_of: Vec<Spanned<String>>,
    /// What the step's own failure does to the run.
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    /// What happens to this step when one of its `needs` was skipped.
    #[serde(default)]
    pub if_needs_skipped: Option<IfNeedsSkipped>,
    /// How failed attempts are retried (over the workflow's `defaults`).
    #[serde(default)]
    pub retry: Option<RetryDoc>,
    /// Wall-clock limit of one attempt, e.g. `30s`, `500ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Resource limits of one attempt.
    #[serde(default)]
    pub limits: Option<LimitsDoc>,
    /// Where the task may send HTTP requests (each field over the
    /// workflow's `defaults.http`). Nothing is allowed by default.
    #[serde(default)]
    pub http: Option<HttpDoc>,
    /// Secrets the task may read through the `secrets` import. Prefer
    /// `http.headers`, which keeps the value out of the task.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub secrets: Vec<Spanned<String>>,
}

/// What a `wait_for` step waits for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForDoc {
    /// The signal's name: lowercase letters, digits, `_` and `-`. A signal
    /// sent before the step begins is kept for it.
    #[schemars(with = "String")]
    pub signal: Spanned<String>,
    /// How long to wait, e.g. `24h`; then the step fails with code
    /// `timeout` (so `retry`, `on_failure` and compensation apply).
    /// Without it, the step waits as long as the run lives.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
}

/// Who decides an `approval` step, and by when.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDoc {
    /// The people (names or e-mail addresses) who may decide.
    #[schemars(with = "Vec<String>")]
    pub approvers: Spanned<Vec<String>>,
    /// How long to wait for a decision, e.g. `48h`; then the step is
    /// rejected (code `rejected`). Without it, as long as the run lives.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Widen who may decide when nobody has after a while.
    #[serde(default)]
    pub escalate: Option<EscalateDoc>,
}

/// An approval's escalation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateDoc {
    /// How long after the step began, e.g. `4h`; before `timeout`.
    #[schemars(with = "String")]
    pub after: Spanned<String>,
    /// Who may decide too, from then on.
    #[schemars(with = "Vec<String>")]
    pub to: Spanned<Vec<String>>,
}

/// The workflow's `defaults`: what a step uses for the settings it does not
/// set itself (and the server's defaults for what neither sets).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSettings {
    /// How failed attempts are retried.
    #[serde(default)]
    pub retry: Option<RetryDoc>,
    /// Wall-clock limit of one attempt, e.g. `30s`, `500ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Resource limits of one attempt.
    #[serde(default)]
    pub limits: Option<LimitsDoc>,
    /// Outbound HTTP.
    #[serde(default)]
    pub http: Option<HttpDoc>,
}

/// Outbound HTTP of a step: where it may go, what the host adds to its
/// requests, and how much it may use. A step cannot go beyond what its
/// tenant may reach.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpDoc {
    /// URL patterns it may request, `scheme://host[:port][/path-prefix]`
    /// (the host may start with `*.` for any one label), and private
    /// addresses or ranges (`10.0.0.0/8`) those URLs may resolve to.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub allow: Option<Spanned<Vec<String>>>,
    /// Headers the host sets on requests matching a URL pattern, e.g.
    /// `{"https://api.example.com": {"Authorization": "Bearer ${{ secrets.key }}"}}`.
    /// Values may use `${{ secrets.NAME }}` and nothing else.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, BTreeMap<String, String>>>")]
    pub headers: Option<Spanned<BTreeMap<String, BTreeMap<String, String>>>>,
    /// Caps on the attempt's requests together.
    #[serde(default)]
    pub limits: Option<HttpLimitsDoc>,
}

/// Caps on one attempt's outbound HTTP, within the tenant's.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpLimitsDoc {
    /// Requests, refused ones included.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub requests: Option<Spanned<u32>>,
    /// Request body bytes, e.g. `1MiB`.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub sent: Option<Spanned<Value>>,
    /// Response body bytes, e.g. `10MiB`.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub received: Option<Spanned<Value>>,
    /// To resolve and connect, e.g. `5s`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub connect_timeout: Option<Spanned<String>>,
    /// To the response's head, and between body chunks, e.g. `10s`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub request_timeout: Option<Spanned<String>>,
}

/// How failed attempts are retried. An attempt is retried when its outcome
/// is retryable (a retryable task error, or a timeout), its error code is
/// not listed in `non_retryable`, and attempts remain.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDoc {
    /// Attempts in all, the first included (1 = never retry).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_attempts: Option<Spanned<u32>>,
    /// Wait before the first retry, e.g. `1s`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub initial_interval: Option<Spanned<String>>,
    /// Each wait is the previous one times this (at least 1).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub backoff: Option<Spanned<f64>>,
    /// The longest wait, e.g. `1m`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_interval: Option<Spanned<String>>,
    /// `none`: wait exactly; `full`: wait a random time up to the interval.
    #[serde(default)]
    pub jitter: Option<Jitter>,
    /// Task error codes that are never retried.
    #[serde(default)]
    pub non_retryable: Option<Vec<String>>,
}

/// Randomisation of retry waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Wait exactly the computed interval.
    None,
    /// Wait a uniformly random time between zero and the interval.
    Full,
}

/// Resource limits of one attempt.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDoc {
    /// Fuel (about one unit per WebAssembly instruction).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub fuel: Option<Spanned<u64>>,
    /// Memory, e.g. `64MiB`, or bytes.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub memory: Option<Spanned<Value>>,
    /// Largest output, e.g. `1MiB`, or bytes.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub max_output: Option<Spanned<Value>>,
}

/// What a step's failure (after its retries) does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The run fails: nothing new starts, compensations run, the run ends
    /// `failed` (the default).
    Fail,
    /// The run goes on: the step is `failed`, its dependents still run and
    /// can look at `steps.<id>.status` and `steps.<id>.error`.
    Continue,
}

/// What a step does when one of its `needs` was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IfNeedsSkipped {
    /// Skip this step too (the default).
    Skip,
    /// Run anyway; the skipped step's output is `null`.
    Run,
}

/// Ids are keys of `steps` in expressions, so they must be CEL identifiers.
pub(crate) fn is_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z')) && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')) && id.len() <= 64
}

/// Workflow and module names: safe in URLs and file names.
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}
