//! The docs stay true to the code: the checked-in JSON Schema is the one
//! the code generates, and every example in docs/workflow-format.md is a
//! valid document.

use std::path::Path;

use weft::spec::{self, SpecConfig};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_checked_in_schema_is_generated_from_the_code() {
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs/workflow.schema.json")).unwrap()).unwrap();
    assert_eq!(
        stored,
        spec::json_schema(),
        "regenerate with: weft schema > docs/workflow.schema.json"
    );
}

#[test]
fn the_schema_accepts_the_example_workflows() {
    let schema = spec::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for name in ["order.yaml", "fanout.yaml", "conditional.yaml", "retry.yaml"] {
        let text = std::fs::read_to_string(root().join("example-tasks/workflows").join(name)).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn every_example_in_the_format_doc_is_valid() {
    let doc = std::fs::read_to_string(root().join("docs/workflow-format.md")).unwrap();
    let mut examples = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let text = &block[..block.find("```").unwrap()];
        examples += 1;
        if let Err(errors) = spec::parse(text, &SpecConfig::default()) {
            panic!("example {examples} is invalid:\n{errors}\n---\n{text}");
        }
    }
    assert!(examples >= 7, "found {examples} examples");
}
