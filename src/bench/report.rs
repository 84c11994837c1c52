//! The bench's output: each figure printed as it is measured, and kept
//! for the `--json` summary (one flat object, a key per figure).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::Machine;

/// Which way a figure should go, and how far.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At most this much.
    AtMost(f64),
    /// At least this much.
    AtLeast(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(limit) => value <= limit,
            Target::AtLeast(limit) => value >= limit,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtMost(limit) => format!("<= {}", number(limit)),
            Target::AtLeast(limit) => format!(">= {}", number(limit)),
        }
    }
}

/// The figures measured so far.
#[derive(Debug)]
pub struct Report {
    machine: Machine,
    quick: bool,
    figures: BTreeMap<String, Value>,
    targets: Vec<Value>,
}

impl Report {
    /// An empty report of a run on `machine`.
    pub fn new(machine: Machine, quick: bool) -> Report {
        Report {
            machine,
            quick,
            figures: BTreeMap::new(),
            targets: Vec::new(),
        }
    }

    /// Prints what the figures are measured on.
    pub fn header(&self) {
        let m = &self.machine;
        println!(
            "weft bench{}: {} cores ({}), {:.1} GiB memory, disk {}",
            if self.quick {
                " --quick (small loads: a first look)"
            } else {
                ""
            },
            m.cores,
            m.cpu,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.disk
        );
    }

    /// Starts a section of the output.
    pub fn section(&self, title: &str) {
        println!("\n{title}");
    }

    /// Prints a line of a section that is not a figure (what it runs on).
    pub fn line(&self, text: &str) {
        println!("  {text}");
    }

    /// Prints why a section measured nothing, and records the reason under
    /// `key`; the rest of the bench goes on.
    pub fn skipped(&mut self, key: &str, reason: &str) {
        println!("  skipped: {}", reason.replace('\n', "\n    "));
        self.figures.insert(key.into(), json!(reason));
    }

    /// Prints and records a figure.
    pub fn figure(&mut self, key: &str, label: &str, value: f64, unit: &str) {
        println!("  {label:<56} {:>12} {unit}", number(value));
        self.figures.insert(key.into(), json!(round(value)));
    }

    /// Prints and records a figure measured at several levels (e.g. 1, 2
    /// and 3 nodes), kept as a JSON list in that order.
    pub fn list(&mut self, key: &str, label: &str, values: &[f64], unit: &str) {
        let text: Vec<String> = values.iter().map(|&v| number(v)).collect();
        println!("  {label:<56} {:>12} {unit}", text.join(" / "));
        let rounded: Vec<f64> = values.iter().map(|&v| round(v)).collect();
        self.figures.insert(key.into(), json!(rounded));
    }

    /// Prints and records a figure with its target, and whether it is met.
    pub fn target(&mut self, key: &str, label: &str, value: f64, unit: &str, target: Target) {
        let met = target.met(value);
        println!(
            "  {label:<56} {:>12} {unit:<6} target {} {}",
            number(value),
            target.describe(),
            if met { "(met)" } else { "(MISSED)" }
        );
        self.figures.insert(key.into(), json!(round(value)));
        self.targets
            .push(json!({ "key": key, "target": target.describe(), "met": met }));
    }

    /// Records a value without printing it (a count, a setting).
    pub fn note(&mut self, key: &str, value: Value) {
        self.figures.insert(key.into(), value);
    }

    /// A figure recorded so far.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.figures.get(key)
    }

    /// The summary: every figure under its key, the machine, the targets.
    pub fn to_json(&self) -> Value {
        let mut summary: serde_json::Map<String, Value> =
            self.figures.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        summary.insert("machine".into(), json!(self.machine));
        summary.insert("quick".into(), json!(self.quick));
        summary.insert("targets".into(), Value::Array(self.targets.clone()));
        Value::Object(summary)
    }

    /// Writes the summary to `path` as JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A figure to a sensible number of digits.
fn round(value: f64) -> f64 {
    if value.abs() >= 100.0 {
        value.round()
    } else {
        (value * 1000.0).round() / 1000.0
    }
}

/// A figure for people: thousands separated, small ones with decimals.
fn number(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.2}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1234567.4), "1,234,567");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.756), "0.76");
        assert_eq!(number(-4321.0), "-4,321");
        assert_eq!(round(0.75612), 0.756);
        assert_eq!(round(1234.56), 1235.0);
    }

    #[test]
    fn targets_are_judged_both_ways() {
        assert!(Target::AtMost(1.3).met(1.2));
        assert!(!Target::AtMost(1.3).met(1.31));
        assert!(Target::AtLeast(10_000.0).met(10_000.0));
        assert!(!Target::AtLeast(10_000.0).met(9_999.0));
    }
}
