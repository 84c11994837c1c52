//! The server's settings: from flags, the environment and an optional
//! TOML file, in that order of precedence, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sandbox::{parse_duration, parse_size};
use crate::store::StoreLocation;
use crate::tenant::Quotas;

/// Everything `weft serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the admin token lives, and the store unless `store` says
    /// otherwise.
    pub data: PathBuf,
    /// Where the store is; `None` is the embedded store in `data`.
    pub store: Option<StoreLocation>,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Attempts running at once, across all tenants.
    pub max_concurrent_attempts: usize,
    /// Attempts executing guest code at once (the sandbox's CPU tokens,
    /// shared fairly among tenants); `None`: the cores less one.
    pub sandbox_cpus: Option<usize>,
    /// The largest JSON or YAML request body, in bytes.
    pub max_body: usize,
    /// The largest module upload the server reads at all, in bytes (each
    /// tenant's quota may be lower).
    pub max_module_body: usize,
    /// How long a shutdown waits for running attempts.
    pub shutdown_grace: Duration,
    /// The store's own page cache, in bytes (the kernel's page cache
    /// serves the rest of the file).
    pub store_cache: usize,
    /// Quotas of tenants created without their own.
    pub default_quotas: Quotas,
    /// How often finished runs past their tenant's retention are deleted.
    pub retention_interval: Duration,
    /// On a shared store (PostgreSQL): the node's name, the address shown
    /// for it (`None`: the address it listens on), heartbeat and timeout.
    pub node_id: Option<String>,
    /// The address other people reach this node at.
    pub advertise: Option<String>,
    /// How often the node heartbeats, and after how long without one a
    /// node is declared dead.
    pub timing: crate::store::cluster::Timing,
    /// Whether tasks may reach loopback, link-local and private addresses
    /// that their step's `http.allow` names explicitly.
    pub allow_private_http: bool,
    /// HTTPS: the certificate and key to serve with (reloaded on SIGHUP);
    /// `None` serves plain HTTP.
    pub tls: Option<super::tls::TlsFiles>,
    /// Where compiled modules are kept across restarts (`None`:
    /// `DATA/module-cache`), and the most bytes they take (0: none kept).
    pub module_cache: Option<PathBuf>,
    /// See `module_cache`.
    pub module_cache_size: u64,
}

impl ServerConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data: PathBuf) -> ServerConfig {
        ServerConfig {
            data,
            store: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_concurrent_attempts: 64,
            sandbox_cpus: None,
            max_body: 1 << 20,
            max_module_body: 64 << 20,
            shutdown_grace: Duration::from_secs(30),
            store_cache: crate::store::DEFAULT_CACHE,
            default_quotas: Quotas::default(),
            retention_interval: Duration::from_secs(600),
            node_id: None,
            advertise: None,
            timing: crate::store::cluster::Timing::default(),
            allow_private_http: false,
            tls: None,
            module_cache: None,
            module_cache_size: 1 << 30,
        }
    }

    /// The compiled-module cache's directory and size, unless it is off.
    pub fn compiled_cache(&self) -> Option<(PathBuf, u64)> {
        let dir = self
            .module_cache
            .clone()
            .unwrap_or_else(|| self.data.join("module-cache"));
        (self.module_cache_size > 0).then_some((dir, self.module_cache_size))
    }
}

/// The TOML file: every key optional.
///
/// ```toml
/// data = "/var/lib/weft"
/// store = "postgres://weft@db.internal/weft"
/// listen = "0.0.0.0:8080"
/// max_concurrent_attempts = 64
/// sandbox_cpus = 3
/// max_body = "1MiB"
/// max_module_body = "64MiB"
/// shutdown_grace = "30s"
/// store_cache = "16MiB"
/// retention_interval = "10m"
/// node_id = "weft-1"
/// advertise = "weft-1.internal:8080"
/// heartbeat_interval = "250ms"
/// node_timeout = "1.5s"
/// allow_private_http = false
/// tls_cert = "/etc/weft/tls/cert.pem"
/// tls_key = "/etc/weft/tls/key.pem"
/// module_cache = "/var/cache/weft/modules"
/// module_cache_size = "1GiB"
///
/// [default_quotas]
/// max_concurrent_runs = 100
/// max_concurrent_attempts = 0
/// max_fuel = 10000000000
/// max_memory = 268435456
/// max_module_size = 33554432
/// max_modules = 200
/// start_rate = 100.0
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data: Option<PathBuf>,
    /// Store location: `redb:DIR` or `postgres://...`.
    pub store: Option<String>,
    /// Listen address.
    pub listen: Option<String>,
    /// Attempts at once.
    pub max_concurrent_attempts: Option<usize>,
    /// Attempts executing guest code at once.
    pub sandbox_cpus: Option<usize>,
    /// JSON/YAML body cap, e.g. "1MiB".
    pub max_body: Option<String>,
    /// Module body cap, e.g. "64MiB".
    pub max_module_body: Option<String>,
    /// Shutdown grace, e.g. "30s".
    pub shutdown_grace: Option<String>,
    /// The store's page cache, e.g. "16MiB".
    pub store_cache: Option<String>,
    /// How often retention sweeps, e.g. "10m".
    pub retention_interval: Option<String>,
    /// The node's name in a cluster.
    pub node_id: Option<String>,
    /// The address shown for the node.
    pub advertise: Option<String>,
    /// Between heartbeats, e.g. "250ms".
    pub heartbeat_interval: Option<String>,
    /// Silence after which a node is dead, e.g. "1.5s".
    pub node_timeout: Option<String>,
    /// Whether tasks may reach private addresses their steps name.
    pub allow_private_http: Option<bool>,
    /// The PEM certificate chain to serve HTTPS with.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Where compiled modules are kept across restarts.
    pub module_cache: Option<PathBuf>,
    /// The most they take on disk, e.g. "1GiB"; "0" keeps none.
    pub module_cache_size: Option<String>,
    /// Default tenant quotas.
    pub default_quotas: Option<Quotas>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn read(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Resolves flags and environment variables (`given`, in the file's
/// shape) over the file over the defaults. Errors name the setting and
/// what was wrong with it.
pub fn resolve(given: FileConfig, file: FileConfig) -> Result<ServerConfig, String> {
    let data = given
        .data
        .or(file.data)
        .ok_or("no data directory: give --data DIR, WEFT_DATA or `data` in the config file")?;
    let mut config = ServerConfig::new(data);
    if let Some(store) = given.store.or(file.store) {
        config.store = Some(store.parse().map_err(|e| format!("store: {e}"))?);
    }
    if let Some(listen) = given.listen.or(file.listen) {
        config.listen = listen
            .parse()
            .map_err(|e| format!("listen address {listen:?}: {e} (expected e.g. 127.0.0.1:8080)"))?;
    }
    if let Some(n) = given.max_concurrent_attempts.or(file.max_concurrent_attempts) {
        if n == 0 {
            return Err("max_concurrent_attempts must be at least 1".into());
        }
        config.max_concurrent_attempts = n;
    }
    if let Some(n) = given.sandbox_cpus.or(file.sandbox_cpus) {
        if n == 0 {
            return Err("sandbox_cpus must be at least 1".into());
        }
        config.sandbox_cpus = Some(n);
    }
    let size = |name: &str, value: Option<String>| -> Result<Option<usize>, String> {
        value
            .map(|v| {
                parse_size(&v)
                    .map(|n| n as usize)
                    .map_err(|e| format!("{name} {v:?}: {e}"))
            })
            .transpose()
    };
    if let Some(n) = size("max_body", given.max_body.or(file.max_body))? {
        config.max_body = n;
    }
    if let Some(n) = size("max_module_body", given.max_module_body.or(file.max_module_body))? {
        config.max_module_body = n;
    }
    if let Some(n) = size("store_cache", given.store_cache.or(file.store_cache))? {
        config.store_cache = n;
    }
    if let Some(n) = size("module_cache_size", given.module_cache_size.or(file.module_cache_size))? {
        config.module_cache_size = n as u64;
    }
    config.module_cache = given.module_cache.or(file.module_cache);
    if let Some(grace) = given.shutdown_grace.or(file.shutdown_grace) {
        config.shutdown_grace = parse_duration(&grace).map_err(|e| format!("shutdown_grace {grace:?}: {e}"))?;
    }
    if let Some(every) = given.retention_interval.or(file.retention_interval) {
        config.retention_interval = parse_duration(&every).map_err(|e| format!("retention_interval {every:?}: {e}"))?;
        if config.retention_interval.is_zero() {
            return Err("retention_interval must be longer than 0".into());
        }
    }
    if let Some(quotas) = file.default_quotas {
        config.default_quotas = quotas;
    }
    config.node_id = given.node_id.or(file.node_id);
    if let Some(id) = &config.node_id
        && (id.is_empty() || id.len() > 128 || id.chars().any(char::is_control))
    {
        return Err(format!("node_id {id:?}: give 1 to 128 printable characters"));
    }
    config.advertise = given.advertise.or(file.advertise);
    if let Some(every) = given.heartbeat_interval.or(file.heartbeat_interval) {
        config.timing.heartbeat = parse_duration(&every).map_err(|e| format!("heartbeat_interval {every:?}: {e}"))?;
    }
    if let Some(after) = given.node_timeout.or(file.node_timeout) {
        config.timing.timeout = parse_duration(&after).map_err(|e| format!("node_timeout {after:?}: {e}"))?;
    }
    config.allow_private_http = given.allow_private_http.or(file.allow_private_http).unwrap_or_default();
    config.tls = match (given.tls_cert.or(file.tls_cert), given.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => Some(super::tls::TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(
                "--tls-cert needs --tls-key (or tls_key in the config file): the certificate's private key".into(),
            );
        }
        (None, Some(_)) => {
            return Err("--tls-key needs --tls-cert (or tls_cert in the config file): the certificate chain".into());
        }
    };
    let timing = config.timing;
    if timing.heartbeat.is_zero() || timing.timeout < timing.heartbeat * 3 {
        return Err(format!(
            "node_timeout ({:?}) must be at least three heartbeat intervals ({:?}), or one late heartbeat \
             would declare a live node dead",
            timing.timeout, timing.heartbeat
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            "data = \"/from/file\"\nlisten = \"0.0.0.0:9000\"\nmax_body = \"2MiB\"\nsandbox_cpus = 3\n\
             [default_quotas]\nmax_modules = 3\n",
        )
        .unwrap();
        let given = FileConfig {
            listen: Some("127.0.0.1:7000".into()),
            ..FileConfig::default()
        };
        let config = resolve(given, file).unwrap();
        assert_eq!(config.data, PathBuf::from("/from/file"));
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.max_body, 2 << 20);
        assert_eq!(config.default_quotas.max_modules, 3);
        assert_eq!(config.default_quotas.start_rate, Quotas::default().start_rate);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.sandbox_cpus, Some(3));
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = FileConfig {
            data: Some("/d".into()),
            listen: Some("nowhere".into()),
            ..FileConfig::default()
        };
        assert!(
            resolve(bad, FileConfig::default())
                .unwrap_err()
                .contains("listen address")
        );
        assert!(
            resolve(FileConfig::default(), FileConfig::default())
                .unwrap_err()
                .contains("--data")
        );
        let no_cpus = FileConfig {
            data: Some("/d".into()),
            sandbox_cpus: Some(0),
            ..FileConfig::default()
        };
        assert!(
            resolve(no_cpus, FileConfig::default())
                .unwrap_err()
                .contains("sandbox_cpus")
        );
        let half_tls = FileConfig {
            data: Some("/d".into()),
            tls_cert: Some("/cert.pem".into()),
            ..FileConfig::default()
        };
        let error = resolve(half_tls, FileConfig::default()).unwrap_err();
        assert!(error.contains("--tls-key"), "{error}");
        let other_half: FileConfig = toml::from_str("data = \"/d\"\ntls_key = \"/key.pem\"\n").unwrap();
        let error = resolve(FileConfig::default(), other_half).unwrap_err();
        assert!(error.contains("--tls-cert"), "{error}");
        let unknown = toml::from_str::<FileConfig>("colour = 1").unwrap_err().to_string();
        assert!(unknown.contains("colour"), "{unknown}");
    }
}
