//! Checks a parsed [`Document`] and compiles it into a [`Workflow`],
//! collecting every problem (not just the first), each with its path and,
//! where the document says, its line and column.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use serde_saphyr::Spanned;

use super::SpecConfig;
use super::document::{
    Document, HttpDoc, IfNeedsSkipped, LimitsDoc, OnFailure, RetryDoc, StepDoc, is_name, is_step_id,
};
use super::error::SpecError;
use super::expr::{Expr, Template};
use super::plan::{RetryPolicy, Step, StepKind, TaskRef, Workflow};
use crate::digest::Digest;
use crate::sandbox::{Limits, parse_duration, parse_size};

/// Collects errors as they are found.
#[derive(Default)]
pub(super) struct Problems(Vec<SpecError>);

impl Problems {
    pub(super) fn at<T>(&mut self, path: impl Into<String>, spanned: &Spanned<T>, message: impl Into<String>) {
        let location = &spanned.referenced;
        let known = location.line() > 0;
        self.0.push(SpecError {
            path: path.into(),
            line: known.then_some(location.line() as usize),
            column: known.then_some(location.column() as usize),
            message: message.into(),
        });
    }

    pub(super) fn unplaced(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecError {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        });
    }
}

/// Checks `doc` and compiles it, or returns every problem found.
pub(crate) fn compile(doc: Document, config: &SpecConfig) -> Result<Workflow, Vec<SpecError>> {
    let mut problems = Problems::default();
    if !is_name(&doc.name.value) {
        problems.at(
            "name",
            &doc.name,
            format!(
                "{:?} is not a valid name: use 1 to 64 lowercase letters, digits, `_` and `-`",
                doc.name.value
            ),
        );
    }
    if doc.steps.value.is_empty() {
        problems.at("steps", &doc.steps, "a workflow needs at least one step");
    }
    if doc.steps.value.len() > config.max_steps {
        let message = format!(
            "{} steps is more than the {} allowed",
            doc.steps.value.len(),
            config.max_steps
        );
        problems.at("steps", &doc.steps, message);
    }
    check_concurrency(&mut problems, "concurrency", doc.concurrency.as_ref());
    let doc_steps = &doc.steps.value;

    let ids = index_ids(doc_steps, &mut problems);
    let d = &doc.defaults;
    let server = Settings::server(config);
    let defaults = Settings::read(
        (d.retry.as_ref(), d.timeout.as_ref(), d.limits.as_ref(), d.http.as_ref()),
        "defaults",
        &server,
        config,
        &mut problems,
    );

    let mut steps = Vec::with_capacity(doc_steps.len());
    for (i, step) in doc_steps.iter().enumerate() {
        steps.push(compile_step(i, step, &ids, &defaults, config, &mut problems));
    }
    for i in 0..steps.len() {
        for need in steps[i].needs.clone() {
            steps[need].dependents.push(i);
        }
    }
    let order = match topological_order(&steps) {
        Ok(order) => order,
        Err(cycle) => {
            let path: Vec<&str> = cycle.iter().map(|i| steps[*i].id.as_str()).collect();
            let first = cycle[0];
            problems.at(
                format!("steps[{first}].needs"),
                &doc_steps[first].id,
                format!("dependency cycle: {}", path.join(" → ")),
            );
            Vec::new()
        }
    };
    if problems.0.is_empty() {
        check_references(doc_steps, &steps, &mut problems);
    }

    let output = doc.output.as_ref().map(|output| {
        let mut errors = Vec::new();
        let template = Template::compile(&output.value, "output", &mut errors);
        for (path, message) in errors {
            problems.at(path, output, message);
        }
        for expr in template.exprs() {
            for id in expr.steps() {
                if !ids.contains_key(id.as_str()) {
                    problems.at(
                        "output",
                        output,
                        format!("`{}` reads steps.{id}, which does not exist", expr.source()),
                    );
                }
            }
            for variable in ["item", "index"] {
                if expr.uses(variable) {
                    problems.at(
                        "output",
                        output,
                        format!("`{}` uses `{variable}`, which only a for_each step has", expr.source()),
                    );
                }
            }
        }
        template
    });

    let input_schema = doc
        .input_schema
        .as_ref()
        .and_then(|schema| match jsonschema::validator_for(&schema.value) {
            Ok(validator) => Some(std::sync::Arc::new(validator)),
            Err(e) => {
                problems.at("input_schema", schema, format!("not a valid JSON Schema: {e}"));
                None
            }
        });

    let notify = doc
        .notify
        .as_ref()
        .map(|targets| super::notify::compile(targets, &mut problems))
        .unwrap_or_default();

    if !problems.0.is_empty() {
        problems
            .0
            .sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
        return Err(problems.0);
    }
    Ok(Workflow {
        name: doc.name.value,
        description: doc.description,
        steps,
        order,
        output,
        concurrency: doc.concurrency.as_ref().map(|c| c.value),
        input_schema,
        notify,
    })
}

/// Maps ids to indices, reporting malformed and duplicate ids.
fn index_ids<'a>(steps: &'a [StepDoc], problems: &mut Problems) -> HashMap<&'a str, usize> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let id = step.id.value.as_str();
        if !is_step_id(id) {
            problems.at(
                format!("steps[{i}].id"),
                &step.id,
                format!("{id:?} is not a valid step id: start with a lowercase letter, then lowercase letters, digits or `_` (at most 64)"),
            );
        }
        if let Some(first) = ids.get(id) {
            let line = steps[*first].id.referenced.line();
            problems.at(
                format!("steps[{i}].id"),
                &step.id,
                format!("duplicate step id `{id}` (first defined on line {line})"),
            );
        } else {
            ids.insert(id, i);
        }
    }
    ids
}

fn compile_step(
    i: usize,
    step: &StepDoc,
    ids: &HashMap<&str, usize>,
    defaults: &Settings,
    config: &SpecConfig,
    problems: &mut Problems,
) -> Step {
    let at = format!("steps[{i}]");
    let needs = resolve_ids(&step.needs, &format!("{at}.needs"), i, ids, problems);
    let compensates = resolve_ids(&step.on_failure_of, &format!("{at}.on_failure_of"), i, ids, problems);
    if !compensates.is_empty() && !needs.is_empty() {
        problems.at(
            format!("{at}.needs"),
            &step.needs[0],
            "a compensation step (on_failure_of) runs when its step fails, so it cannot also have needs",
        );
    }
    check_concurrency(problems, &format!("{at}.concurrency"), step.concurrency.as_ref());
    if let Some(concurrency) = &step.concurrency
        && step.for_each.is_none()
    {
        problems.at(
            format!("{at}.concurrency"),
            concurrency,
            "concurrency applies to for_each steps only",
        );
    }

    let when = step
        .when
        .as_ref()
        .and_then(|when| compile_expr(when, &format!("{at}.when"), problems));
    let for_each = step
        .for_each
        .as_ref()
        .and_then(|list| compile_expr(list, &format!("{at}.for_each"), problems));
    for (name, expr) in [("when", &when), ("for_each", &for_each)] {
        if let Some(expr) = expr
            && (expr.uses("item") || expr.uses("index"))
        {
            let spanned = if name == "when" {
                step.when.as_ref()
            } else {
                step.for_each.as_ref()
            };
            problems.at(
                format!("{at}.{name}"),
                spanned.expect("present"),
                format!(
                    "`{}` uses item or index, which exist only in the input of a for_each step",
                    expr.source()
                ),
            );
        }
    }
    let input = step.input.as_ref().map(|input| {
        let mut errors = Vec::new();
        let template = Template::compile(&input.value, &format!("{at}.input"), &mut errors);
        for (path, message) in errors {
            problems.at(path, input, message);
        }
        if for_each.is_none() {
            for expr in template.exprs() {
                if expr.uses("item") || expr.uses("index") {
                    problems.at(
                        format!("{at}.input"),
                        input,
                        format!("`{}` uses item or index, but the step has no for_each", expr.source()),
                    );
                }
            }
        }
        template
    });

    let settings = Settings::read(
        (
            step.retry.as_ref(),
            step.timeout.as_ref(),
            step.limits.as_ref(),
            step.http.as_ref(),
        ),
        &at,
        defaults,
        config,
        problems,
    );
    let kind = super::kind::compile(step, &at, problems);
    let retry = match (&kind, &step.retry) {
        // A wait retries only when it says so: the defaults' attempts are
        // meant for tasks (docs/architecture.md, "Waits").
        (StepKind::Task(_), _) | (_, Some(_)) => settings.retry,
        _ => RetryPolicy {
            max_attempts: 1,
            ..settings.retry
        },
    };
    Step {
        id: step.id.value.clone(),
        kind,
        needs,
        dependents: Vec::new(),
        input,
        when,
        for_each,
        concurrency: step.concurrency.as_ref().map(|c| c.value),
        compensates,
        on_failure: step.on_failure.unwrap_or(OnFailure::Fail),
        if_needs_skipped: step.if_needs_skipped.unwrap_or(IfNeedsSkipped::Skip),
        retry,
        limits: settings.limits,
        http: settings.http,
        secrets: super::http::compile_secrets(&step.secrets, &format!("{at}.secrets"), problems),
    }
}

fn resolve_ids(
    refs: &[Spanned<String>],
    at: &str,
    own: usize,
    ids: &HashMap<&str, usize>,
    problems: &mut Problems,
) -> Vec<usize> {
    let mut resolved = Vec::new();
    for (j, reference) in refs.iter().enumerate() {
        let path = format!("{at}[{j}]");
        match ids.get(reference.value.as_str()) {
            Some(&index) if index == own => problems.at(path, reference, "a step cannot refer to itself"),
            Some(&index) if resolved.contains(&index) => {
                problems.at(path, reference, format!("`{}` is listed twice", reference.value))
            }
            Some(&index) => resolved.push(index),
            None => {
                let hint = closest(&reference.value, ids.keys().copied())
                    .map(|near| format!(" (did you mean `{near}`?)"))
                    .unwrap_or_default();
                problems.at(path, reference, format!("unknown step `{}`{hint}", reference.value));
            }
        }
    }
    resolved
}

fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::levenshtein(wanted, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn compile_expr(source: &Spanned<String>, path: &str, problems: &mut Problems) -> Option<Expr> {
    match Expr::compile(&source.value) {
        Ok(expr) => Some(expr),
        Err(message) => {
            problems.at(path, source, message);
            None
        }
    }
}

fn check_concurrency(problems: &mut Problems, path: &str, concurrency: Option<&Spanned<u32>>) {
    if let Some(concurrency) = concurrency
        && concurrency.value == 0
    {
        problems.at(path, concurrency, "concurrency must be at least 1");
    }
}

pub(super) fn parse_task(task: &Spanned<String>, path: &str, problems: &mut Problems) -> TaskRef {
    let text = task.value.as_str();
    if text.starts_with("sha256:") {
        return match text.parse::<Digest>() {
            Ok(digest) => TaskRef::Digest(digest),
            Err(e) => {
                problems.at(path, task, e.to_string());
                TaskRef::Name {
                    name: String::new(),
                    version: None,
                }
            }
        };
    }
    let (name, version) = match text.split_once('@') {
        Some((name, version)) => (name, Some(version.to_string())),
        None => (text, None),
    };
    let version_ok = version.as_deref().is_none_or(|v| {
        is_name(v) || v.chars().all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c)) && !v.is_empty()
    });
    if !is_name(name) || !version_ok {
        problems.at(
            path,
            task,
            format!("{text:?} is not a module reference: write `name`, `name@version` or `sha256:<digest>`"),
        );
    }
    TaskRef::Name {
        name: name.to_string(),
        version,
    }
}

/// Every step may read only steps that are sure to have finished: its
/// needs, their needs, and so on (for a compensation step, the steps it
/// compensates and theirs).
fn check_references(docs: &[StepDoc], steps: &[Step], problems: &mut Problems) {
    for (i, step) in steps.iter().enumerate() {
        let roots = if step.is_compensation() {
            &step.compensates
        } else {
            &step.needs
        };
        let mut before = ancestors(steps, roots);
        if step.is_compensation() {
            before.extend(step.compensates.iter().copied());
        }
        let exprs: Vec<(&str, &Expr)> = step
            .when
            .iter()
            .map(|e| ("when", e))
            .chain(step.for_each.iter().map(|e| ("for_each", e)))
            .chain(step.input.iter().flat_map(|t| t.exprs()).map(|e| ("input", e)))
            .chain(match &step.kind {
                StepKind::SleepUntil(until) => until.exprs().into_iter().map(|e| ("sleep_until", e)).collect(),
                _ => Vec::new(),
            })
            .collect();
        for (field, expr) in exprs {
            for id in expr.steps() {
                let Some(index) = steps.iter().position(|s| &s.id == id) else {
                    problems.at(
                        format!("steps[{i}].{field}"),
                        &docs[i].id,
                        format!("`{}` reads steps.{id}, which does not exist", expr.source()),
                    );
                    continue;
                };
                if !before.contains(&index) {
                    problems.at(
                        format!("steps[{i}].{field}"),
                        &docs[i].id,
                        format!("`{}` reads steps.{id}, but `{}` does not need `{id}` (directly or through other steps), so it may not have run yet", expr.source(), step.id),
                    );
                }
            }
        }
    }
}

fn ancestors(steps: &[Step], roots: &[usize]) -> Vec<usize> {
    let mut seen = Vec::new();
    let mut stack = roots.to_vec();
    while let Some(i) = stack.pop() {
        if !seen.contains(&i) {
            seen.push(i);
            stack.extend(steps[i].needs.iter().copied());
        }
    }
    seen
}

/// Kahn's algorithm; on a cycle, returns one cycle (first step repeated at
/// the end).
fn topological_order(steps: &[Step]) -> Result<Vec<usize>, Vec<usize>> {
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.needs.len()).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|i| waiting[*i] == 0).rev().collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in &steps[i].dependents {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(d);
            }
        }
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    // Walk needs from a blocked step until a step repeats: that is a cycle.
    let mut path = vec![(0..steps.len()).find(|i| waiting[*i] > 0).expect("a blocked step")];
    loop {
        let last = *path.last().expect("non-empty");
        let next = *steps[last]
            .needs
            .iter()
            .find(|n| waiting[**n] > 0)
            .expect("a blocked need");
        if let Some(start) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<usize> = path[start..].to_vec();
            cycle.reverse();
            cycle.rotate_right(1);
            let first = cycle[0];
            cycle.push(first);
            return Err(cycle);
        }
        path.push(next);
    }
}

/// The settings a step or the defaults give: retry, timeout, limits, HTTP.
type Given<'a> = (
    Option<&'a RetryDoc>,
    Option<&'a Spanned<String>>,
    Option<&'a LimitsDoc>,
    Option<&'a HttpDoc>,
);

/// Retry, limits and HTTP after inheritance.
struct Settings {
    retry: RetryPolicy,
    limits: Limits,
    http: std::sync::Arc<super::StepHttp>,
}

impl Settings {
    fn server(config: &SpecConfig) -> Settings {
        Settings {
            retry: RetryPolicy::default(),
            limits: config.default_limits,
            http: std::sync::Arc::new(super::StepHttp {
                limits: config.http.max,
                ..Default::default()
            }),
        }
    }

    /// The given retry, timeout and limits over `base`, each checked.
    fn read(
        (retry, timeout, doc_limits, http): Given<'_>,
        at: &str,
        base: &Settings,
        config: &SpecConfig,
        problems: &mut Problems,
    ) -> Settings {
        let mut limits = base.limits;
        if let Some(timeout) = timeout
            && let Some(d) = duration(timeout, &format!("{at}.timeout"), problems)
        {
            if d > config.max_limits.timeout || d.is_zero() {
                let max = humantime::format_duration(config.max_limits.timeout);
                problems.at(
                    format!("{at}.timeout"),
                    timeout,
                    format!("timeout must be more than 0 and at most {max}"),
                );
            }
            limits.timeout = d;
        }
        if let Some(doc_limits) = doc_limits {
            read_limits(doc_limits, &format!("{at}.limits"), &mut limits, config, problems);
        }
        let retry = match retry {
            Some(retry) => read_retry(retry, &format!("{at}.retry"), &base.retry, problems),
            None => base.retry.clone(),
        };
        let http = super::http::compile(http, &format!("{at}.http"), &base.http, &config.http, problems);
        Settings { retry, limits, http }
    }
}

fn read_limits(doc: &LimitsDoc, at: &str, limits: &mut Limits, config: &SpecConfig, problems: &mut Problems) {
    if let Some(fuel) = &doc.fuel {
        if fuel.value == 0 || fuel.value > config.max_limits.fuel {
            problems.at(
                format!("{at}.fuel"),
                fuel,
                format!("fuel must be from 1 to {}", config.max_limits.fuel),
            );
        }
        limits.fuel = fuel.value;
    }
    for (name, doc_value, target, max) in [
        ("memory", &doc.memory, &mut limits.memory, config.max_limits.memory),
        (
            "max_output",
            &doc.max_output,
            &mut limits.max_output,
            config.max_limits.max_output,
        ),
    ] {
        let Some(spanned) = doc_value else { continue };
        match size(&spanned.value) {
            Ok(bytes) if bytes == 0 || bytes > max => {
                let max = bytesize::ByteSize::b(max).display().iec();
                problems.at(
                    format!("{at}.{name}"),
                    spanned,
                    format!("{name} must be more than 0 and at most {max}"),
                );
            }
            Ok(bytes) => *target = bytes,
            Err(message) => problems.at(format!("{at}.{name}"), spanned, message),
        }
    }
}

fn read_retry(doc: &RetryDoc, at: &str, base: &RetryPolicy, problems: &mut Problems) -> RetryPolicy {
    let mut retry = base.clone();
    if let Some(attempts) = &doc.max_attempts {
        if !(1..=MAX_ATTEMPTS).contains(&attempts.value) {
            let message = format!("max_attempts must be from 1 to {MAX_ATTEMPTS}");
            problems.at(format!("{at}.max_attempts"), attempts, message);
        }
        retry.max_attempts = attempts.value;
    }
    if let Some(initial) = &doc.initial_interval
        && let Some(d) = duration(initial, &format!("{at}.initial_interval"), problems)
    {
        retry.initial_interval = d;
    }
    if let Some(max) = &doc.max_interval
        && let Some(d) = duration(max, &format!("{at}.max_interval"), problems)
    {
        retry.max_interval = d;
    }
    if let Some(backoff) = &doc.backoff {
        if !(1.0..=100.0).contains(&backoff.value) {
            problems.at(format!("{at}.backoff"), backoff, "backoff must be from 1.0 to 100.0");
        }
        retry.backoff = backoff.value;
    }
    if let Some(jitter) = doc.jitter {
        retry.jitter = jitter;
    }
    if let Some(codes) = &doc.non_retryable {
        retry.non_retryable = codes.clone();
    }
    if retry.max_interval < retry.initial_interval {
        let message = "max_interval must not be shorter than initial_interval";
        match doc.max_interval.as_ref().or(doc.initial_interval.as_ref()) {
            Some(place) => problems.at(format!("{at}.max_interval"), place, message),
            None => problems.unplaced(format!("{at}.max_interval"), message),
        }
    }
    retry
}

/// The most attempts a step may have.
const MAX_ATTEMPTS: u32 = 100;

/// A size as documents write it: `"64MiB"` or a number of bytes.
pub(super) fn size(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a whole number of bytes")),
        Value::String(s) => parse_size(s),
        other => Err(format!(
            "a size is a string like \"64MiB\" or a number of bytes, not {}",
            super::expr::describe(other)
        )),
    }
}

pub(super) fn duration(text: &Spanned<String>, path: &str, problems: &mut Problems) -> Option<Duration> {
    match parse_duration(&text.value) {
        Ok(d) => Some(d),
        Err(message) => {
            problems.at(path, text, message);
            None
        }
    }
}
