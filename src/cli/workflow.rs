//! `weft validate` and `weft schema`: check workflow documents without
//! running them, and print the format's JSON Schema.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{EXIT_FAILED, EXIT_OK};
use crate::spec::{self, SpecConfig};

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Workflow documents (YAML or JSON).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Prints every problem of every file as `file:line:column: path: message`;
/// exits 1 when any file has a problem.
pub(crate) fn validate(args: ValidateArgs) -> anyhow::Result<u8> {
    let mut failed = false;
    for file in &args.files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        match spec::parse(&text, &SpecConfig::default()) {
            Ok(workflow) => println!(
                "{}: ok ({}, {} steps)",
                file.display(),
                workflow.name,
                workflow.steps.len()
            ),
            Err(errors) => {
                failed = true;
                for error in &errors.0 {
                    println!("{}:{error}", file.display());
                }
            }
        }
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// Prints the JSON Schema of workflow documents.
pub(crate) fn schema() -> anyhow::Result<u8> {
    println!("{}", serde_json::to_string_pretty(&spec::json_schema())?);
    Ok(EXIT_OK)
}
