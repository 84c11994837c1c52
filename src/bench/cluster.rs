//! The cluster figures: real `weft serve` nodes sharing one PostgreSQL
//! database, on the server `--store` names or on a throwaway one the
//! bench starts, in databases of the bench's own (one per measurement,
//! dropped at the end).
//!
//! - Throughput: durable 1-step `hello` workflows per second with 1, 2
//!   and 3 nodes, [`CLIENTS`] closed-loop HTTP clients spreading their
//!   `?wait` starts round robin over the nodes. Baseline: the 1-node
//!   figure. On a machine with few cores the nodes, the database and the
//!   load generator share them, so more nodes show that claims and
//!   commits do not collapse under contention, not scaling. Beside it,
//!   what the database spends: write transactions per second (each group
//!   commit is one), and, when the bench started the server, its CPU time
//!   per workflow (every server process's, from `/proc`).
//! - Failover: runs sleeping on the first of the 3 nodes, that node
//!   SIGKILLed; from the kill to the first of those runs' attempts
//!   starting on another node. The start is each attempt's `started_at`
//!   (ms since the epoch, this machine's clock), so the figure does not
//!   depend on how often the bench polls, nor on the killed node.
//! - Node start: a backlog handed back by a drained node (SIGTERM), then
//!   a new node spawned; from the spawn to the first of the backlog's
//!   attempts starting on it. Baseline: the same spawn to listening.
//! - The claim query's mean latency, from the nodes' `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_postgres::{Client, Config, NoTls};

use super::cluster_fairness;
use super::pg_server::PgServer;
use super::report::{Report, Target};
use super::server::{Server, UNLIMITED};
use super::service::closed_loop;
use super::{ONE_STEP, Options};
use crate::store::{StoreLocation, TlsMode};

/// The JSON key that says why the section measured nothing.
const SKIPPED: &str = "cluster_skipped";

/// The cluster sizes measured.
const NODES: [usize; 3] = [1, 2, 3];

/// The HTTP clients, in all, as in the service section's middle level.
const CLIENTS: usize = 16;

/// The runs on the node that is killed.
const SLEEPERS: usize = 8;

/// A step long enough to be cut short by the kill, short enough to end
/// soon after it runs again.
const SLEEPER: &str = "name: sleeper\nsteps:
  - {id: nap, task: misbehave, timeout: 1h, input: {mode: sleep, ms: 1000}}
";

/// Holds the drained node's one attempt slot, so that the backlog waits.
const BLOCKER: &str = "name: blocker\nsteps:
  - {id: hold, task: misbehave, timeout: 1h, input: {mode: sleep, ms: 3600000}}
";

/// The runs a drained node hands back.
const BACKLOG: usize = 20;

/// How long the runs the figures wait for may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long a connection to the server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The databases the section creates, by the suffix of their names.
const DATABASES: [&str; 5] = ["n1", "n2", "n3", "join", "fair"];

/// Measures and reports the cluster figures, or why there are none.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    report.section(&format!(
        "cluster: `weft serve` nodes on one PostgreSQL database, 1-step `hello` runs over HTTP \
         ({CLIENTS} clients round robin over the nodes)"
    ));
    let database = match Database::reach(options).await {
        Ok(database) => database,
        Err(reason) => {
            report.skipped(SKIPPED, &reason);
            return Ok(());
        }
    };
    report.line(&database.describe());
    let measured = measure_on(&database, options, report).await;
    database.close().await;
    measured
}

async fn measure_on(database: &Database, options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (warmup, measured) = if options.quick {
        (Duration::from_millis(300), Duration::from_secs(2))
    } else {
        (Duration::from_secs(1), Duration::from_secs(8))
    };
    let (mut rates, mut commits, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu_per_commit = Vec::new();
    let mut last = None;
    for n in NODES {
        // The previous cluster is killed first: it would share the cores.
        if let Some(cluster) = last.take() {
            Cluster::kill(cluster).await;
        }
        let cluster = Cluster::start(options, &database.url(&format!("n{n}")), n, &[]).await?;
        let level = throughput(&cluster, database, warmup, measured).await?;
        rates.push(level.rate);
        commits.push(level.commits_per_s);
        if let Some((per_workflow, per_commit)) = level.db_cpu_ms {
            cpu.push(per_workflow);
            cpu_per_commit.push(per_commit);
        }
        last = Some(cluster);
    }
    report.list(
        "cluster_wf_per_s",
        "1 / 2 / 3 nodes: durable workflows/s, submit to completion",
        &rates,
        "/s",
    );
    for (i, rate) in rates.iter().enumerate().skip(1) {
        report.figure(
            &format!("cluster_wf_ratio_n{}", i + 1),
            &format!("{} nodes: ratio workflows/s / 1 node's", i + 1),
            rate / rates[0],
            "x",
        );
    }
    report.list(
        "cluster_db_commits_per_s",
        "1 / 2 / 3 nodes: write transactions/s in the database",
        &commits,
        "/s",
    );
    report.figure(
        "cluster_wf_per_commit",
        "3 nodes: workflows per write transaction (group commit)",
        rates[2] / commits[2],
        "x",
    );
    if cpu.len() == NODES.len() {
        report.list(
            "cluster_db_cpu_ms_per_wf",
            "1 / 2 / 3 nodes: database CPU time per workflow",
            &cpu,
            "ms",
        );
        report.list(
            "cluster_db_cpu_ms_per_commit",
            "1 / 2 / 3 nodes: database CPU time per write transaction",
            &cpu_per_commit,
            "ms",
        );
    }

    let cluster = last.context("no cluster")?;
    let (first, all) = failover(&cluster).await?;
    report.target(
        "failover_s",
        "SIGKILL of 1 of 3 nodes to its first run resumed elsewhere",
        first,
        "s",
        Target::AtMost(2.0),
    );
    report.figure(
        "failover_all_s",
        &format!("SIGKILL to all {SLEEPERS} of its runs resumed elsewhere"),
        all,
        "s",
    );
    // The claims so far: the dead node's runs, and every node's polls.
    let mut claims = Claims::default();
    for node in &cluster.nodes[1..] {
        claims.add(node).await?;
    }
    Cluster::kill(cluster).await;

    let (listening, first_claim) = node_start(options, &database.url("join"), &mut claims).await?;
    report.figure("node_listen_s", "new node: process start to listening", listening, "s");
    report.target(
        "node_start_s",
        "new node: process start to its first claimed run running",
        first_claim,
        "s",
        Target::AtMost(1.0),
    );
    report.figure(
        "cluster_claim_query_ms",
        &format!("claim query, mean of {} (weft_node_claim_seconds)", claims.queries),
        claims.seconds / claims.queries.max(1.0) * 1e3,
        "ms",
    );
    let cluster = Cluster::start(options, &database.url("fair"), cluster_fairness::NODES, &[]).await?;
    let measured = cluster_fairness::measure(options, &cluster.nodes, &cluster.token, report).await;
    Cluster::kill(cluster).await;
    measured
}

/// Claim queries made, and the time spent in them, from nodes' metrics.
#[derive(Default)]
struct Claims {
    queries: f64,
    seconds: f64,
}

impl Claims {
    async fn add(&mut self, node: &Server) -> anyhow::Result<()> {
        let text = node
            .http
            .get(format!("{}/metrics", node.url))
            .send()
            .await?
            .text()
            .await?;
        self.queries += metric(&text, "weft_node_claim_queries_total");
        self.seconds += metric(&text, "weft_node_claim_seconds");
        Ok(())
    }
}

/// What one cluster size measured.
struct Level {
    rate: f64,
    commits_per_s: f64,
    /// When the bench started the server: its CPU time per workflow and
    /// per write transaction.
    db_cpu_ms: Option<(f64, f64)>,
}

/// Closed loops of 1-step runs started with `?wait` on `cluster`, each
/// call on the next node; with the database's write transactions and CPU
/// time over the measured period.
async fn throughput(
    cluster: &Cluster,
    database: &Database,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Level> {
    let nodes = Arc::new(cluster.nodes.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let token = cluster.token.clone();
    let load = closed_loop(CLIENTS, warmup, measured, move || {
        let node = nodes[next.fetch_add(1, Ordering::Relaxed) % nodes.len()].clone();
        let token = token.clone();
        async move {
            let run = node.start_run(&token, "one", &json!({}), true).await?;
            ensure!(run["status"] == "succeeded", "a run did not succeed: {run}");
            Ok(())
        }
    });
    let sample = async {
        tokio::time::sleep(warmup).await;
        let before = database.sample().await;
        tokio::time::sleep(measured).await;
        let after = database.sample().await;
        (before, after)
    };
    let (runs, (before, after)) = tokio::join!(load, sample);
    let runs = runs?;
    let (before, after) = (before?, after?);
    let workflows = runs.rate * measured.as_secs_f64();
    let transactions = (after.transactions - before.transactions) as f64;
    Ok(Level {
        rate: runs.rate,
        commits_per_s: transactions / measured.as_secs_f64(),
        db_cpu_ms: after.cpu_ms.zip(before.cpu_ms).map(|(after, before)| {
            let cpu = after - before;
            (cpu / workflows.max(1.0), cpu / transactions.max(1.0))
        }),
    })
}

/// Starts [`SLEEPERS`] runs on the first node, SIGKILLs it once they are
/// all running, and waits until they have succeeded on the others: the
/// seconds from the kill to the first, and to the last, starting again.
async fn failover(cluster: &Cluster) -> anyhow::Result<(f64, f64)> {
    let victim = &cluster.nodes[0];
    let mut ids = Vec::new();
    for _ in 0..SLEEPERS {
        ids.push(run_id(
            &victim.start_run(&cluster.token, "sleeper", &json!({}), false).await?,
        )?);
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = victim
            .http
            .get(format!("{}/metrics", victim.url))
            .send()
            .await?
            .text()
            .await?;
        if metric(&text, "weft_attempts_running") >= SLEEPERS as f64 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the runs did not all start on the first node"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = now_ms();
    // By process id: the handle is shared, and the node must die now.
    signal(victim.pid(), "KILL").await?;
    let starts = attempt_starts(&cluster.nodes[1], &cluster.token, &ids, killed).await?;
    let seconds = |ms: u64| ms.saturating_sub(killed) as f64 / 1e3;
    Ok((
        seconds(starts.iter().copied().min().unwrap_or(0)),
        seconds(starts.iter().copied().max().unwrap_or(0)),
    ))
}

/// A node whose one slot a sleeping run holds gets [`BACKLOG`] runs, is
/// drained (SIGTERM, no grace) and exits, handing them back; then a new
/// node is spawned. Returns the new node's seconds from spawn to
/// listening and to the first of the backlog's attempts starting, and
/// adds its claims to `claims`.
async fn node_start(options: &Options, url: &str, claims: &mut Claims) -> anyhow::Result<(f64, f64)> {
    let flags = ["--max-concurrent-attempts", "1", "--shutdown-grace", "0s"];
    let drained = Cluster::start(options, url, 1, &flags).await?;
    let node = &drained.nodes[0];
    node.start_run(&drained.token, "blocker", &json!({}), false).await?;
    let mut ids = Vec::new();
    for _ in 0..BACKLOG {
        ids.push(run_id(
            &node.start_run(&drained.token, "one", &json!({}), false).await?,
        )?);
    }
    let pid = node.pid();
    signal(pid, "TERM").await?;
    let deadline = Instant::now() + PATIENCE;
    while !exited(pid) {
        ensure!(Instant::now() < deadline, "the drained node did not exit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let data = options.scratch()?;
    let spawned = now_ms();
    let joined =
        Server::start_with_env(&options.weft, data.path(), &["--node-id", "n2"], &[("WEFT_STORE", url)]).await?;
    let starts = attempt_starts(&joined, &drained.token, &ids, spawned).await?;
    let first = starts.iter().copied().min().unwrap_or(0).saturating_sub(spawned);
    Cluster::kill(drained).await;
    claims.add(&joined).await?;
    let listening = joined.started_in.as_secs_f64();
    joined.kill().await?;
    Ok((listening, first as f64 / 1e3))
}

/// Waits (asking `node`) until every run of `ids` has succeeded; returns
/// when each one's attempts started, those started at `since` (ms since
/// the epoch) or later.
async fn attempt_starts(node: &Server, token: &str, ids: &[String], since: u64) -> anyhow::Result<Vec<u64>> {
    let deadline = Instant::now() + PATIENCE;
    let mut starts = Vec::new();
    for id in ids {
        loop {
            let response = node
                .http
                .get(format!("{}/v1/runs/{id}", node.url))
                .bearer_auth(token)
                .send()
                .await?;
            let run: Value = response.error_for_status()?.json().await?;
            match run["status"].as_str() {
                Some("succeeded") => {
                    let started = run["steps"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|step| step["attempts"].as_array().into_iter().flatten())
                        .filter_map(|attempt| attempt["started_at"].as_u64())
                        .filter(|&at| at >= since)
                        .min()
                        .with_context(|| format!("run {id} ran no attempt after the node changed: {run}"))?;
                    starts.push(started);
                    break;
                }
                Some("running") => {}
                _ => bail!("run {id} did not succeed: {run}"),
            }
            ensure!(
                Instant::now() < deadline,
                "run {id} did not end within {PATIENCE:?}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(starts)
}

/// Nodes `n1`, `n2`, ... on one database, with a tenant that can run the
/// section's workflows.
struct Cluster {
    nodes: Vec<Arc<Server>>,
    /// Their data directories, removed with the cluster.
    _dirs: Vec<TempDir>,
    token: Arc<str>,
}

impl Cluster {
    /// Starts `n` nodes on `url` with extra `flags`, one after another
    /// (the first creates the schema), and runs `one` once on each, which
    /// compiles the component there.
    async fn start(options: &Options, url: &str, n: usize, flags: &[&str]) -> anyhow::Result<Cluster> {
        let (mut nodes, mut dirs) = (Vec::new(), Vec::new());
        for i in 1..=n {
            let data = options.scratch()?;
            let id = format!("n{i}");
            let mut args = vec!["--node-id", id.as_str()];
            args.extend_from_slice(flags);
            // The URL goes in the environment: a password in it would show
            // on the command line.
            let node = Server::start_with_env(&options.weft, data.path(), &args, &[("WEFT_STORE", url)]).await?;
            nodes.push(Arc::new(node));
            dirs.push(data);
        }
        let first = &nodes[0];
        let token: Arc<str> = first.tenant("bench", UNLIMITED).await?.into();
        for module in ["hello", "misbehave"] {
            first.upload(&token, module, options.module(module)?).await?;
        }
        for (name, yaml) in [("one", ONE_STEP), ("sleeper", SLEEPER), ("blocker", BLOCKER)] {
            first.push(&token, name, yaml).await?;
        }
        for node in &nodes {
            node.start_run(&token, "one", &json!({}), true).await?;
        }
        Ok(Cluster {
            nodes,
            _dirs: dirs,
            token,
        })
    }

    /// SIGKILLs every node still running.
    async fn kill(cluster: Cluster) {
        for node in cluster.nodes {
            if let Ok(node) = Arc::try_unwrap(node) {
                let _ = node.kill().await;
            }
        }
    }
}

/// A run's id from the server's answer.
fn run_id(run: &Value) -> anyhow::Result<String> {
    match &run["id"] {
        Value::String(id) => Ok(id.clone()),
        Value::Number(id) => Ok(id.to_string()),
        _ => bail!("the server gave no run id: {run}"),
    }
}

/// Sends `signal` (`KILL`, `TERM`) to process `pid`.
async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .context("cannot run kill")?;
    ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

/// Whether process `pid` has exited (gone, or a zombie nobody waited for).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Milliseconds since the epoch, as the server stamps attempts.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The sum of a metric's samples (every label set) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// CPU time of a process, user and system, in milliseconds (Linux; the
/// kernel's clock tick is 100 Hz on every platform the bench runs on).
fn cpu_ms(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields; `rest` starts at the 3rd.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 * 10.0)
}

/// The server the section's databases are on.
struct Database {
    /// The URL as given with `--store`, or the started server's.
    url: String,
    /// On the database of `url`, to create and drop the bench's.
    admin: Client,
    /// The throwaway server, when the bench started one.
    started: Option<PgServer>,
    version_num: i32,
    tag: String,
}

/// What the database has done so far.
struct Sample {
    /// The next transaction id: write transactions so far.
    transactions: i64,
    /// Every server process's CPU time, when the bench started the server.
    cpu_ms: Option<f64>,
}

impl Database {
    /// The `--store` server, else a throwaway one, with the section's
    /// databases created; `Err` says why there is none.
    async fn reach(options: &Options) -> Result<Database, String> {
        let (url, started) = match &options.store {
            Some(url) => (url.clone(), None),
            None => {
                let server = tokio::task::spawn_blocking(PgServer::start)
                    .await
                    .map_err(|e| format!("starting a PostgreSQL server failed: {e}"))?
                    .map_err(|e| e.to_string())?;
                (server.url(), Some(server))
            }
        };
        let location = match url.parse::<StoreLocation>() {
            Ok(StoreLocation::Postgres(pg)) => pg.with_password_from(|name| std::env::var(name).ok()),
            Ok(redb @ StoreLocation::Redb(_)) => return Err(format!("{redb} is not a PostgreSQL server")),
            Err(e) => return Err(e.to_string()),
        };
        if !matches!(location.tls, TlsMode::Disable | TlsMode::Prefer) {
            return Err(format!(
                "{location}: the bench's own connection (to create its databases) does not speak TLS; \
                 use sslmode=disable or prefer"
            ));
        }
        let mut config: Config = location.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (admin, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| format!("{location} cannot be reached: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let version_num = admin
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| format!("{location} does not answer: {e}"))?
            .get(0);
        let database = Database {
            url,
            admin,
            started,
            version_num,
            tag: hex::encode(rand::random::<[u8; 4]>()),
        };
        for suffix in DATABASES {
            let name = database.name(suffix);
            if let Err(e) = database.admin.batch_execute(&format!("CREATE DATABASE {name}")).await {
                let reason = format!(
                    "the bench works in databases of its own, and {location} refused to create {name}: {e} \
                     (the role needs CREATEDB)"
                );
                database.close().await;
                return Err(reason);
            }
        }
        Ok(database)
    }

    fn name(&self, suffix: &str) -> String {
        format!("weft_bench_{}_cluster_{suffix}", self.tag)
    }

    /// What the figures are measured on.
    fn describe(&self) -> String {
        match &self.started {
            Some(server) => format!("PostgreSQL started by the bench in {}", server.dir().display()),
            None => "PostgreSQL given with --store".into(),
        }
    }

    /// The URL of the section's database `suffix`: the given one's,
    /// password and parameters included, naming that database instead.
    fn url(&self, suffix: &str) -> String {
        let name = self.name(suffix);
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
        let authority = before_query
            .split_once('/')
            .map_or(before_query, |(authority, _)| authority);
        format!("{scheme}://{authority}/{name}{query}")
    }

    /// Write transactions so far, and the server's CPU time when it is
    /// the bench's.
    async fn sample(&self) -> anyhow::Result<Sample> {
        let row = self
            .admin
            .query_one(
                "SELECT txid_snapshot_xmax(txid_current_snapshot()),
                    array(SELECT pid FROM pg_stat_activity)",
                &[],
            )
            .await?;
        let pids: Vec<i32> = row.get(1);
        Ok(Sample {
            transactions: row.get(0),
            cpu_ms: self
                .started
                .as_ref()
                .map(|_| pids.iter().filter_map(|&pid| cpu_ms(pid)).sum()),
        })
    }

    /// Drops the section's databases and stops a throwaway server.
    async fn close(self) {
        // Connections of killed nodes would block a plain DROP.
        let force = if self.version_num >= 130_000 {
            " WITH (FORCE)"
        } else {
            ""
        };
        for suffix in DATABASES {
            let sql = format!("DROP DATABASE IF EXISTS {}{force}", self.name(suffix));
            let mut tries = 0;
            while let Err(e) = self.admin.batch_execute(&sql).await {
                tries += 1;
                if tries == 20 {
                    eprintln!("the bench's database {} could not be dropped: {e}", self.name(suffix));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        drop(self.admin);
        if let Some(server) = self.started {
            let _ = tokio::task::spawn_blocking(move || drop(server)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels_and_names_are_not_prefixes() {
        let text = "# HELP weft_attempts_running x\nweft_attempts_running 3\nweft_attempts_running_x 9\n\
                    weft_node_claim_queries_total{a=\"1\"} 2\nweft_node_claim_queries_total{a=\"2\"} 5\n";
        assert_eq!(metric(text, "weft_attempts_running"), 3.0);
        assert_eq!(metric(text, "weft_node_claim_queries_total"), 7.0);
        assert_eq!(metric(text, "weft_missing"), 0.0);
    }

    #[test]
    fn the_process_cpu_time_of_this_process_reads() {
        assert!(cpu_ms(std::process::id() as i32).is_some());
        assert!(exited(u32::MAX));
        assert!(!exited(std::process::id()));
    }
}
