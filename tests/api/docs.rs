//! docs/api.md and the served OpenAPI document list the same operations,
//! and the same error codes with the same statuses.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use weft::api::ErrorCode;

use crate::server::{Body, Server};

fn api_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).expect("docs/api.md")
}

/// The text of the section under `heading` (up to the next `## `).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("docs/api.md has no `## {heading}`"));
    let rest = &doc[start + heading.len() + 5..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// Every `` `METHOD /path` `` in `text`.
fn operations_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for quoted in text.split('`').skip(1).step_by(2) {
        if let Some((method, path)) = quoted.split_once(' ')
            && ["GET", "PUT", "POST", "DELETE", "PATCH"].contains(&method)
            && path.starts_with('/')
        {
            // Query strings are shown in the doc, not part of the path.
            let path = path.split('?').next().unwrap_or(path);
            found.insert(format!("{method} {path}"));
        }
    }
    found
}

async fn document() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, document) = server.call(None, Method::GET, "/v1/openapi.json", Body::None).await;
    assert_eq!(status, StatusCode::OK);
    document
}

#[tokio::test]
async fn docs_api_md_lists_exactly_the_documents_operations() {
    let document = document().await;
    let mut served = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            served.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let doc = api_md();
    let listed = operations_in(section(&doc, "Endpoints"));
    let undocumented: Vec<_> = served.difference(&listed).collect();
    let unserved: Vec<_> = listed.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in docs/api.md's Endpoints: {undocumented:?}\nin docs/api.md but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn docs_api_md_lists_every_error_code_under_its_status() {
    let document = document().await;
    let codes: BTreeSet<&str> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the ErrorCode enum")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let doc = api_md();
    let table = section(&doc, "Errors");
    let mut listed = BTreeSet::new();
    for row in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| status"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(status) = cells[1].parse::<u16>() else { continue };
        for code in cells[2].split('`').skip(1).step_by(2) {
            listed.insert(code);
            let parsed: ErrorCode = serde_json::from_value(Value::from(code))
                .unwrap_or_else(|_| panic!("docs/api.md lists {code:?}, which is not an error code"));
            assert_eq!(
                parsed.status().as_u16(),
                status,
                "docs/api.md lists {code} under {status}"
            );
        }
    }
    let missing: Vec<_> = codes.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&codes).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "codes missing from docs/api.md's Errors table: {missing:?}; listed but not in the document: {unknown:?}"
    );
}
