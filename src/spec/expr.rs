//! Expressions: CEL programs, and JSON templates whose strings embed them
//! as `${{ … }}`.
//!
//! An expression sees `input` (the run's input), `steps` (each step it
//! reads, as `{status, output, error}`), and in a `for_each` step `item`
//! and `index`. CEL is deterministic, side-effect free and cannot loop, so
//! evaluating one is always safe and bounded by the size of its data.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The variables an expression may use.
pub const VARIABLES: [&str; 4] = ["input", "steps", "item", "index"];

/// A compiled CEL expression.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    program: Arc<cel::Program>,
    steps: Vec<String>,
    variables: Vec<&'static str>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// What an expression is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The run's input.
    pub input: &'a Value,
    /// The steps the expression reads, by id: `{status, output, error}`.
    pub steps: &'a Map<String, Value>,
    /// The current `for_each` item.
    pub item: Option<&'a Value>,
    /// The current `for_each` index.
    pub index: Option<u64>,
}

/// Why evaluating an expression failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expression}`: {message}")]
pub struct EvalError {
    /// The expression.
    pub expression: String,
    /// What went wrong.
    pub message: String,
}

impl Expr {
    /// Compiles `source`, checking its syntax and that it uses only known
    /// variables.
    pub fn compile(source: &str) -> Result<Expr, String> {
        let program = cel::Program::compile(source).map_err(|e| {
            // cel says "ERROR: <input>:1:10: Syntax error: ..." and then draws
            // the source with a caret; keep the column and the reason.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let reason = first.strip_prefix("ERROR: <input>:").and_then(|rest| {
                let mut parts = rest.splitn(3, ':');
                let (_line, column, reason) = (parts.next()?, parts.next()?, parts.next()?);
                Some(format!("{} (at character {column})", reason.trim()))
            });
            format!(
                "invalid CEL expression `{source}`: {}",
                reason.unwrap_or_else(|| first.to_string())
            )
        })?;
        let references = program.references();
        let bound = macro_variables(source);
        let mut variables = Vec::new();
        for name in references.variables() {
            match VARIABLES.iter().find(|known| **known == name) {
                Some(known) => variables.push(*known),
                None if bound.iter().any(|b| b == name) => {}
                None => {
                    return Err(format!(
                        "`{source}` uses unknown variable `{name}` (expressions can use {})",
                        VARIABLES.join(", ")
                    ));
                }
            }
        }
        Ok(Expr {
            source: source.into(),
            program: Arc::new(program),
            steps: step_references(source),
            variables,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Ids of the steps it reads (`steps.<id>`).
    pub fn steps(&self) -> &[String] {
        &self.steps
    }

    /// Whether it uses `variable`.
    pub fn uses(&self, variable: &str) -> bool {
        self.variables.contains(&variable)
    }

    /// Evaluates it to a JSON value.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        let error = |message: String| EvalError {
            expression: self.source.to_string(),
            message,
        };
        let mut context = cel::Context::default();
        for variable in &self.variables {
            let value = match *variable {
                "input" => to_cel(scope.input),
                "steps" => cel_map(scope.steps),
                "item" => scope.item.map_or(cel::Value::Null, to_cel),
                _ => scope.index.map_or(cel::Value::Null, |i| cel::Value::Int(i as i64)),
            };
            context.add_variable_from_value(*variable, value);
        }
        let value = self.program.execute(&context).map_err(|e| error(e.to_string()))?;
        value
            .json()
            .map_err(|e| error(format!("the result cannot be JSON: {e}")))
    }

    /// Evaluates it as a condition: the result must be a boolean.
    pub fn eval_bool(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError {
                expression: self.source.to_string(),
                message: format!("a condition must be true or false, not {}", describe(&other)),
            }),
        }
    }
}

/// JSON to CEL, with whole numbers as `int` (CEL will not mix `uint` and
/// `int`, so `input.amount > 100` must see an `int`); only integers beyond
/// `i64` become `uint`, and fractions `double`.
pub(crate) fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => cel_map(fields),
    }
}

fn cel_map(fields: &Map<String, Value>) -> cel::Value {
    let map = fields
        .iter()
        .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
        .collect();
    cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
}

/// Variables bound by CEL's comprehension macros, e.g. `x` in
/// `list.map(x, x * 2)`: references, but not inputs.
pub(crate) fn macro_variables(source: &str) -> Vec<String> {
    let mut bound = Vec::new();
    for mac in ["map(", "filter(", "all(", "exists(", "exists_one("] {
        let mut rest = source;
        while let Some(at) = rest.find(mac) {
            let preceded_by_dot = rest[..at].ends_with('.');
            rest = &rest[at + mac.len()..];
            if !preceded_by_dot {
                continue;
            }
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && rest.trim_start()[name.len()..].trim_start().starts_with(',') {
                bound.push(name);
            }
        }
    }
    bound
}

/// Finds `steps.<id>` and `steps['<id>']` / `steps["<id>"]` in a source.
fn step_references(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut start = 0;
    while let Some(offset) = source[start..].find("steps") {
        let at = start + offset;
        start = at + 5;
        let preceded =
            at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b'.');
        if preceded {
            continue;
        }
        let rest = &source[at + 5..];
        let id: String = if let Some(after) = rest.strip_prefix('.') {
            after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        } else if let Some(after) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            after.chars().take_while(|c| *c != '\'' && *c != '"').collect()
        } else {
            continue;
        };
        if !id.is_empty() && !found.contains(&id) {
            found.push(id);
        }
    }
    found
}

/// Names a JSON value's type for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON value with `${{ expr }}` in its strings.
#[derive(Debug, Clone)]
pub enum Template {
    /// No expressions inside: used as is.
    Literal(Value),
    /// A string that is exactly one `${{ expr }}`: the expression's value,
    /// whatever its type.
    Expr(Expr),
    /// A string mixing text and expressions: always a string.
    Text(Vec<Piece>),
    /// A list with expressions inside.
    Array(Vec<Template>),
    /// An object with expressions inside.
    Object(Vec<(String, Template)>),
}

/// Part of a [`Template::Text`].
#[derive(Debug, Clone)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// An expression, rendered as a string.
    Expr(Expr),
}

impl Template {
    /// Compiles the expressions in `value`. Errors are collected with the
    /// path below `path` where they occur.
    pub fn compile(value: &Value, path: &str, errors: &mut Vec<(String, String)>) -> Template {
        match value {
            Value::String(text) if text.contains("${{") => compile_text(text, path, errors),
            Value::Array(items) => {
                let items: Vec<Template> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Template::compile(item, &format!("{path}[{i}]"), errors))
                    .collect();
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(items)
                }
            }
            Value::Object(fields) => {
                let fields: Vec<(String, Template)> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Template::compile(v, &format!("{path}.{k}"), errors)))
                    .collect();
                if fields.iter().all(|(_, t)| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(fields)
                }
            }
            _ => Template::Literal(value.clone()),
        }
    }

    /// Every expression inside, in order.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => out.push(e),
            Template::Text(pieces) => out.extend(pieces.iter().filter_map(|p| match p {
                Piece::Expr(e) => Some(e),
                Piece::Text(_) => None,
            })),
            Template::Array(items) => items.iter().for_each(|t| t.collect(out)),
            Template::Object(fields) => fields.iter().for_each(|(_, t)| t.collect(out)),
        }
    }

    /// Evaluates the expressions and builds the value.
    pub fn render(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        Ok(match self {
            Template::Literal(value) => value.clone(),
            Template::Expr(expr) => expr.eval(scope)?,
            Template::Text(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Expr(e) => match e.eval(scope)? {
                            Value::String(s) => text.push_str(&s),
                            other => text.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(text)
            }
            Template::Array(items) => Value::Array(items.iter().map(|t| t.render(scope)).collect::<Result<_, _>>()?),
            Template::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(scope)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
        })
    }
}

fn compile_text(text: &str, path: &str, errors: &mut Vec<(String, String)>) -> Template {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("${{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 3..];
        let Some(close) = after.find("}}") else {
            errors.push((
                path.to_string(),
                format!("`${{{{` without a closing `}}}}` in {text:?}"),
            ));
            return Template::Literal(Value::String(text.to_string()));
        };
        let source = after[..close].trim();
        match Expr::compile(source) {
            Ok(expr) => pieces.push(Piece::Expr(expr)),
            Err(message) => errors.push((path.to_string(), message)),
        }
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    match pieces.as_slice() {
        [Piece::Expr(expr)] => Template::Expr(expr.clone()),
        _ => Template::Text(pieces),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope_eval(template: &str, input: Value, steps: Value) -> Result<Value, EvalError> {
        let mut errors = Vec::new();
        let t = Template::compile(&Value::String(template.into()), "t", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let steps = steps.as_object().cloned().unwrap_or_default();
        t.render(&Scope {
            input: &input,
            steps: &steps,
            item: None,
            index: None,
        })
    }

    #[test]
    fn numbers_behave_as_people_expect() {
        assert_eq!(
            scope_eval("${{ input.n > 100 }}", json!({"n": 150}), json!({})),
            Ok(json!(true))
        );
        // CEL never mixes int and double implicitly: convert explicitly.
        assert_eq!(
            scope_eval("${{ double(input.x) / 2.0 }}", json!({"x": 3}), json!({})),
            Ok(json!(1.5))
        );
        assert_eq!(
            scope_eval("${{ input.f * 2.0 }}", json!({"f": 1.25}), json!({})),
            Ok(json!(2.5))
        );
        assert_eq!(
            scope_eval("${{ size(input.items) }}", json!({"items": [1, 2]}), json!({})),
            Ok(json!(2))
        );
    }

    #[test]
    fn a_whole_expression_keeps_its_type() {
        assert_eq!(
            scope_eval("${{ input.n * 2 }}", json!({"n": 21}), json!({})),
            Ok(json!(42))
        );
        assert_eq!(
            scope_eval("${{ input }}", json!({"a": [1]}), json!({})),
            Ok(json!({"a": [1]}))
        );
    }

    #[test]
    fn text_with_expressions_is_a_string() {
        let out = scope_eval(
            "order ${{ input.id }}: ${{ steps.pay.output.ok }}",
            json!({"id": "A"}),
            json!({"pay": {"output": {"ok": true}}}),
        );
        assert_eq!(out, Ok(json!("order A: true")));
    }

    #[test]
    fn finds_the_steps_an_expression_reads() {
        let e = Expr::compile(
            "steps.a.output.x > 1 && has(steps.b_2.output) || steps['c'].status == 'ok' || input.mysteps.d",
        )
        .unwrap();
        assert_eq!(e.steps(), ["a", "b_2", "c"]);
        assert!(e.uses("steps") && e.uses("input") && !e.uses("item"));
    }

    #[test]
    fn macro_variables_are_not_unknown() {
        let e = Expr::compile("steps.a.output.map(g, g.x).filter(v, v > 1).exists(w, w == 2)").unwrap();
        assert!(e.uses("steps"));
        assert!(
            Expr::compile("input.list.all(x, x > y)")
                .unwrap_err()
                .contains("unknown variable `y`")
        );
    }

    #[test]
    fn refuses_unknown_variables_and_bad_syntax() {
        assert!(
            Expr::compile("inptu.x")
                .unwrap_err()
                .contains("unknown variable `inptu`")
        );
        assert!(
            Expr::compile("input.x +")
                .unwrap_err()
                .starts_with("invalid CEL expression `input.x +`")
        );
        let mut errors = Vec::new();
        Template::compile(&json!({"a": ["${{ input.x"]}), "steps[0].input", &mut errors);
        assert_eq!(errors[0].0, "steps[0].input.a[0]");
    }

    #[test]
    fn conditions_must_be_booleans() {
        let e = Expr::compile("input.n").unwrap();
        let steps = Map::new();
        let err = e
            .eval_bool(&Scope {
                input: &json!({"n": 1}),
                steps: &steps,
                item: None,
                index: None,
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`input.n`: a condition must be true or false, not a number"
        );
    }
}
