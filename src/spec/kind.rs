//! What a step does, as the document says it: exactly one of `task`,
//! `sleep`, `sleep_until`, `wait_for`, `approval` and `workflow`, and no
//! setting that only a task can use on a step that waits.

use serde_json::Value;

use serde_saphyr::Spanned;

use super::document::{ApprovalDoc, StepDoc, is_name};
use super::expr::Template;
use super::plan::{Approval, StepKind, TaskRef};
use super::validate::{Problems, duration, parse_task};

/// Compiles the kind of `step` (at path `at`), reporting a step with no
/// kind or with several, and task settings on a wait.
pub(super) fn compile(step: &StepDoc, at: &str, problems: &mut Problems) -> StepKind {
    let given: Vec<&str> = [
        step.task.as_ref().map(|_| "task"),
        step.sleep.as_ref().map(|_| "sleep"),
        step.sleep_until.as_ref().map(|_| "sleep_until"),
        step.wait_for.as_ref().map(|_| "wait_for"),
        step.approval.as_ref().map(|_| "approval"),
        step.workflow.as_ref().map(|_| "workflow"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [] => problems.at(
            at,
            &step.id,
            format!(
                "step `{}` does nothing: give it one of `task`, `sleep`, `sleep_until`, `wait_for`, `approval` or \
                 `workflow`",
                step.id.value
            ),
        ),
        [_] => {}
        [first, second, ..] => problems.at(
            format!("{at}.{second}"),
            &step.id,
            format!(
                "step `{}` has both `{first}` and `{second}`: a step is one of `task`, `sleep`, `sleep_until`, \
                 `wait_for`, `approval` or `workflow`; use two steps",
                step.id.value
            ),
        ),
    }
    let kind = if let Some(task) = &step.task {
        StepKind::Task(parse_task(task, &format!("{at}.task"), problems))
    } else if let Some(sleep) = &step.sleep {
        StepKind::Sleep(duration(sleep, &format!("{at}.sleep"), problems).unwrap_or_default())
    } else if let Some(until) = &step.sleep_until {
        let path = format!("{at}.sleep_until");
        let mut errors = Vec::new();
        let template = Template::compile(&Value::String(until.value.clone()), &path, &mut errors);
        for (path, message) in errors {
            problems.at(path, until, message);
        }
        for expr in template.exprs() {
            if expr.uses("item") || expr.uses("index") {
                let source = expr.source();
                problems.at(
                    &path,
                    until,
                    format!("`{source}` uses item or index, which a wait does not have"),
                );
            }
        }
        if let Template::Literal(Value::String(text)) = &template
            && let Err(message) = parse_time(&Value::String(text.clone()))
        {
            problems.at(&path, until, message);
        }
        StepKind::SleepUntil(template)
    } else if let Some(wait) = &step.wait_for {
        let name = &wait.signal;
        if !is_name(&name.value) {
            problems.at(
                format!("{at}.wait_for.signal"),
                name,
                format!(
                    "{:?} is not a valid signal name: use 1 to 64 lowercase letters, digits, `_` and `-`",
                    name.value
                ),
            );
        }
        let timeout = wait
            .timeout
            .as_ref()
            .and_then(|t| duration(t, &format!("{at}.wait_for.timeout"), problems));
        StepKind::Signal {
            name: name.value.clone(),
            timeout,
        }
    } else if let Some(approval) = &step.approval {
        StepKind::Approval(compile_approval(approval, &format!("{at}.approval"), problems))
    } else if let Some(name) = &step.workflow {
        if !is_name(&name.value) {
            problems.at(
                format!("{at}.workflow"),
                name,
                format!(
                    "{:?} is not a workflow name: use 1 to 64 lowercase letters, digits, `_` and `-`",
                    name.value
                ),
            );
        }
        StepKind::Workflow(name.value.clone())
    } else {
        StepKind::Task(TaskRef::Name {
            name: String::new(),
            version: None,
        })
    };
    if !matches!(kind, StepKind::Task(_)) {
        refuse_task_settings(step, kind.name(), at, problems);
    }
    if let (StepKind::Approval(_), Some(_)) = (&kind, &step.retry) {
        problems.at(
            format!("{at}.retry"),
            &step.id,
            format!(
                "`{}` is an approval, which is not retried: a rejection or a timeout is a decision (use \
                 `on_failure` or a compensation step)",
                step.id.value
            ),
        );
    }
    kind
}

/// The most people one approval (or its escalation) names.
const MAX_APPROVERS: usize = 100;

fn compile_approval(doc: &ApprovalDoc, at: &str, problems: &mut Problems) -> Approval {
    let people = |list: &Spanned<Vec<String>>, path: String, problems: &mut Problems| {
        if list.value.is_empty() {
            problems.at(&path, list, "name at least one person who may decide");
        }
        if list.value.len() > MAX_APPROVERS {
            problems.at(&path, list, format!("at most {MAX_APPROVERS} people may be named"));
        }
        for (i, name) in list.value.iter().enumerate() {
            if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                problems.at(
                    format!("{path}[{i}]"),
                    list,
                    format!("{name:?} is not a name: give 1 to 256 printable characters"),
                );
            }
        }
        list.value.clone()
    };
    let approvers = people(&doc.approvers, format!("{at}.approvers"), problems);
    let timeout = doc
        .timeout
        .as_ref()
        .and_then(|t| duration(t, &format!("{at}.timeout"), problems));
    let escalate = doc.escalate.as_ref().and_then(|e| {
        let to = people(&e.to, format!("{at}.escalate.to"), problems);
        let after = duration(&e.after, &format!("{at}.escalate.after"), problems)?;
        if timeout.is_some_and(|timeout| after >= timeout) {
            problems.at(
                format!("{at}.escalate.after"),
                &e.after,
                format!(
                    "escalating after {} is not before the timeout ({}): nobody could decide in between",
                    e.after.value,
                    doc.timeout.as_ref().map_or("", |t| t.value.as_str())
                ),
            );
        }
        Some((after, to))
    });
    Approval {
        approvers,
        timeout,
        escalate,
    }
}

/// Settings that mean something only to an attempt of a task.
fn refuse_task_settings(step: &StepDoc, kind: &str, at: &str, problems: &mut Problems) {
    let present = [
        // A child run takes the step's input.
        ("input", step.input.is_some() && kind != "workflow"),
        ("for_each", step.for_each.is_some()),
        ("concurrency", step.concurrency.is_some()),
        ("timeout", step.timeout.is_some()),
        ("limits", step.limits.is_some()),
        ("http", step.http.is_some()),
        ("secrets", !step.secrets.is_empty()),
    ];
    for (field, _) in present.iter().filter(|(_, present)| *present) {
        let hint = match *field {
            "timeout" if kind == "wait_for" => " (a signal's wait is bounded by `wait_for.timeout`)",
            _ => "",
        };
        problems.at(
            format!("{at}.{field}"),
            &step.id,
            format!(
                "`{field}` is for task steps, and `{}` is a `{kind}` step{hint}",
                step.id.value
            ),
        );
    }
}

/// A time a `sleep_until` gives: an RFC 3339 string with any offset, or a
/// whole number of milliseconds since the epoch. Returns the milliseconds.
pub(crate) fn parse_time(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not a time: give whole milliseconds since 1970 or an RFC 3339 time")),
        Value::String(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(time) => u64::try_from(time.timestamp_millis())
                .map_err(|_| format!("{text:?} is before 1970, which sleep_until cannot wait for")),
            Err(e) => Err(format!(
                "{text:?} is not an RFC 3339 time ({e}): write e.g. 2026-12-24T18:00:00Z or \
                 2026-12-24T18:00:00+01:00"
            )),
        },
        other => Err(format!(
            "sleep_until must give a time (an RFC 3339 string or milliseconds since 1970), not {}",
            super::expr::describe(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_parse_with_offsets_and_as_milliseconds() {
        assert_eq!(parse_time(&json!("1970-01-01T00:00:01Z")), Ok(1000));
        assert_eq!(parse_time(&json!("1970-01-01T01:00:01+01:00")), Ok(1000));
        assert_eq!(parse_time(&json!(1_700_000_000_000u64)), Ok(1_700_000_000_000));
        assert!(parse_time(&json!("tomorrow")).unwrap_err().contains("RFC 3339"));
        assert!(parse_time(&json!(-5)).is_err());
        assert!(parse_time(&json!(true)).unwrap_err().contains("not a boolean"));
        assert!(
            parse_time(&json!("1969-12-31T23:59:59Z"))
                .unwrap_err()
                .contains("before 1970")
        );
    }
}
