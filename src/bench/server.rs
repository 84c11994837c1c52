//! The real `weft serve` as a child process on loopback, and the few
//! calls the bench makes to it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token the bench gives its servers.
const ADMIN: &str = "bench-admin-token";

/// A tenant that no quota holds back: the bench measures the engine, not
/// the limits.
pub const UNLIMITED: &str = r#"{"max_concurrent_runs": 4000000000, "start_rate": 1000000000}"#;

/// A running `weft serve`.
pub struct Server {
    child: Child,
    /// Its base URL.
    pub url: String,
    /// A client with a connection pool for many callers at once.
    pub http: reqwest::Client,
    /// From spawning the process to it listening (after resuming runs).
    pub started_in: Duration,
    /// How many unfinished runs it resumed on start.
    pub resumed: usize,
}

impl Server {
    /// Starts `weft serve` on `data`, on a free loopback port, with extra
    /// flags, and waits until it listens.
    pub async fn start(weft: &Path, data: &Path, flags: &[&str]) -> anyhow::Result<Server> {
        Server::start_with_env(weft, data, flags, &[]).await
    }

    /// [`Server::start`] with more environment variables: settings that
    /// the command line would show to anyone on the machine, such as a
    /// store URL with a password (`WEFT_STORE`).
    pub async fn start_with_env(
        weft: &Path,
        data: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let spawned = Instant::now();
        let mut child = Command::new(weft)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(flags)
            .env("WEFT_ADMIN_TOKEN", ADMIN)
            .env("WEFT_LOG", "warn")
            // The bench picks the store: never one named in the user's shell.
            .env_remove("WEFT_STORE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} serve", weft.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut resumed = 0;
        let mut said = Vec::new();
        let url = loop {
            let Some(line) = lines.next_line().await? else {
                bail!("weft serve exited before listening:\n{}", said.join("\n"));
            };
            if let Some(url) = line.strip_prefix("weft listening on ") {
                break url.to_string();
            }
            if let Some(rest) = line.strip_prefix("resumed ") {
                resumed = rest.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
            said.push(line);
        };
        let started_in = spawned.elapsed();
        // Keep draining stderr so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            url,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .build()?,
            started_in,
            resumed,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGKILL: the process gets no chance to shut down.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("cannot kill the server")
    }

    /// Creates a tenant with `quotas` (JSON) and returns its API key.
    pub async fn tenant(&self, name: &str, quotas: &str) -> anyhow::Result<String> {
        let quotas: Value = serde_json::from_str(quotas)?;
        let body = self
            .send(
                self.http
                    .post(format!("{}/v1/admin/tenants", self.url))
                    .bearer_auth(ADMIN)
                    .json(&json!({ "name": name, "quotas": quotas })),
            )
            .await?;
        body["api_key"]["token"]
            .as_str()
            .map(str::to_string)
            .context("the server gave no API key")
    }

    /// Uploads a module.
    pub async fn upload(&self, token: &str, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let request = self
            .http
            .put(format!("{}/v1/modules/{name}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(bytes);
        self.send(request).await.map(drop)
    }

    /// Pushes a workflow document (YAML).
    pub async fn push(&self, token: &str, name: &str, yaml: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .put(format!("{}/v1/workflows/{name}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/yaml")
            .body(yaml.to_string());
        self.send(request).await.map(drop)
    }

    /// Starts a run; with `wait`, answers once it has ended. Returns the
    /// run as the server describes it.
    pub async fn start_run(&self, token: &str, workflow: &str, input: &Value, wait: bool) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .post(format!("{}/v1/workflows/{workflow}/runs", self.url))
            .bearer_auth(token)
            .json(&json!({ "input": input }));
        if wait {
            request = request.query(&[("wait", "60s")]);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await.context("the server did not answer")?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("the server answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
