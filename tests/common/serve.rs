//! A real `weft serve` process on 127.0.0.1:0 for tests that need the
//! whole binary (its start-up checks, its log, its files): started with
//! the test's admin token and master key, its stderr kept whole, stopped
//! with SIGTERM.

#![allow(dead_code)]

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The admin token every server here takes.
pub const ADMIN: &str = "test-admin-token";

/// A running `weft serve`, its stderr kept whole.
pub struct Server {
    child: Child,
    pub url: String,
    log: Arc<Mutex<Vec<u8>>>,
    pub http: reqwest::Client,
}

pub fn serve_command(data: &Path, store: Option<&str>, key: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("WEFT_ADMIN_TOKEN", ADMIN)
        // Everything the server logs, ours and the libraries': the value
        // must be in none of it.
        .env("WEFT_LOG", "debug")
        .env_remove("WEFT_MASTER_KEY")
        .env_remove("WEFT_STORE")
        .env_remove("WEFT_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(store) = store {
        command.args(["--store", store]);
    }
    if let Some(key) = key {
        command.env("WEFT_MASTER_KEY", key);
    }
    command
}

impl Server {
    pub fn start(data: &Path, store: Option<&str>, key: Option<&str>) -> Server {
        Server::spawn(serve_command(data, store, key))
    }

    /// Starts `command` (a [`serve_command`], perhaps with more flags) and
    /// waits until it says where it listens.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command.spawn().expect("starting weft serve");
        let mut stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let into = log.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            let mut sent = false;
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let mut log = into.lock().unwrap();
                log.extend_from_slice(&buffer[..n]);
                if !sent && let Some(at) = find(&log, b"weft listening on ") {
                    let rest = &log[at + 18..];
                    if let Some(end) = rest.iter().position(|&b| b == b'\n') {
                        let _ = tx.send(String::from_utf8_lossy(&rest[..end]).trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "weft serve did not start:\n{}",
                String::from_utf8_lossy(&log.lock().unwrap())
            )
        });
        Server {
            child,
            url,
            log,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }

    pub async fn tenant(&self, name: &str) -> String {
        let (status, body) = self
            .call(ADMIN, Method::POST, "/v1/admin/tenants", Some(json!({"name": name})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        body["api_key"]["token"].as_str().unwrap().to_string()
    }

    pub async fn set(&self, token: &str, name: &str, value: &str) -> (StatusCode, String) {
        self.call(
            token,
            Method::PUT,
            &format!("/v1/secrets/{name}"),
            Some(json!({ "value": value })),
        )
        .await
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// SIGTERM and wait; returns everything it logged.
    pub fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `weft serve` that must refuse to start; its output.
pub fn refused(data: &Path, store: Option<&str>, key: Option<&str>) -> String {
    let mut command = serve_command(data, store, key);
    command.env("WEFT_LOG", "warn");
    let output: Output = command.output().expect("running weft serve");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "weft serve started with the wrong key:\n{text}"
    );
    text
}
