//! `weft serve`: the HTTP API over a data directory (HTTPS with
//! `--tls-cert` and `--tls-key`), until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::EXIT_OK;
use crate::api::config::{FileConfig, resolve};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The data directory: the admin token, and the embedded store unless
    /// --store names another (created if missing).
    #[arg(long, env = "WEFT_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Where state lives: redb:DIR (the embedded store) or
    /// postgres://user@host:port/database[?sslmode=...] [default: redb in
    /// --data]. The password comes from the URL, PGPASSWORD or the
    /// password file (PGPASSFILE or ~/.pgpass), and is never printed. TLS
    /// as libpq's sslmode says (prefer by default, require, verify-ca,
    /// verify-full), trusting the roots in sslrootcert=PATH (or
    /// PGSSLROOTCERT), else the system's.
    #[arg(long, env = "WEFT_STORE", value_name = "STORE")]
    store: Option<String>,

    /// The address to listen on [default: 127.0.0.1:8080]. Port 0 picks a
    /// free port; the address is printed on start.
    #[arg(long, env = "WEFT_LISTEN", value_name = "ADDR")]
    listen: Option<String>,

    /// A TOML file with any of the settings below; flags and environment
    /// variables take precedence over it.
    #[arg(long, env = "WEFT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Attempts running at once, across all tenants [default: 64].
    #[arg(long, env = "WEFT_MAX_CONCURRENT_ATTEMPTS", value_name = "N")]
    max_concurrent_attempts: Option<usize>,

    /// The largest JSON or YAML request body [default: 1MiB].
    #[arg(long, env = "WEFT_MAX_BODY", value_name = "SIZE")]
    max_body: Option<String>,

    /// The largest module upload the server reads [default: 64MiB];
    /// each tenant's quota may be lower.
    #[arg(long, env = "WEFT_MAX_MODULE_BODY", value_name = "SIZE")]
    max_module_body: Option<String>,

    /// The store's own page cache [default: 16MiB]. Reads it misses are
    /// served by the kernel's page cache, so a small one does.
    #[arg(long, env = "WEFT_STORE_CACHE", value_name = "SIZE")]
    store_cache: Option<String>,

    /// Where compiled modules are kept, so a restart does not compile
    /// them again [default: DATA/module-cache]. Files are checked when
    /// read; a corrupt or stale one is compiled again.
    #[arg(long, env = "WEFT_MODULE_CACHE", value_name = "DIR")]
    module_cache: Option<std::path::PathBuf>,

    /// The most the compiled modules take on disk; the least recently
    /// used go first [default: 1GiB]. 0 keeps none on disk.
    #[arg(long, env = "WEFT_MODULE_CACHE_SIZE", value_name = "SIZE")]
    module_cache_size: Option<String>,

    /// How often finished runs older than their tenant's retention_days
    /// quota are deleted [default: 10m].
    #[arg(long, env = "WEFT_RETENTION_INTERVAL", value_name = "DURATION")]
    retention_interval: Option<String>,

    /// How long a shutdown waits for running attempts before abandoning
    /// them (they run again after a restart; in a cluster, at once on
    /// another node) [default: 30s].
    #[arg(long, env = "WEFT_SHUTDOWN_GRACE", value_name = "DURATION")]
    shutdown_grace: Option<String>,

    /// On PostgreSQL, where any number of nodes share one database: this
    /// node's name, unique in the cluster [default: the host's name and
    /// the process id]. A node restarted under the same id takes over
    /// from its predecessor at once.
    #[arg(long, env = "WEFT_NODE_ID", value_name = "ID")]
    node_id: Option<String>,

    /// The address `weft nodes` shows for this node [default: the address
    /// it listens on].
    #[arg(long, env = "WEFT_ADVERTISE", value_name = "HOST:PORT")]
    advertise: Option<String>,

    /// How often the node heartbeats in the database [default: 250ms].
    #[arg(long, env = "WEFT_HEARTBEAT_INTERVAL", value_name = "DURATION")]
    heartbeat_interval: Option<String>,

    /// How long a node may be silent before the others declare it dead
    /// and take over its runs (a killed node is noticed sooner)
    /// [default: 1.5s]. Shorter moves work sooner; too short declares
    /// nodes dead that were only slow.
    #[arg(long, env = "WEFT_NODE_TIMEOUT", value_name = "DURATION")]
    node_timeout: Option<String>,

    /// Let tasks reach loopback, link-local and private addresses (an
    /// internal service, a local stand-in) when their step's `http.allow`
    /// names that address or a range holding it. Off by default: such
    /// addresses are refused whatever a step says, so that no task can
    /// reach the cloud metadata service or this machine's own ports.
    #[arg(long, env = "WEFT_ALLOW_PRIVATE_HTTP")]
    allow_private_http: bool,

    /// Attempts that may execute guest code at once: the CPU tokens the
    /// sandbox shares fairly among tenants (an attempt waiting on the
    /// network or the host holds none). Default: the cores less one, so
    /// the API and the store keep a core.
    #[arg(long, env = "WEFT_SANDBOX_CPUS", value_name = "N")]
    sandbox_cpus: Option<usize>,

    /// Serve HTTPS with this certificate chain (PEM, the server's own
    /// certificate first); needs --tls-key. SIGHUP reads both files
    /// again: new connections get the new pair, open ones keep theirs,
    /// and a pair that cannot be used is logged and the old one kept.
    #[arg(long, env = "WEFT_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC); needs
    /// --tls-cert.
    #[arg(long, env = "WEFT_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let file = match &args.config {
        Some(path) => FileConfig::read(path).map_err(anyhow::Error::msg)?,
        None => FileConfig::default(),
    };
    let given = FileConfig {
        data: args.data,
        store: args.store,
        listen: args.listen,
        max_concurrent_attempts: args.max_concurrent_attempts,
        sandbox_cpus: args.sandbox_cpus,
        max_body: args.max_body,
        max_module_body: args.max_module_body,
        shutdown_grace: args.shutdown_grace,
        store_cache: args.store_cache,
        module_cache: args.module_cache,
        module_cache_size: args.module_cache_size,
        retention_interval: args.retention_interval,
        node_id: args.node_id,
        advertise: args.advertise,
        heartbeat_interval: args.heartbeat_interval,
        node_timeout: args.node_timeout,
        allow_private_http: args.allow_private_http.then_some(true),
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        default_quotas: None,
    };
    let config = resolve(given, file).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let store = config
        .store
        .clone()
        .unwrap_or_else(|| crate::store::StoreLocation::Redb(config.data.clone()));
    crate::api::serve(config, listener, shutdown_signal(), |server| {
        if let Some(path) = &server.admin_token_file {
            eprintln!("generated an admin token in {} (readable by you only)", path.display());
        }
        eprintln!("resumed {} unfinished run(s) from {store}", server.resumed);
        eprintln!("weft listening on {scheme}://{address}");
    })
    .await?;
    eprintln!("weft stopped");
    Ok(EXIT_OK)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
