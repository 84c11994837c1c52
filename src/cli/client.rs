//! The HTTP client behind the commands that talk to a `weft serve`:
//! where the server is, which token to send, and errors that say what the
//! server said.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use futures_util::StreamExt as _;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use super::https::Https;

/// Where the server is and who we are, for tenant commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct Remote {
    /// The server's base URL.
    #[arg(long, env = "WEFT_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,

    /// A tenant API key (`wk_...`).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,

    /// Trust only the CA certificates in this PEM file for an https://
    /// --url (a private CA, or the server's own self-signed certificate);
    /// without it, the system's trusted roots.
    #[arg(long, env = "WEFT_CA", value_name = "FILE", global = true)]
    ca: Option<PathBuf>,

    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where the server is, for admin commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct AdminRemote {
    /// The server's base URL.
    #[arg(long, env = "WEFT_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,

    /// The admin token (the server's WEFT_ADMIN_TOKEN, or the contents of
    /// its DATA/admin.token).
    #[arg(long, env = "WEFT_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,

    /// Trust only the CA certificates in this PEM file for an https://
    /// --url (a private CA, or the server's own self-signed certificate);
    /// without it, the system's trusted roots.
    #[arg(long, env = "WEFT_CA", value_name = "FILE", global = true)]
    ca: Option<PathBuf>,

    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl From<&AdminRemote> for Remote {
    fn from(admin: &AdminRemote) -> Remote {
        Remote {
            url: admin.url.clone(),
            token: admin.token.clone(),
            ca: admin.ca.clone(),
            json: admin.json,
        }
    }
}

/// A connection to a server.
pub(crate) struct Client {
    http: reqwest::Client,
    /// Sends the requests when the URL is https:// (`super::https`).
    https: Option<Https>,
    base: String,
    token: String,
}

impl Client {
    pub fn new(remote: &Remote) -> anyhow::Result<Client> {
        let Some(token) = remote.token.clone().filter(|t| !t.is_empty()) else {
            bail!("no token: set WEFT_TOKEN (or WEFT_ADMIN_TOKEN for `weft tenant`), or pass --token");
        };
        let base = remote.url.trim_end_matches('/').to_string();
        let https = match reqwest::Url::parse(&base) {
            Ok(url) if url.scheme() == "https" => Some(Https::new(remote.ca.as_deref())?),
            Ok(_) => None,
            Err(e) => bail!("--url {base:?} is not a URL: {e} (expected e.g. https://weft.internal:8443)"),
        };
        Ok(Client {
            http: reqwest::Client::new(),
            https,
            base,
            token,
        })
    }

    /// The server's URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request and returns its JSON, or an error with the
    /// server's code and message.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Value> {
        let response = self.execute(request).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response.json().await.context("the server's answer is not JSON")
    }

    pub async fn execute(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let sent = match &self.https {
            Some(https) => match request.build() {
                Ok(request) => https.send(request).await,
                Err(e) => Err(anyhow::Error::new(e).context("cannot build the request")),
            },
            None => request.send().await.map_err(|e| {
                if e.is_connect() {
                    return anyhow::Error::new(e);
                }
                // Connected, but no HTTP answer came back: plain HTTP to
                // a TLS port gets its connection dropped (or a TLS alert).
                anyhow::Error::new(e).context("no HTTP answer (if the server serves HTTPS, use an https:// URL)")
            }),
        };
        let response = sent.with_context(|| format!("cannot reach the weft server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let mut message = format!(
            "{} ({status}): {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("no message")
        );
        if let Some(details) = error["details"].as_array() {
            for detail in details {
                message.push_str(&format!("\n  {}", detail_line(detail)));
            }
        }
        bail!(message)
    }

    /// Follows a run's event stream, calling `each` with every event,
    /// until the run ends or the stream closes.
    pub async fn follow(&self, run: u64, mut each: impl FnMut(&Value)) -> anyhow::Result<()> {
        let request = self
            .request(Method::GET, &format!("/v1/runs/{run}/events"))
            .header("accept", "text/event-stream");
        let response = self.execute(request).await?;
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.context("the event stream broke")?));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let data: String = frame
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if let Ok(event) = serde_json::from_str::<Value>(&data) {
                    each(&event);
                }
            }
        }
        Ok(())
    }
}

fn detail_line(detail: &Value) -> String {
    match (
        detail["line"].as_u64(),
        detail["path"].as_str(),
        detail["message"].as_str(),
    ) {
        (Some(line), path, Some(message)) => {
            let column = detail["column"].as_u64().unwrap_or(0);
            format!(
                "{line}:{column}: {}{message}",
                path.map(|p| format!("{p}: ")).unwrap_or_default()
            )
        }
        (None, Some(path), Some(message)) if !path.is_empty() => format!("{path}: {message}"),
        (_, _, Some(message)) => message.to_string(),
        _ => detail.to_string(),
    }
}
