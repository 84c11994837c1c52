//! Redaction: the values of the secrets an attempt was given are replaced
//! by `[redacted]` in everything it leaves behind (its logs, its output,
//! its error, its requests' record), whether the task printed them on
//! purpose or not.
//!
//! Values shorter than [`MIN_REDACTED`] characters are left alone: hiding
//! every `1` of an output would destroy it and protect little.

use std::borrow::Cow;

use serde_json::Value;

use super::http::HttpCall;
use super::{AttemptReport, Outcome};

/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

/// The shortest value that is redacted.
pub const MIN_REDACTED: usize = 4;

/// The values to hide, longest first (so that a value holding another is
/// hidden whole), each also as JSON escapes it.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// A redactor of `values`.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut all: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| v.chars().count() >= MIN_REDACTED) {
            all.push(value.to_string());
            let escaped = serde_json::to_string(value).expect("a string is JSON");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != value {
                all.push(escaped.to_string());
            }
        }
        all.sort_by_key(|v| std::cmp::Reverse(v.len()));
        all.dedup();
        Redactor { values: all }
    }

    /// Whether it hides nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every value hidden.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), REDACTED));
            }
        }
        out
    }

    /// Hides the start of a value at the end of a text that was cut off
    /// there (a capped stream), which [`Redactor::text`] cannot see.
    fn cut_off(&self, text: &mut String) {
        for value in &self.values {
            let start = (MIN_REDACTED..value.len())
                .rev()
                .filter(|n| value.is_char_boundary(*n))
                .find(|n| text.ends_with(&value[..*n]));
            if let Some(n) = start {
                text.truncate(text.len() - n);
                text.push_str(REDACTED);
            }
        }
    }

    fn replace(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.text(text) {
            *text = redacted;
        }
    }

    /// A JSON text with every value hidden inside its strings and keys,
    /// and a number holding one replaced by the string `[redacted]`; still
    /// JSON. Text that is not JSON is redacted as text.
    pub fn json(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let Ok(mut value) = serde_json::from_str::<Value>(text) else {
            return self.text(text).into_owned();
        };
        self.value(&mut value);
        serde_json::to_string(&value).expect("a value is JSON")
    }

    fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => self.replace(s),
            Value::Number(n) => {
                if self.text(&n.to_string()) != n.to_string() {
                    *value = Value::String(REDACTED.into());
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.value(&mut item);
                    map.insert(self.text(&key).into_owned(), item);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// An attempt's report with every value hidden.
    pub fn report(&self, report: &mut AttemptReport) {
        if self.is_empty() {
            return;
        }
        match &mut report.outcome {
            Outcome::Ok { output } => *output = self.json(output),
            Outcome::GuestError { code, message, .. } => {
                self.replace(code);
                self.replace(message);
            }
            Outcome::Trap { message } => self.replace(message),
            Outcome::InvalidOutput { reason } => self.replace(reason),
            Outcome::OutOfFuel | Outcome::MemoryLimit | Outcome::Timeout => {}
        }
        let logs = &mut report.logs;
        logs.lines.iter_mut().for_each(|line| self.replace(&mut line.message));
        self.replace(&mut logs.stdout);
        self.replace(&mut logs.stderr);
        if logs.truncated {
            self.cut_off(&mut logs.stdout);
            self.cut_off(&mut logs.stderr);
            if let Some(last) = logs.lines.last_mut() {
                self.cut_off(&mut last.message);
            }
        }
        for HttpCall {
            url, refused, error, ..
        } in &mut report.http
        {
            self.replace(url);
            refused
                .iter_mut()
                .chain(error.iter_mut())
                .for_each(|text| self.replace(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_values_in_text_and_at_a_cut_off_end() {
        let r = Redactor::new(["s3cr3t-token", "abc"]);
        assert_eq!(r.text("key=s3cr3t-token;"), "key=[redacted];");
        assert_eq!(r.text("the key is s3cr3t-to"), "the key is s3cr3t-to");
        let mut cut = "the key is s3cr3t-to".to_string();
        r.cut_off(&mut cut);
        assert_eq!(cut, "the key is [redacted]");
        assert_eq!(r.text("abc is too short to hide"), "abc is too short to hide");
        assert_eq!(r.text("nothing here"), "nothing here");
    }

    #[test]
    fn keeps_json_json() {
        let r = Redactor::new(["hunter22", "31415926", "quo\"te!"]);
        let out = r.json(r#"{"pw":"x hunter22 y","n":31415926,"hunter22":1,"q":"quo\"te!"}"#);
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["pw"], "x [redacted] y");
        assert_eq!(value["n"], "[redacted]");
        assert_eq!(value["[redacted]"], 1);
        assert_eq!(value["q"], "[redacted]");
        assert!(!out.contains("hunter22"));
    }
}
