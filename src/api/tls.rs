//! HTTPS without a proxy: the certificate chain and private key `weft
//! serve` reads (`--tls-cert`, `--tls-key`, PEM), the resolver that hands
//! every new connection the pair in force and swaps it when SIGHUP has the
//! files read again, and the listener that does each TLS handshake in a
//! task of its own, so that a slow or broken client (plain HTTP sent to
//! the TLS port, say) costs only its own connection and never holds up
//! the accept loop.
//!
//! TLS is rustls with the ring provider (no aws-lc-rs C build), TLS 1.2
//! and 1.3, HTTP/1.1 by ALPN (the server speaks no HTTP/2).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its TLS handshake before its
/// connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's certificate chain and private key are, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate or key could not be used; names the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsFiles {
    /// Reads both files and checks that the key belongs to the
    /// certificate.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let cert = self.cert.display();
        let key = self.key.display();
        let chain = CertificateDer::pem_slice_iter(&read(&self.cert, "certificate")?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError(format!("the TLS certificate file {cert} is not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError(format!(
                "the TLS certificate file {cert} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
            )));
        }
        let private = PrivateKeyDer::from_pem_slice(&read(&self.key, "key")?).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError(format!(
                "the TLS key file {key} holds no private key (expected PEM: -----BEGIN PRIVATE KEY-----, RSA \
                 PRIVATE KEY or EC PRIVATE KEY)"
            )),
            e => TlsError(format!("the TLS key file {key} is not valid PEM: {e}")),
        })?;
        CertifiedKey::from_der(chain, private, &rustls::crypto::ring::default_provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError(format!(
                "the TLS key in {key} does not belong to the certificate in {cert}"
            )),
            e => TlsError(format!(
                "the TLS certificate in {cert} and key in {key} cannot be used: {e}"
            )),
        })
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read the TLS {what} file {}: {e}", path.display())))
}

/// The certificate and key in force, read again from their files on
/// [`Certificates::reload`]; every handshake takes the pair in force when
/// it starts, so connections already open keep theirs.
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the files; an error names the file at fault.
    pub fn open(files: TlsFiles) -> Result<Arc<Certificates>, TlsError> {
        let current = RwLock::new(Arc::new(files.load()?));
        Ok(Arc::new(Certificates { files, current }))
    }

    /// The files the pair comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again and, if they hold a usable pair, puts it in
    /// force; otherwise keeps the pair in force and says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(self.files.load()?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The rustls configuration of a server presenting these
    /// certificates.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// Reads the certificate and key again on every SIGHUP: logs at info when
/// the new pair is in force, at error (naming the file) when it could not
/// be read, keeping the old one. The handler is in place when this
/// returns, so a SIGHUP sent after start-up never stops the server.
#[cfg(unix)]
pub fn reload_on_sighup(certificates: Arc<Certificates>) -> io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let reloading = certificates.clone();
            let reloaded = tokio::task::spawn_blocking(move || reloading.reload()).await;
            let files = certificates.files();
            match reloaded {
                Ok(Ok(())) => tracing::info!(
                    cert = %files.cert.display(),
                    key = %files.key.display(),
                    "SIGHUP: reloaded the TLS certificate and key; new connections get them"
                ),
                Ok(Err(e)) => tracing::error!("SIGHUP: {e}; still serving the previous certificate"),
                Err(e) => tracing::error!("SIGHUP: reloading the TLS certificate failed: {e}"),
            }
        }
    }))
}

/// A listener that hands axum connections whose TLS handshake is done.
/// Accepting and handshaking happen in tasks of their own; a connection
/// whose handshake fails or takes longer than [`HANDSHAKE_TIMEOUT`] is
/// dropped and logged at debug. Dropping the listener stops the accepting.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: Option<SocketAddr>,
}

impl TlsListener {
    /// Takes connections on `tcp`, with TCP_NODELAY set, and shakes hands
    /// with `config`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        let local = tcp.local_addr().ok();
        let (handed, ready) = mpsc::channel(64);
        tokio::spawn(accept(tcp, TlsAcceptor::from(config), handed));
        TlsListener { ready, local }
    }
}

async fn accept(tcp: TcpListener, acceptor: TlsAcceptor, handed: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            () = handed.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        // A response written in two parts on a keep-alive connection
        // would otherwise wait for the client's delayed ACK (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let handed = handed.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server has stopped taking
                    // connections; the connection is then dropped.
                    let _ = handed.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed; connection dropped"),
                Err(_) => tracing::debug!(
                    %peer,
                    timeout = ?HANDSHAKE_TIMEOUT,
                    "no TLS handshake in time; connection dropped"
                ),
            }
        });
    }
}

/// As axum's own listener does: errors of one connection are skipped;
/// others (out of file descriptors) are logged and waited out.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            None => {
                // The accepting task ended, which only a panic in it can do.
                tracing::error!("the TLS accept loop ended; no new connections are taken");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.local
            .ok_or_else(|| io::Error::other("the TLS listener's address is unknown"))
    }
}
