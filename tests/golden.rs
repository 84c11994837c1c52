//! Golden tests for validation: every document in `tests/golden/invalid/`
//! is refused with exactly the text in its `.expected` file (one problem a
//! line). Run with `WEFT_BLESS=1` to write the files after an intended
//! change, then review the diff.
//!
//! Also: hostile documents are refused promptly, without exhausting memory.

use std::path::Path;
use std::time::{Duration, Instant};

use weft::spec::{self, SpecConfig};

#[test]
fn every_invalid_document_fails_with_its_expected_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/invalid");
    let bless = std::env::var_os("WEFT_BLESS").is_some();
    let mut cases = 0;
    let mut mismatches = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "json")) {
            continue;
        }
        cases += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let errors = match spec::parse(&text, &SpecConfig::default()) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(errors) => format!("{errors}\n"),
        };
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &errors).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing (run with WEFT_BLESS=1)", expected_path.display()));
        if errors != expected {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{errors}",
                path.display()
            ));
        }
    }
    assert!(cases >= 15, "only {cases} golden cases found");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Parses `text` and returns its errors, checking it took under a second.
fn refused(text: &str) -> String {
    let started = Instant::now();
    let result = spec::parse(text, &SpecConfig::default());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    result.map(|_| ()).expect_err("accepted").to_string()
}

#[test]
fn an_alias_bomb_is_refused() {
    // Ten times ten times ... : 10^30 strings once expanded.
    let mut text = String::from("name: bomb\ninput_schema:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..30 {
        let p = i - 1;
        text.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("steps:\n  - {id: a, task: hello}\n");
    let errors = refused(&text);
    assert!(errors.contains("budget"), "{errors}");
}

#[test]
fn absurd_nesting_is_refused() {
    let depth = 100_000;
    let text = format!(
        "name: deep\nsteps:\n  - id: a\n    task: hello\n    input: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let errors = refused(&text);
    assert!(errors.contains("recursion limit exceeded"), "{errors}");
}

#[test]
fn a_huge_document_is_refused_before_parsing() {
    let text = format!(
        "name: huge\nsteps:\n  - {{id: a, task: hello}}\n# {}\n",
        "x".repeat(2 << 20)
    );
    assert!(refused(&text).starts_with("the document is 2097"), "size cap");
}

#[test]
fn many_steps_are_refused() {
    let mut text = String::from("name: many\nsteps:\n");
    for i in 0..1_001 {
        text.push_str(&format!("  - {{id: s{i}, task: hello}}\n"));
    }
    assert!(refused(&text).contains("1001 steps is more than the 1000 allowed"));
}

#[test]
fn the_example_workflows_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-tasks/workflows");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(errors) = spec::parse(&text, &SpecConfig::default()) {
            panic!("{}:\n{errors}", path.display());
        }
    }
}
