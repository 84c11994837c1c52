//! The CEL expression that turns an inbound hook's request into a run's
//! input: it sees `body` (the JSON body; a body that is not JSON is its
//! text) and `headers` (lower-case names to values), and must give an
//! object. `body` itself is the mapping when none is written.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::spec::expr::{macro_variables, to_cel};

/// The variables a mapping may use.
const VARIABLES: [&str; 2] = ["body", "headers"];

/// A compiled mapping.
#[derive(Clone)]
pub struct Mapping {
    source: Arc<str>,
    program: Arc<cel::Program>,
}

impl Mapping {
    /// Compiles `source`, checking that it uses only `body` and `headers`.
    pub fn compile(source: &str) -> Result<Mapping, String> {
        let program = cel::Program::compile(source).map_err(|e| {
            let text = e.to_string();
            format!(
                "`{source}` is not a CEL expression: {}",
                text.lines().next().unwrap_or_default()
            )
        })?;
        let bound = macro_variables(source);
        for name in program.references().variables() {
            if !VARIABLES.contains(&name) && !bound.iter().any(|b| b == name) {
                return Err(format!(
                    "`{source}` uses unknown variable `{name}` (a mapping can use body, headers)"
                ));
            }
        }
        Ok(Mapping {
            source: source.into(),
            program: Arc::new(program),
        })
    }

    /// The input for a request.
    pub fn apply(&self, body: &Value, headers: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut context = cel::Context::default();
        context.add_variable_from_value("body", to_cel(body));
        context.add_variable_from_value("headers", to_cel(&Value::Object(headers.clone())));
        let value = self
            .program
            .execute(&context)
            .map_err(|e| format!("`{}` failed: {e}", self.source))?
            .json()
            .map_err(|e| format!("`{}` gave what JSON cannot hold: {e}", self.source))?;
        match value {
            Value::Object(input) => Ok(input),
            other => Err(format!(
                "`{}` gave {}, not an object: a run's input is an object",
                self.source,
                crate::spec::expr::describe(&other)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_mapping_reads_the_body_and_headers_and_must_give_an_object() {
        let mapping = Mapping::compile("{'order': body.data.id, 'source': headers['user-agent']}").unwrap();
        let headers = json!({"user-agent": "Stripe/1.0"}).as_object().unwrap().clone();
        let input = mapping.apply(&json!({"data": {"id": "ord_1"}}), &headers).unwrap();
        assert_eq!(Value::Object(input), json!({"order": "ord_1", "source": "Stripe/1.0"}));
        let error = Mapping::compile("body.id")
            .unwrap()
            .apply(&json!({"id": 3}), &headers)
            .unwrap_err();
        assert!(error.contains("not an object"), "{error}");
        let error = Mapping::compile("input.x").err().unwrap();
        assert!(error.contains("unknown variable `input`"), "{error}");
        assert!(Mapping::compile("body.").is_err());
    }
}
