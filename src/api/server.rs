//! `weft serve`: open the store, resume unfinished runs, answer HTTP until
//! told to stop, then stop taking work, let running attempts finish (up to
//! a grace period), and close the store.

use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::tls::{Certificates, TlsListener};
use super::{ApiState, Metrics, ServerConfig, router};
use crate::engine::{Engine, EngineConfig, NodeConfig, SandboxRunner, TokioClock};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::secrets::payloads::seal_payloads;
use crate::secrets::{MasterKey, Secrets};
use crate::store::{self, Store, StoreLocation};
use crate::tenant::RateLimiter;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(String);

/// What start-up found, for the operator.
#[derive(Debug, Clone)]
pub struct Server {
    /// Unfinished runs resumed.
    pub resumed: usize,
    /// Where the generated admin token was written, if one was generated.
    pub admin_token_file: Option<std::path::PathBuf>,
}

/// The file the generated admin token is kept in.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Serves the API on `listener` until `shutdown` completes. `started` is
/// called once the store is open and runs are resumed, before the first
/// request is answered.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    started: impl FnOnce(&Server),
) -> Result<(), ServeError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| ServeError(format!("{what}: {e}"));
    // Before anything else: a certificate that cannot be used stops the
    // start with the file named, before the store is touched.
    let certificates = match &config.tls {
        Some(files) => Some(Certificates::open(files.clone()).map_err(|e| ServeError(e.to_string()))?),
        None => None,
    };
    // In place long before `started`, so that a SIGHUP sent once the
    // server says it listens reloads rather than kills it.
    #[cfg(unix)]
    let reloader = match &certificates {
        Some(certificates) => {
            Some(super::tls::reload_on_sighup(certificates.clone()).map_err(|e| fail("cannot handle SIGHUP", &e))?)
        }
        None => None,
    };
    std::fs::create_dir_all(&config.data).map_err(|e| fail(&format!("cannot create {}", config.data.display()), &e))?;
    let (admin_token, admin_token_file) = admin_token(&config.data)?;
    let location = config
        .store
        .clone()
        .unwrap_or_else(|| StoreLocation::Redb(config.data.clone()));
    let store = store::open(&location, config.store_cache)
        .await
        .map_err(|e| fail("cannot open the store", &e))?;
    let defaults = SandboxConfig::default();
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent: config.max_concurrent_attempts as u32,
        allow_private_http: config.allow_private_http,
        compiled_cache: config.compiled_cache(),
        cpus: config.sandbox_cpus.unwrap_or(defaults.cpus),
        ..defaults
    })
    .map_err(|e| fail("cannot start the sandbox", &e))?;
    let secrets = open_secrets(&config.data, &location, &store).await?;
    let store = seal_payloads(store, secrets.as_ref().map(|s| s.master_key().clone()));
    let mut runner = SandboxRunner::new(sandbox.clone(), store.clone());
    if let Some(secrets) = &secrets {
        runner = runner.with_secrets(secrets.clone());
    }
    let runner = Arc::new(runner);
    let engine_config = EngineConfig {
        max_concurrent: config.max_concurrent_attempts,
        node: NodeConfig {
            node_id: config.node_id.clone(),
            address: config
                .advertise
                .clone()
                .unwrap_or_else(|| listener.local_addr().map_or_else(|_| String::new(), |a| a.to_string())),
            timing: config.timing,
        },
        ..EngineConfig::default()
    };
    let clock: Arc<dyn crate::engine::Clock> = Arc::new(TokioClock::system());
    let (engine, resumed) = Engine::start(store.clone(), runner, clock.clone(), engine_config)
        .await
        .map_err(|e| fail("cannot start the engine", &e))?;

    let (stop, stopping) = watch::channel(false);
    let metrics = Metrics::new();
    let state = Arc::new(ApiState {
        engine: engine.clone(),
        store,
        sandbox,
        config: config.clone(),
        admin_token,
        limiter: RateLimiter::default(),
        metrics,
        stopping,
        started_at: clock.now(),
        secrets,
    });
    tokio::spawn(super::metrics::follow(state.clone(), engine.subscribe()));
    let now = {
        let clock = clock.clone();
        move || clock.now()
    };
    let retention = tokio::spawn(store::retention::run(
        state.store.clone(),
        now,
        config.retention_interval,
    ));
    // Every node fires schedules; each instant starts one run however
    // many do (`crate::triggers::scheduler`).
    let scheduler = tokio::spawn(crate::triggers::scheduler::run(engine.clone()));
    // Every node delivers notifications from the outbox (`crate::notify`).
    let deliverer = tokio::spawn(crate::notify::deliver::run(crate::notify::deliver::Deliverer {
        store: state.store.clone(),
        secrets: state.secrets.clone(),
        client: crate::notify::client::Client::new(config.allow_private_http),
        now: Arc::new({
            let clock = clock.clone();
            move || clock.now()
        }),
    }));
    let (app, _) = router(state.clone());
    started(&Server {
        resumed,
        admin_token_file,
    });

    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests; waiting for running attempts");
        let _ = stop.send(true);
    };
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = match certificates {
        None => {
            // A response written in two parts on a keep-alive connection
            // would otherwise wait for the client's delayed ACK (~40 ms).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            axum::serve(listener, app).with_graceful_shutdown(graceful).await
        }
        Some(certificates) => {
            let listener = TlsListener::new(listener, certificates.server_config());
            // TlsListener sets TCP_NODELAY itself, before the handshake.
            // The empty tap is for `ConnectInfo<SocketAddr>`: axum gives
            // it to tapped listeners whatever they are.
            axum::serve(listener.tap_io(|_| {}), app)
                .with_graceful_shutdown(graceful)
                .await
        }
    }
    .map_err(|e| fail("the server failed", &e));
    #[cfg(unix)]
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    scheduler.abort();
    deliverer.abort();
    if !engine.drain(config.shutdown_grace).await {
        tracing::warn!(
            grace = ?config.shutdown_grace,
            "attempts still running after the grace period are abandoned; they run again after a restart"
        );
    }
    engine.shutdown().await;
    retention.abort();
    result
}

/// Tenants' secrets, under the master key (`crate::secrets::MasterKey`):
/// `WEFT_MASTER_KEY`, else `DATA/master.key`, which on the embedded store
/// is made on first start. Nodes sharing a PostgreSQL store must share one
/// key, so none is made for them: without one a node keeps no secrets, and
/// refuses to start if the store has some. A key that did not seal the
/// store's secrets refuses the start, naming where it came from.
async fn open_secrets(
    data: &Path,
    location: &StoreLocation,
    store: &Arc<dyn Store>,
) -> Result<Option<Arc<Secrets>>, ServeError> {
    let refuse = |e: crate::secrets::SecretsError| ServeError(format!("cannot start: {e}"));
    let key = match location {
        StoreLocation::Redb(_) => Some(MasterKey::find_or_create(data).map_err(refuse)?),
        StoreLocation::Postgres(_) => MasterKey::find(data).map_err(refuse)?,
    };
    let Some(key) = key else {
        Secrets::require_no_keycheck(&**store).await.map_err(refuse)?;
        tracing::warn!(
            "no master key (WEFT_MASTER_KEY or DATA/master.key): this node keeps no secrets, and steps that use \
             one fail with secret_missing"
        );
        return Ok(None);
    };
    if let crate::secrets::KeyOrigin::Generated(path) = key.origin() {
        tracing::warn!(
            key_id = key.key_id(),
            "generated a master key in {}: back it up apart from the store, or its secrets are lost with it",
            path.display()
        );
    }
    let origin = key.origin().to_string();
    let secrets = Secrets::open(store.clone(), key).await.map_err(refuse)?;
    tracing::info!(
        key_id = secrets.key_id(),
        origin,
        "secrets are sealed with the master key"
    );
    Ok(Some(Arc::new(secrets)))
}

/// The admin token: `WEFT_ADMIN_TOKEN`, else the one kept in the data
/// directory, else a new one written there readable by its owner only.
/// The token itself is never logged.
fn admin_token(data: &Path) -> Result<(String, Option<std::path::PathBuf>), ServeError> {
    if let Ok(token) = std::env::var("WEFT_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok((token.trim().to_string(), None));
    }
    let path = data.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok((token.trim().to_string(), None)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServeError(format!("cannot read {}: {e}", path.display()))),
    }
    let token = format!("wa_{}", hex::encode(rand::random::<[u8; 24]>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        let mut file = options.open(&path)?;
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    write(&options).map_err(|e| ServeError(format!("cannot write {}: {e}", path.display())))?;
    Ok((token, Some(path)))
}
