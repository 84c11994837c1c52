//! The figures on the PostgreSQL store, on the server `--store` names or
//! on a throwaway one the bench starts (`pg_server.rs`).
//!
//! - In process: durable 1-step workflows per second, as the engine
//!   section measures them on redb (the same workflow, module and runs in
//!   flight). Baseline: single-row `INSERT` transactions per second on
//!   the same server, one 200-byte row per transaction, each committed
//!   with `synchronous_commit` on, with as many in flight, through
//!   tokio-postgres directly: what an application without group commit
//!   gets from this database.
//! - Over HTTP: submit-to-completion latency of 1-step runs from the real
//!   `weft serve --store`, with 16 clients as in the service section.
//!   Baseline: the same clients calling `GET /healthz`.
//!
//! The bench works in databases of its own on that server, created for
//! the run (one for each half, so neither sees the other's runs) and
//! dropped at the end, so a server given with `--store` keeps nothing of
//! it. When no server can be started or reached, or those databases
//! cannot be created, the section says why and the bench goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;
use tokio_postgres::{Client, Config, NoTls};

use super::engine::{IN_FLIGHT, run_many, start_engine};
use super::pg_server::PgServer;
use super::report::{Report, Target};
use super::server::{Server, UNLIMITED};
use super::service::health_and_runs;
use super::{ONE_STEP, Options};
use crate::store::{self, StoreLocation, TlsMode};

/// The JSON key that says why the section measured nothing.
const SKIPPED: &str = "pg_skipped";

/// The HTTP clients, as in the service section's middle level.
const CLIENTS: usize = 16;

/// The most connections the baseline spreads its in-flight transactions
/// over: a pool of the size an application would give PostgreSQL, which
/// runs a process per connection.
const BASELINE_CONNECTIONS: usize = 64;

/// How long a connection to the server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Measures and reports the PostgreSQL figures, or why there are none.
pub async fn measure(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    report.section(&format!(
        "postgres: the PostgreSQL store, 1-step `hello` runs in process ({IN_FLIGHT} in flight) and over HTTP \
         ({CLIENTS} clients)"
    ));
    let server = match Reached::reach(options, &["engine", "http"]).await {
        Ok(server) => server,
        Err(reason) => {
            report.skipped(SKIPPED, &reason);
            return Ok(());
        }
    };
    report.line(&server.describe());
    report.note("pg_server_version", json!(server.version));
    let measured = measure_on(&server, options, report).await;
    server.close().await;
    measured
}

async fn measure_on(server: &Reached, options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (inserts, runs) = if options.quick {
        (3_000, 3_000)
    } else {
        (20_000, 20_000)
    };
    let (warmup, measured) = if options.quick {
        (Duration::from_millis(300), Duration::from_secs(2))
    } else {
        (Duration::from_secs(1), Duration::from_secs(8))
    };

    let (baseline, connections) =
        insert_transactions_per_second(&server.config(&server.database("engine")), inserts).await?;
    report.figure(
        "pg_insert_tx_per_s",
        &format!("bare INSERT transactions/s ({IN_FLIGHT} in flight, {connections} conns)"),
        baseline,
        "/s",
    );

    let location: StoreLocation = server.url(&server.database("engine")).parse()?;
    let store = store::open(&location, store::DEFAULT_CACHE).await?;
    let engine = start_engine(options, store, &[ONE_STEP]).await?;
    // One run alone compiles the component: attempts that start before a
    // compile has finished each compile it again, which on 2 cores takes
    // seconds with 64 at once.
    run_many(&engine, "one", &json!({}), 1).await?;
    run_many(&engine, "one", &json!({}), 200).await?;
    let rate = run_many(&engine, "one", &json!({}), runs).await?;
    engine.shutdown().await;
    drop(engine);
    report.target(
        "pg_durable_wf_per_s",
        &format!("weft durable 1-step workflows/s ({runs} runs)"),
        rate,
        "/s",
        Target::AtLeast(5_000.0),
    );
    report.figure(
        "pg_durable_wf_per_s_ratio",
        "ratio 1-step workflows / bare INSERT transactions",
        rate / baseline,
        "x",
    );

    // The URL goes in the environment, not on the command line, where
    // anyone on the machine would see a password in it.
    let data = options.scratch()?;
    let http_url = server.url(&server.database("http"));
    let weft = Server::start_with_env(&options.weft, data.path(), &[], &[("WEFT_STORE", &http_url)]).await?;
    let weft = Arc::new(weft);
    let token: Arc<str> = weft.tenant("bench", UNLIMITED).await?.into();
    weft.upload(&token, "hello", options.module("hello")?).await?;
    weft.push(&token, "one", ONE_STEP).await?;
    // Compiled by one run alone, as above, not by 16 at once in the warmup.
    weft.start_run(&token, "one", &json!({}), true).await?;
    let (health, runs) = health_and_runs(&weft, &token, CLIENTS, warmup, measured).await?;
    if let Ok(weft) = Arc::try_unwrap(weft) {
        weft.kill().await?;
    }
    let c = CLIENTS;
    report.figure(
        "pg_http_healthz_per_s",
        &format!("{c} clients: bare HTTP round trips/s (GET /healthz)"),
        health.rate,
        "/s",
    );
    report.figure(
        "pg_http_healthz_p50_ms",
        &format!("{c} clients: bare HTTP round trip p50"),
        health.percentile(0.50),
        "ms",
    );
    report.figure(
        "pg_http_runs_per_s",
        &format!("{c} clients: durable runs/s, submit to completion"),
        runs.rate,
        "/s",
    );
    report.figure(
        "pg_http_p50_ms",
        &format!("{c} clients: submit-to-completion p50"),
        runs.percentile(0.50),
        "ms",
    );
    report.target(
        "pg_http_p99_ms",
        &format!("{c} clients: submit-to-completion p99"),
        runs.percentile(0.99),
        "ms",
        Target::AtMost(20.0),
    );
    report.figure(
        "pg_http_p999_ms",
        &format!("{c} clients: submit-to-completion p99.9"),
        runs.percentile(0.999),
        "ms",
    );
    Ok(())
}

/// A server the bench can use, with its databases created.
pub(super) struct Reached {
    /// The URL as given with `--store`, or the started server's.
    url: String,
    /// What the bench's own connections use (the password filled in).
    config: Config,
    /// On the database of `url`, to create and drop the bench's.
    admin: Client,
    /// The throwaway server, when the bench started one.
    started: Option<PgServer>,
    version: String,
    version_num: i32,
    /// `fsync`, `synchronous_commit` and the like, for the printout.
    settings: String,
    /// Names the bench's databases on it: `weft_bench_<tag>_<purpose>`.
    tag: String,
    /// The databases created, dropped on close.
    databases: Vec<String>,
}

impl Reached {
    /// The `--store` server, else a throwaway one, with a database
    /// created for each of `purposes`; `Err` says why there is none.
    pub(super) async fn reach(options: &Options, purposes: &[&str]) -> Result<Reached, String> {
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
                "{location}: the bench's own connections (its databases, the baseline) do not speak TLS; \
                 use sslmode=disable or prefer"
            ));
        }
        let mut config = location.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let admin = connect(&config)
            .await
            .map_err(|e| format!("{location} cannot be reached: {e}"))?;
        let about = admin
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    format('fsync %s, synchronous_commit %s, full_page_writes %s, shared_buffers %s, max_connections %s',
                        current_setting('fsync'), current_setting('synchronous_commit'),
                        current_setting('full_page_writes'), current_setting('shared_buffers'),
                        current_setting('max_connections'))",
                &[],
            )
            .await
            .map_err(|e| format!("{location} does not answer: {e}"))?;
        let mut reached = Reached {
            url,
            config,
            admin,
            started,
            // "15.4 (Debian 15.4-1)": the number is enough.
            version: about
                .get::<_, String>(0)
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string(),
            version_num: about.get(1),
            settings: about.get(2),
            tag: hex::encode(rand::random::<[u8; 4]>()),
            databases: Vec::new(),
        };
        for purpose in purposes {
            let database = reached.database(purpose);
            if let Err(e) = reached
                .admin
                .batch_execute(&format!("CREATE DATABASE {database}"))
                .await
            {
                let reason = format!(
                    "the bench works in databases of its own, and {location} refused to create {database}: {e} \
                     (the role needs CREATEDB)"
                );
                reached.close().await;
                return Err(reason);
            }
            reached.databases.push(database);
        }
        Ok(reached)
    }

    /// The name of the bench's database for `purpose`.
    pub(super) fn database(&self, purpose: &str) -> String {
        format!("weft_bench_{}_{purpose}", self.tag)
    }

    /// What the figures are measured on.
    pub(super) fn describe(&self) -> String {
        let whose = match &self.started {
            Some(server) => format!("started by the bench in {}, on 127.0.0.1", server.dir().display()),
            None => match self.url.parse::<StoreLocation>() {
                Ok(location) => format!("at {location}"),
                Err(_) => "given with --store".into(),
            },
        };
        format!("PostgreSQL {} {whose}\n  {}", self.version, self.settings)
    }

    /// The bench's URL for `database`: the given one's, password and
    /// parameters included, naming that database instead.
    pub(super) fn url(&self, database: &str) -> String {
        with_database(&self.url, database)
    }

    /// The bench's connection settings for `database`.
    fn config(&self, database: &str) -> Config {
        let mut config = self.config.clone();
        config.dbname(database);
        config
    }

    /// Drops the bench's databases and stops a throwaway server.
    pub(super) async fn close(self) {
        // Connections a killed server left behind would block a plain DROP.
        let force = if self.version_num >= 130_000 {
            " WITH (FORCE)"
        } else {
            ""
        };
        for database in &self.databases {
            let sql = format!("DROP DATABASE IF EXISTS {database}{force}");
            let mut tries = 0;
            while let Err(e) = self.admin.batch_execute(&sql).await {
                tries += 1;
                if tries == 20 {
                    eprintln!("the bench's database {database} could not be dropped: {e}");
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

/// Opens a connection and drives it on its own task.
async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `n` single-row INSERT transactions with [`IN_FLIGHT`] at once, spread
/// over as many connections as the server allows up to
/// [`BASELINE_CONNECTIONS`]; returns transactions per second and the
/// connections used.
async fn insert_transactions_per_second(config: &Config, n: i64) -> anyhow::Result<(f64, usize)> {
    let first = connect(config).await?;
    first
        .batch_execute("CREATE TABLE baseline (id bigint PRIMARY KEY, record bytea NOT NULL)")
        .await?;
    let free: i64 = first
        .query_one(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                - (SELECT count(*) FROM pg_stat_activity)",
            &[],
        )
        .await?
        .get(0);
    // Leave room for the bench's other connections and the server's own.
    let wanted = (free - 8).clamp(1, BASELINE_CONNECTIONS as i64) as usize;
    let mut clients = vec![first];
    while clients.len() < wanted {
        clients.push(connect(config).await?);
    }
    let mut connections = Vec::with_capacity(clients.len());
    for client in clients {
        client.batch_execute("SET synchronous_commit = on").await?;
        let insert = client
            .prepare("INSERT INTO baseline (id, record) VALUES ($1, $2)")
            .await?;
        connections.push(Arc::new((client, insert)));
    }
    let next = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let mut inserters = JoinSet::new();
    for i in 0..IN_FLIGHT {
        let (connection, next) = (connections[i % connections.len()].clone(), next.clone());
        inserters.spawn(async move {
            let (client, insert) = &*connection;
            let record = [7u8; 200];
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= n {
                    return Ok::<_, tokio_postgres::Error>(());
                }
                client.execute(insert, &[&id, &record.as_slice()]).await?;
            }
        });
    }
    while let Some(done) = inserters.join_next().await {
        done??;
    }
    Ok((n as f64 / started.elapsed().as_secs_f64(), connections.len()))
}

/// `url` (`postgres://` or `postgresql://`) naming `database` instead.
fn with_database(url: &str, database: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(authority, _)| authority);
    format!("{scheme}://{authority}/{database}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_another_database_keeping_the_rest() {
        assert_eq!(
            with_database("postgres://weft:pw@db:6432/prod?sslmode=disable", "b"),
            "postgres://weft:pw@db:6432/b?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://db", "b"), "postgresql://db/b");
        assert_eq!(
            with_database("postgres://db?application_name=x", "b"),
            "postgres://db/b?application_name=x"
        );
    }
}
