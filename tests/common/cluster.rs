//! A cluster of real `weft serve` processes on one PostgreSQL database, for
//! the cluster tests (`tests/cluster.rs`).
//!
//! [`Cluster::start`] takes a fresh database on a real server (`pg.rs`:
//! skipped loudly where there is none, a failure under `CI=true`) and starts
//! nodes `n0`, `n1`, ... on it, each a `weft serve` child with its own node
//! id, `--data` directory and log file, listening on 127.0.0.1:0. A node may
//! reach the database through a [`Proxy`] of its own, which the test cuts
//! and restores. The test signals nodes (SIGKILL, SIGSTOP, SIGCONT,
//! SIGTERM), restarts them under the same node id and adds new ones.
//!
//! HTTP goes through an [`Api`], a cheap clone that a background task can
//! own while the test restarts nodes under it: it knows which nodes serve
//! now (started, not paused, not cut off) and spreads calls over them.
//!
//! Every node's stdout and stderr go to `<dir>/<node>.log`, appended across
//! restarts. When the test panics, the tail of each log is printed (the
//! test harness shows it with the failure), then every node is killed; a
//! small watchdog process kills them too should the test process die
//! without unwinding. The clusters of one test process take turns: the
//! tests assert on timing, on two cores.

#![allow(dead_code)] // each test uses its own subset

#[path = "pg.rs"]
pub mod pg;
#[path = "proxy.rs"]
pub mod proxy;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common;
use pg::Pg;
use proxy::{Cut, Proxy};

/// The admin token every node of a cluster shares.
pub const ADMIN: &str = "cluster-admin-token";
/// The tenant [`Cluster::setup`] creates.
pub const TENANT: &str = "acme";

/// How long a node may take from spawn to `weft listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one HTTP request may take before the node counts as not
/// answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of each node's log printed when a test fails.
const TAIL_LINES: usize = 80;

/// Milliseconds since the epoch, as the API's timestamps.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// How a node is started.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Reach PostgreSQL through a proxy the test can cut.
    pub proxied: bool,
    /// Extra `weft serve` flags for this node (after the cluster's).
    pub flags: Vec<String>,
}

impl NodeOptions {
    /// A node that reaches the database through a proxy.
    pub fn proxied() -> NodeOptions {
        NodeOptions {
            proxied: true,
            flags: Vec::new(),
        }
    }

    /// A node with these extra flags.
    pub fn flags(flags: &[&str]) -> NodeOptions {
        NodeOptions {
            proxied: false,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }
}

/// A run the test started, and the node index it was started through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub id: u64,
    pub node: usize,
}

struct Node {
    id: String,
    data: PathBuf,
    log: PathBuf,
    /// `--store`: the database's URL, or the proxy's in its place.
    store: String,
    proxy: Option<Proxy>,
    flags: Vec<String>,
    child: Option<Child>,
    paused: bool,
    /// How many times it was spawned.
    starts: u32,
    /// Its base URL from its last start (`http://127.0.0.1:PORT`).
    url: Option<String>,
}

/// N `weft serve` nodes on one database; kills them all when dropped.
pub struct Cluster {
    // Nodes drop (and are killed) before the database they use.
    nodes: Vec<Node>,
    api: Api,
    flags: Vec<String>,
    watchdog: Option<(Child, ChildStdin)>,
    dir: tempfile::TempDir,
    pg: Pg,
    /// Held while the cluster lives: the clusters of one test process run
    /// one at a time, so that a test's timing is not another's load.
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// A cluster of `n` nodes with the engine's default settings; `None`
    /// (reported as skipped) where no PostgreSQL can be had.
    pub async fn start(n: usize) -> Option<Cluster> {
        Self::start_with(n, &[]).await
    }

    /// A cluster of `n` nodes, each started with `flags` (e.g.
    /// `["--node-timeout", "1.5s"]`), which later nodes get too.
    pub async fn start_with(n: usize, flags: &[&str]) -> Option<Cluster> {
        let mut cluster = Self::empty(flags)?;
        for _ in 0..n {
            cluster.add_node(NodeOptions::default()).await;
        }
        Some(cluster)
    }

    /// A cluster with no node yet: add them with [`Cluster::add_node`].
    pub fn empty(flags: &[&str]) -> Option<Cluster> {
        static TURN: Mutex<()> = Mutex::new(());
        // A test that failed poisons the lock; the next may still run.
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let pg = Pg::start()?;
        let dir = tempfile::Builder::new()
            .prefix("weft-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let watchdog = spawn_watchdog(&dir.path().join("pids"));
        Some(Cluster {
            nodes: Vec::new(),
            api: Api::new(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            watchdog,
            dir,
            pg,
            _turn: turn,
        })
    }

    /// The database (for `psql` checks).
    pub fn pg(&self) -> &Pg {
        &self.pg
    }

    /// A handle for HTTP calls, to keep or move into a task.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// How many nodes were added (whatever their state).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s node id (`n0`, `n1`, ...).
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// Node `i`'s base URL from its last start.
    pub fn url(&self, i: usize) -> &str {
        self.nodes[i].url.as_deref().expect("the node was started")
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Node `i`'s proxy, when it was added with one.
    pub fn proxy(&self, i: usize) -> &Proxy {
        self.nodes[i].proxy.as_ref().expect("the node was added with a proxy")
    }

    /// Starts one more node (`n<index>`) and waits until it listens; returns
    /// its index.
    pub async fn add_node(&mut self, options: NodeOptions) -> usize {
        let i = self.nodes.len();
        let id = format!("n{i}");
        let data = self.dir.path().join(&id);
        fs::create_dir_all(&data).expect("a node's data directory");
        let (proxy, store) = if options.proxied {
            let (proxy, via) = Proxy::for_url(self.pg.url());
            (Some(proxy), via)
        } else {
            (None, self.pg.url().to_owned())
        };
        self.nodes.push(Node {
            log: self.dir.path().join(format!("{id}.log")),
            id,
            data,
            store,
            proxy,
            flags: options.flags,
            child: None,
            paused: false,
            starts: 0,
            url: None,
        });
        self.api.grow(self.nodes.len());
        self.spawn(i).await;
        i
    }

    /// Starts node `i` again (same node id, data directory and proxy) after
    /// it exited or was killed, and waits until it listens.
    pub async fn restart(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_none(),
            "node {} still runs; kill or terminate it first",
            self.nodes[i].id
        );
        self.spawn(i).await;
    }

    async fn spawn(&mut self, i: usize) {
        let flags = self.flags.clone();
        let node = &mut self.nodes[i];
        node.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("a node's log file");
        writeln!(
            log,
            "===== weft serve --node-id {} (start {}, at {} ms) =====",
            node.id,
            node.starts,
            now_ms()
        )
        .expect("writing a node's log");
        let from = log.metadata().map(|m| m.len()).unwrap_or(0);
        let out = log.try_clone().expect("a node log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "--store", &node.store, "--node-id", &node.id])
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(&node.data)
            .args(&flags)
            .args(&node.flags)
            .env("WEFT_ADMIN_TOKEN", ADMIN)
            .env(
                "WEFT_LOG",
                std::env::var("WEFT_CLUSTER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .env_remove("WEFT_STORE")
            .env_remove("WEFT_CONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("spawning weft serve");
        node.child = Some(child);
        node.paused = false;
        self.write_pids();
        let node = &mut self.nodes[i];
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            if let Some(url) = listening_line(&node.log, from) {
                break url;
            }
            let child = node.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                panic!(
                    "node {} exited ({status}) before listening; its log ends:\n{}",
                    node.id,
                    tail(&node.log, TAIL_LINES)
                );
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not listen within {START_TIMEOUT:?}; its log ends:\n{}",
                node.id,
                tail(&node.log, TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        node.url = Some(url.clone());
        self.api.set(i, Some(url));
    }

    /// Creates the tenant [`TENANT`] (with quotas no test reaches) through
    /// node 0 and uploads the example tasks `modules` under their own names
    /// through the nodes in turn; the [`Api`] uses its key from then on.
    pub async fn setup(&self, modules: &[&str]) {
        self.setup_with_quotas(modules, json!({})).await;
    }

    /// As [`Cluster::setup`], with `quotas` over the defaults (e.g.
    /// `{"max_concurrent_attempts": 2}`).
    pub async fn setup_with_quotas(&self, modules: &[&str], quotas: Value) {
        let mut all = json!({"start_rate": 1.0e6, "max_concurrent_runs": 1_000_000, "max_modules": 10_000});
        for (key, value) in quotas.as_object().expect("quotas are an object") {
            all[key] = value.clone();
        }
        let quotas = all;
        let (status, body) = self
            .api
            .call(
                0,
                Some(ADMIN),
                Method::POST,
                "/v1/admin/tenants",
                Body::Json(json!({"name": TENANT, "quotas": quotas})),
            )
            .await
            .expect("node 0 answers");
        assert_eq!(status, StatusCode::CREATED, "creating the tenant: {body}");
        let token = body["api_key"]["token"].as_str().expect("a token").to_owned();
        self.api.token.set(token).expect("setup runs once");
        for (k, name) in modules.iter().enumerate() {
            let node = k % self.nodes.len();
            let bytes = common::guest_bytes(name);
            let path = format!("/v1/modules/{name}");
            let (status, body) = self
                .api
                .call(
                    node,
                    Some(self.api.token()),
                    Method::PUT,
                    &path,
                    Body::Raw("application/wasm", bytes),
                )
                .await
                .unwrap_or_else(|e| panic!("uploading {name}: {e}"));
            assert_eq!(status, StatusCode::CREATED, "uploading {name}: {body}");
        }
    }

    /// Pushes a workflow (YAML) through node 0.
    pub async fn push(&self, name: &str, yaml: &str) {
        let path = format!("/v1/workflows/{name}");
        let body = Body::Raw("application/yaml", yaml.as_bytes().to_vec());
        let (status, body) = self
            .api
            .call(0, Some(self.api.token()), Method::PUT, &path, body)
            .await
            .expect("node 0 answers");
        assert_eq!(status, StatusCode::OK, "pushing {name}: {body}");
    }

    /// SIGKILL to node `i`, reaped at once.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = node.child.take().expect("killing a node that runs");
        self.api.set(i, None);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping a killed node");
        self.write_pids();
    }

    /// SIGSTOP to node `i`: it stops without knowing (a long GC pause, a
    /// frozen VM). Calls go to the other nodes until [`Cluster::resume`].
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "STOP");
        self.nodes[i].paused = true;
        self.api.set(i, None);
    }

    /// SIGCONT to a paused node `i`.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "CONT");
        self.nodes[i].paused = false;
        self.api.set(i, self.nodes[i].url.clone());
    }

    /// SIGTERM to node `i` (a drain); calls go to the other nodes at once.
    /// Returns without waiting: see [`Cluster::wait_exit`].
    pub fn term(&mut self, i: usize) {
        self.api.set(i, None);
        self.signal(i, "TERM");
    }

    /// Waits (up to `within`) until node `i` exits and reaps it.
    pub async fn wait_exit(&mut self, i: usize, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let node = &mut self.nodes[i];
        loop {
            let child = node.child.as_mut().expect("waiting for a node that runs");
            if let Some(status) = child.try_wait().expect("waiting for a node") {
                node.child = None;
                self.api.set(i, None);
                self.write_pids();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not exit within {within:?}; its log ends:\n{}",
                node.id,
                tail(&node.log, TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM to node `i`, then waits (up to `within`) until it exits.
    pub async fn terminate(&mut self, i: usize, within: Duration) -> ExitStatus {
        self.term(i);
        self.wait_exit(i, within).await
    }

    /// Whether node `i`'s process still runs (paused counts).
    pub fn is_running(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        match node.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                node.child = None;
                false
            }
            None => false,
        }
    }

    /// Cuts node `i` off the database (it must have a proxy); calls go to
    /// the other nodes until [`Cluster::heal`].
    pub fn partition(&mut self, i: usize, how: Cut) {
        self.proxy(i).cut(how);
        self.api.set(i, None);
    }

    /// Restores node `i`'s link to the database.
    pub fn heal(&mut self, i: usize) {
        self.proxy(i).restore();
        if !self.nodes[i].paused && self.nodes[i].child.is_some() {
            self.api.set(i, self.nodes[i].url.clone());
        }
    }

    fn signal(&self, i: usize, signal: &str) {
        let node = &self.nodes[i];
        let pid = node.child.as_ref().expect("signalling a node that runs").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {pid} (node {}) failed", node.id);
    }

    /// Node `i`'s log (stdout and stderr of every start), whole.
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// Prints the tail of every node's log to stderr.
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            let state = match (&node.child, node.paused) {
                (None, _) => "not running",
                (Some(_), true) => "paused",
                (Some(_), false) => "running",
            };
            let cut = match &node.proxy {
                Some(proxy) if proxy.is_cut() => ", cut off the database",
                _ => "",
            };
            eprintln!(
                "----- node {} ({state}{cut}, {} starts, {}): the last {TAIL_LINES} lines of {} -----\n{}",
                node.id,
                node.starts,
                node.url.as_deref().unwrap_or("never listened"),
                node.log.display(),
                tail(&node.log, TAIL_LINES)
            );
        }
    }

    /// Rewrites the watchdog's list of processes to kill.
    fn write_pids(&self) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|node| node.child.as_ref().map(|c| c.id().to_string()))
            .collect();
        let path = self.dir.path().join("pids");
        let temporary = self.dir.path().join("pids.new");
        if fs::write(&temporary, pids.join(" ")).is_ok() {
            let _ = fs::rename(&temporary, &path);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // SIGKILL ends a stopped process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some((mut child, stdin)) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(stdin);
        }
    }
}

/// A `sh` in a process group of its own that waits for EOF on its stdin
/// (the test process died), then SIGKILLs the pids listed in `pids`.
fn spawn_watchdog(pids: &Path) -> Option<(Child, ChildStdin)> {
    const SCRIPT: &str = r#"trap '' HUP INT TERM
read -r _
[ -f "$1" ] && kill -KILL $(cat "$1") 2>/dev/null"#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "weft-cluster-watchdog"])
        .arg(pids)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// The URL of the first `weft listening on URL` line after byte `from`.
fn listening_line(log: &Path, from: u64) -> Option<String> {
    let mut file = File::open(log).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    // Only whole lines: the node may be writing this one still.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole
        .lines()
        .find_map(|line| line.strip_prefix("weft listening on "))
        .map(|url| url.trim().to_owned())
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.is_empty() { "(nothing)".into() } else { tail }
}

/// A request body.
#[derive(Clone)]
pub enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// HTTP to the cluster's nodes; clones share the view of which nodes serve.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// Per node index, its URL while it serves (started, not paused, not
    /// cut off).
    urls: Arc<Mutex<Vec<Option<String>>>>,
    token: Arc<OnceLock<String>>,
    next: Arc<AtomicUsize>,
}

impl Api {
    fn new() -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            urls: Arc::default(),
            token: Arc::default(),
            next: Arc::default(),
        }
    }

    fn grow(&self, n: usize) {
        self.lock().resize(n, None);
    }

    fn set(&self, i: usize, url: Option<String>) {
        self.lock()[i] = url;
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<String>>> {
        self.urls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant's API key (after [`Cluster::setup`]).
    pub fn token(&self) -> &str {
        self.token.get().expect("Cluster::setup made a key")
    }

    /// The indexes of the nodes that serve now.
    pub fn serving(&self) -> Vec<usize> {
        self.lock()
            .iter()
            .enumerate()
            .filter_map(|(i, url)| url.as_ref().map(|_| i))
            .collect()
    }

    /// The next serving node, round robin.
    pub fn next_node(&self) -> usize {
        let serving = self.serving();
        assert!(!serving.is_empty(), "no node serves");
        serving[self.next.fetch_add(1, Ordering::Relaxed) % serving.len()]
    }

    /// One request to node `i` (whether or not it counts as serving); `Err`
    /// when the node does not answer.
    pub async fn call(
        &self,
        i: usize,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(StatusCode, Value), String> {
        let url = self.lock()[i]
            .clone()
            .ok_or_else(|| format!("node {i} does not serve"))?;
        let mut request = self.http.request(method, format!("{url}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, bytes) => request.header("content-type", content_type).body(bytes),
        };
        let response = request.send().await.map_err(|e| format!("{url}{path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{url}{path}: {e}"))?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// A GET with the tenant's key (`admin`: the admin token) answered by
    /// any serving node: tries them in turn while they fail or answer 5xx,
    /// for up to 15 s. Panics when none answers.
    pub async fn get(&self, path: &str, admin: bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = String::from("no node serves");
        loop {
            for _ in 0..self.serving().len() {
                let i = self.next_node();
                let token = if admin { ADMIN } else { self.token() };
                match self.call(i, Some(token), Method::GET, path, Body::None).await {
                    Ok((status, body)) if status.is_success() => return body,
                    Ok((status, body)) if status.is_client_error() => panic!("GET {path}: {status} {body}"),
                    Ok((status, body)) => last = format!("node {i}: {status} {body}"),
                    Err(e) => last = e,
                }
            }
            assert!(Instant::now() < deadline, "no node answered GET {path}: {last}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a run of `workflow` through node `i`; `Err` when the node
    /// does not answer or refuses (the run is then not acknowledged).
    pub async fn try_start(&self, i: usize, workflow: &str, input: Value) -> Result<Started, String> {
        let path = format!("/v1/workflows/{workflow}/runs");
        let body = Body::Json(json!({ "input": input }));
        match self.call(i, Some(self.token()), Method::POST, &path, body).await? {
            (StatusCode::CREATED, body) => Ok(Started {
                id: body["id"].as_u64().ok_or_else(|| format!("no run id in {body}"))?,
                node: i,
            }),
            (status, body) => Err(format!("node {i}: {status} {body}")),
        }
    }

    /// Starts a run through node `i`; panics when it is not acknowledged.
    pub async fn start_on(&self, i: usize, workflow: &str, input: Value) -> Started {
        self.try_start(i, workflow, input)
            .await
            .unwrap_or_else(|e| panic!("starting {workflow}: {e}"))
    }

    /// Starts `n` runs through the serving nodes in turn, the k-th with
    /// `input(k)`.
    pub async fn start_round_robin(&self, workflow: &str, n: usize, input: impl Fn(usize) -> Value) -> Vec<Started> {
        let mut started = Vec::with_capacity(n);
        for k in 0..n {
            let i = self.next_node();
            started.push(self.start_on(i, workflow, input(k)).await);
        }
        started
    }

    /// A run in full (`GET /v1/runs/{id}`), from any serving node.
    pub async fn run(&self, id: u64) -> Value {
        self.get(&format!("/v1/runs/{id}"), false).await
    }

    /// A run's history (`GET /v1/runs/{id}/events`), from any serving node.
    pub async fn events(&self, id: u64) -> Vec<Value> {
        let body = self.get(&format!("/v1/runs/{id}/events"), false).await;
        body["events"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no events in {body}"))
    }

    /// `GET /v1/admin/nodes`: every node the cluster knows.
    pub async fn nodes(&self) -> Vec<Value> {
        let body = self.get("/v1/admin/nodes", true).await;
        body["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no nodes in {body}"))
    }

    /// A node's row of `GET /v1/admin/nodes`, by node id: its newest
    /// incarnation's (a node that restarted or rejoined is listed once per
    /// incarnation, the old ones dead or left).
    pub async fn node(&self, node_id: &str) -> Option<Value> {
        self.nodes()
            .await
            .into_iter()
            .filter(|n| n["node_id"] == node_id)
            .max_by_key(|n| n["incarnation"].as_u64())
    }

    /// Polls until every run of `ids` has ended (asking any serving node);
    /// returns each run in full. Panics after `within`, naming the runs
    /// still going.
    pub async fn wait_final(&self, ids: &[u64], within: Duration) -> HashMap<u64, Value> {
        let deadline = Instant::now() + within;
        let mut done = HashMap::new();
        loop {
            for &id in ids {
                if done.contains_key(&id) {
                    continue;
                }
                let run = self.run(id).await;
                if run["status"] != "running" {
                    done.insert(id, run);
                }
            }
            if done.len() == ids.len() {
                return done;
            }
            if Instant::now() > deadline {
                let going: Vec<u64> = ids.iter().copied().filter(|id| !done.contains_key(id)).collect();
                let first = self.run(going[0]).await;
                panic!(
                    "{} of {} runs did not end within {within:?}: {going:?}; the first of them: {first:#}",
                    going.len(),
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
