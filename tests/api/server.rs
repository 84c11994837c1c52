//! The real `weft serve` binary on 127.0.0.1:0 over a temporary data
//! directory, and a small client for it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::common;

pub const ADMIN: &str = "test-admin-token";

/// A master key for servers that keep secrets (32 bytes, hex).
pub const MASTER_KEY: &str = "5eed0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2";

/// A running server process.
pub struct Server {
    child: Child,
    pub url: String,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts a server on `store` (its scratch directory as `--data`) with
    /// extra flags.
    pub fn on(store: &TestStore, flags: &[&str]) -> Server {
        let mut all = vec!["--store", store.arg()];
        all.extend_from_slice(flags);
        Server::start(store.scratch(), &all)
    }

    /// Starts a server on `store` with extra flags and a master key, so it
    /// keeps secrets on PostgreSQL too (where it makes none itself).
    pub fn on_with_key(store: &TestStore, flags: &[&str]) -> Server {
        let mut all = vec!["--store", store.arg()];
        all.extend_from_slice(flags);
        Server::start_with(store.scratch(), &all, &[("WEFT_MASTER_KEY", MASTER_KEY)])
    }

    /// Starts a server on `data` with extra flags.
    pub fn start(data: &Path, flags: &[&str]) -> Server {
        Server::start_with(data, flags, &[])
    }

    /// Starts a server on `data` with extra flags and environment.
    pub fn start_with(data: &Path, flags: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(flags)
            .envs(env.iter().copied())
            .env("WEFT_ADMIN_TOKEN", ADMIN)
            .env("WEFT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting weft serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("weft serve exited before listening")
                .expect("reading weft serve's stderr");
            if let Some(url) = line.strip_prefix("weft listening on ") {
                break url.to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            url,
            // A fresh connection per request: after a 413 the server closes
            // the connection without reading the rest of the body, and a
            // pooled connection would then fail the next request.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(mut self) {
        self.child.kill().expect("killing the server");
        self.child.wait().expect("reaping the server");
    }

    /// SIGTERM, then waits for the process to exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a request with `token` and returns status and JSON body
    /// (`Value::Null` when there is none).
    pub async fn call(&self, token: Option<&str>, method: Method, path: &str, body: Body) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, bytes) => request.header("content-type", content_type).body(bytes),
        };
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Creates a tenant and returns its API key.
    pub async fn tenant(&self, name: &str, quotas: Value) -> String {
        let (status, body) = self
            .call(
                Some(ADMIN),
                Method::POST,
                "/v1/admin/tenants",
                Body::Json(json!({"name": name, "quotas": quotas})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["api_key"]["token"].as_str().expect("a token").to_string()
    }

    /// Uploads example tasks under their own names.
    pub async fn upload(&self, token: &str, names: &[&str]) {
        for name in names {
            let bytes = common::guest_bytes(name);
            let (status, body) = self
                .call(
                    Some(token),
                    Method::PUT,
                    &format!("/v1/modules/{name}"),
                    Body::Raw("application/wasm", bytes),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        }
    }

    /// Pushes a workflow document (YAML).
    pub async fn push(&self, token: &str, name: &str, yaml: &str) -> Value {
        let (status, body) = self
            .call(
                Some(token),
                Method::PUT,
                &format!("/v1/workflows/{name}"),
                Body::Raw("application/yaml", yaml.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Starts a run and returns its id.
    pub async fn start_run(&self, token: &str, workflow: &str, input: Value) -> u64 {
        let (status, body) = self
            .call(
                Some(token),
                Method::POST,
                &format!("/v1/workflows/{workflow}/runs"),
                Body::Json(json!({"input": input})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().expect("a run id")
    }

    /// Polls a run until it has ended; returns it.
    pub async fn wait(&self, token: &str, run: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self
                .call(Some(token), Method::GET, &format!("/v1/runs/{run}"), Body::None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["status"] != "running" {
                return body;
            }
            assert!(Instant::now() < deadline, "run {run} did not end: {body}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request body.
#[derive(Clone)]
pub enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// The order workflow and its input, as the examples have them.
pub fn order() -> (String, Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-tasks");
    let yaml = std::fs::read_to_string(root.join("workflows/order.yaml")).expect("order.yaml");
    let input = std::fs::read_to_string(root.join("inputs/order.json")).expect("order.json");
    (yaml, serde_json::from_str(&input).expect("order.json is JSON"))
}

pub const ORDER_TASKS: [&str; 5] = [
    "validate_payment",
    "reserve_inventory",
    "notify_warehouse",
    "send_confirmation",
    "refund_payment",
];
