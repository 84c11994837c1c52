//! Makes one HTTP request and returns the answer: the generic "call a
//! service" step. `example-tasks/workflows/order-http.yaml` uses it to
//! charge the card and send the e-mail.
//!
//! Input:
//!
//! ```json
//! {"method": "POST", "url": "https://api.example.com/v1/charges",
//!  "json": {"amount_cents": 4999}, "headers": {"idempotency-key": "A-1001"},
//!  "expect": [200, 201], "secrets": ["name"]}
//! ```
//!
//! `method` defaults to `GET`; `json` (a JSON body) or `text` (a text
//! body) is sent when given. A status outside `expect` (default: any 2xx)
//! fails the step with code `http_status`, retryable for 5xx and 429.
//!
//! The output is the answer (`status`, `url`, `content_type`, `body`:
//! parsed JSON when it is JSON, text otherwise) and what the task itself
//! could see: its environment and the secrets named in `secrets` (the
//! value when the step lists the secret, `null` otherwise). The tests use
//! that to show that a secret the host put into a request never reached
//! the task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::http::{self, Method};
use weft_sdk::{TaskError, secrets};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fetch {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    expect: Option<Vec<u16>>,
    #[serde(default)]
    secrets: Vec<String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Serialize)]
struct Fetched {
    status: u16,
    url: String,
    content_type: Option<String>,
    body: Value,
    seen: Seen,
}

/// What the task could see from inside its sandbox.
#[derive(Serialize)]
struct Seen {
    environment: BTreeMap<String, String>,
    secrets: BTreeMap<String, Option<String>>,
}

fn http_fetch(fetch: Fetch) -> Result<Fetched, TaskError> {
    let method = Method::from_bytes(fetch.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| TaskError::new("invalid_method", format!("{:?} is not an HTTP method", fetch.method)))?;
    let mut request = http::Request::new(method, &fetch.url);
    for (name, value) in &fetch.headers {
        request = request.header(name, value.as_str());
    }
    if let Some(json) = &fetch.json {
        request = request.json(json)?;
    } else if let Some(text) = fetch.text {
        request = request.header("content-type", "text/plain; charset=utf-8").body(text);
    }
    weft_sdk::info!("{} {}", fetch.method, fetch.url);
    let response = request.send()?;
    let status = response.status();
    let expected = match &fetch.expect {
        Some(codes) => codes.contains(&status),
        None => (200..300).contains(&status),
    };
    if !expected {
        return Err(http::HttpError::Status {
            status,
            body: response.text().unwrap_or_default().chars().take(512).collect(),
        }
        .into());
    }
    let url = response.url().to_string();
    let content_type = response.header("content-type").map(str::to_string);
    let text = response.text()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let seen = Seen {
        environment: std::env::vars().collect(),
        secrets: fetch
            .secrets
            .iter()
            .map(|name| (name.clone(), secrets::get(name)))
            .collect(),
    };
    Ok(Fetched {
        status,
        url,
        content_type,
        body,
        seen,
    })
}

weft_sdk::export_task!(http_fetch);
