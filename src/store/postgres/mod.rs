//! The PostgreSQL backend: the same guarantees as redb, in a database that
//! outlives the machine.
//!
//! - Every process that opens the store as a node holds the store's
//!   advisory lock shared; `weft migrate` and `weft check` take it
//!   exclusively, so they never run beside a node.
//! - One writer task (`writer.rs`) per process owns one connection. It
//!   commits every queued batch in one transaction of a few multi-row
//!   statements, pipelined, fenced by the leases the batches hold
//!   (`fence.rs`) and by the idempotency keys they store (one run per
//!   key, `idempotency.rs`), and runs each batch's continuation after
//!   `COMMIT` returns. When the connection drops it reconnects with
//!   backoff and re-applies the batch it was committing (every change is
//!   an idempotent upsert).
//! - The cluster (`cluster.rs`): claims and take-overs of runs, the node
//!   registry with a heartbeat thread per node (`heartbeat.rs`), and the
//!   database's notifications (`listen.rs`).
//! - Reads (`reads.rs`) go through a pool of connections, with prepared
//!   statements cached per connection, and fail at once with
//!   [`StoreError::Unavailable`] when the database cannot be reached.
//! - The schema is created and upgraded by [`migrate`] when the store opens.
//! - Every connection goes through one TLS connector (`tls.rs`), built from
//!   the location's `sslmode` and `sslrootcert` when the store opens.

mod cluster;
mod codes;
mod export;
mod fence;
mod heartbeat;
mod idempotency;
mod listen;
mod migrations;
mod notify;
mod objects;
mod reads;
mod tls;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::Client;

pub use migrations::{MIGRATIONS, Migration, SchemaError, migrate};

use super::cluster::Notice;
use super::location::PgLocation;
use super::{Change, Continuation, StoreError};

/// The advisory lock every node holds shared, and `weft migrate` and
/// `weft check` exclusively ("weftnode" in ASCII).
const OWNER_LOCK: i64 = 0x7765_6674_6e6f_6465;

/// How long connecting may take before the store counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long opening waits for the store's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Connections for reads.
const READ_POOL: usize = 16;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: deadpool_postgres::Pool,
    jobs: mpsc::UnboundedSender<writer::Job>,
    available: Arc<AtomicBool>,
    /// Opened by a tool that must be alone with the store (no cluster).
    exclusive: bool,
    config: tokio_postgres::Config,
    tls: tls::Connector,
    notices: broadcast::Sender<Notice>,
    /// Stops the heartbeat thread when taken (dropped).
    member: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// The writer's limit on a transaction left idle, in milliseconds:
    /// the node timeout once this process joins the cluster.
    idle_limit: Arc<AtomicU64>,
}

impl PgStore {
    /// Connects as a node, beside any others: brings the schema up to
    /// date, takes the store's lock shared and starts the writer and the
    /// listener. Fails while `weft migrate` or `weft check` holds the store.
    pub async fn open(location: &PgLocation) -> Result<PgStore, StoreError> {
        PgStore::open_with(location, true, false).await
    }

    /// [`PgStore::open`] for a tool that must be alone with the store
    /// (`weft migrate`'s target): takes the lock exclusively, so it fails
    /// while any node or tool has the store open.
    pub async fn open_exclusive(location: &PgLocation) -> Result<PgStore, StoreError> {
        PgStore::open_with(location, true, true).await
    }

    /// A store that must exist already at this build's schema, opened
    /// exclusively and changing nothing to open it: for tools.
    pub async fn open_existing(location: &PgLocation) -> Result<PgStore, StoreError> {
        PgStore::open_with(location, false, true).await
    }

    async fn open_with(location: &PgLocation, upgrade: bool, exclusive: bool) -> Result<PgStore, StoreError> {
        let location = location
            .clone()
            .with_password_from(|name| std::env::var(name).ok())
            .with_root_cert_from(|name| std::env::var(name).ok());
        let tls = tls::connector(location.tls, location.root_cert.as_deref())
            .map_err(|e| StoreError::Open(format!("{location}: {e}")))?;
        let mut config = location.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("weft {} pid {}", env!("CARGO_PKG_VERSION"), std::process::id()));
        }
        let mut client = connect(&config, &tls)
            .await
            .map_err(|e| StoreError::Open(format!("{location}: {}", describe(&e))))?;
        // The store's lock first: a process that does not own the store
        // must not upgrade its schema under the one that does. A holder that
        // just closed (a CLI command before this one) lets go within
        // moments: wait a little before calling the store taken.
        let mut waited = Duration::ZERO;
        loop {
            match take_lock(&client, exclusive).await {
                Ok(()) => break,
                Err(StoreError::Open(_)) if waited < LOCK_WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    waited += Duration::from_millis(100);
                }
                Err(StoreError::Unavailable(why)) => return Err(StoreError::Open(format!("{location}: {why}"))),
                Err(other) => return Err(other),
            }
        }
        if upgrade {
            migrate(&mut client)
                .await
                .map_err(|e| StoreError::Open(format!("{location}: {e}")))?;
        } else {
            migrations::require_current(&client)
                .await
                .map_err(|e| StoreError::Open(format!("{location}: {e}")))?;
        }

        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tls.clone(),
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(READ_POOL)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Open(format!("{location}: {e}")))?;

        let available = Arc::new(AtomicBool::new(true));
        let (jobs, queue) = mpsc::unbounded_channel();
        let (notices_to_send, notices_given) = mpsc::unbounded_channel();
        let writer = writer::Writer::new(
            config.clone(),
            tls.clone(),
            client,
            queue,
            available.clone(),
            exclusive,
            notices_to_send,
        )
        .await
        .map_err(|e| StoreError::Open(format!("{location}: {e}")))?;
        if !exclusive {
            tokio::spawn(notify::run(pool.clone(), notices_given));
        }
        let idle_limit = writer.idle_limit();
        tokio::spawn(writer.run());
        let (notices, _) = broadcast::channel(4096);
        if !exclusive {
            tokio::spawn(listen::run(config.clone(), tls.clone(), notices.clone()));
        }
        tracing::info!(store = %location, "opened the PostgreSQL store");
        Ok(PgStore {
            pool,
            jobs,
            available,
            exclusive,
            config,
            tls,
            notices,
            member: Arc::default(),
            idle_limit,
        })
    }

    /// A pooled connection for a read; [`StoreError::Unavailable`] when
    /// none can be had in time.
    async fn reader(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            self.available.store(false, Ordering::Relaxed);
            StoreError::Unavailable(e.to_string())
        })
    }

    fn submit_job(&self, changes: Vec<Change>, then: Continuation) {
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(writer::Job { changes, then }) {
            (job.then)(Err(StoreError::Closed));
        }
    }
}

/// Opens a connection and drives it on its own task.
async fn connect(config: &tokio_postgres::Config, tls: &tls::Connector) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tls.clone()).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Takes the store's lock on `client`'s session, shared by nodes or
/// `exclusive` for a tool, or says who holds it.
async fn take_lock(client: &Client, exclusive: bool) -> Result<(), StoreError> {
    let sql = match exclusive {
        true => "SELECT pg_try_advisory_lock($1)",
        false => "SELECT pg_try_advisory_lock_shared($1)",
    };
    let taken: bool = client.query_one(sql, &[&OWNER_LOCK]).await.map_err(classify)?.get(0);
    if taken {
        return Ok(());
    }
    let holder: Option<String> = client
        .query_opt(
            "SELECT a.application_name || ' from ' || coalesce(host(a.client_addr), 'a local socket')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.classid = ($1 >> 32)::oid AND l.objid = ($1 & 4294967295)::oid",
            &[&OWNER_LOCK],
        )
        .await
        .ok()
        .flatten()
        .map(|row| row.get(0));
    let holder = holder.unwrap_or_else(|| "it could not be named".into());
    Err(StoreError::Open(match exclusive {
        true => format!(
            "another weft process holds this store ({holder}); stop every node using it (weft migrate and \
             weft check need the store to themselves)"
        ),
        false => format!("weft migrate or weft check holds this store ({holder}); start the node once it is done"),
    }))
}

/// A client error with its causes, which its own message leaves out
/// ("error performing TLS handshake", "db error"): "error performing TLS
/// handshake: invalid peer certificate: UnknownIssuer".
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(error) = cause {
        let said = error.to_string();
        if !text.ends_with(&said) {
            text = format!("{text}: {said}");
        }
        cause = error.source();
    }
    text
}

/// Sorts a client error into "the database is not there" (retryable:
/// reconnect and try again) and "the database refused this" (not).
pub(crate) fn classify(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Unavailable(describe(&e));
    };
    let code = db.code().code();
    // 08: connection exceptions; 57P01-3: shutting down or starting up;
    // 53300: too many connections; 40001, 40P01: retry the transaction.
    let transient = code.starts_with("08") || code.starts_with("57P") || matches!(code, "53300" | "40001" | "40P01");
    if transient {
        StoreError::Unavailable(db.to_string())
    } else {
        StoreError::Storage(db.to_string())
    }
}
