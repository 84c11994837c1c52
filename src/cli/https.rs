//! HTTPS for the commands that talk to a server (`--url https://...`).
//!
//! reqwest is built here without TLS: its rustls backends either compile
//! aws-lc-rs (a large C build) or, with `rustls-no-provider`, make every
//! `reqwest::Client::new()` in the program and its tests panic unless a
//! process-wide crypto provider was installed first. So a request to an
//! https:// URL is built with reqwest as any other, then sent by this
//! module over tokio-rustls (the ring provider, as the rest of weft uses)
//! and hyper's HTTP/1.1, one connection per request, and its answer
//! handed back as a `reqwest::Response`; callers see no difference.
//!
//! Trusted: the certificates in `--ca FILE` (`WEFT_CA`) alone when given,
//! as `curl --cacert` does; else the system's roots, or the Mozilla roots
//! built into the binary when the system has none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http_body_util::BodyExt as _;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

/// How long connecting and the TLS handshake may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends requests to https:// URLs.
pub(crate) struct Https {
    config: Arc<rustls::ClientConfig>,
    /// The `--ca` file, if one was given (for error messages).
    ca: Option<PathBuf>,
}

impl Https {
    /// Trusts the certificates in `ca`, else the system's roots.
    pub fn new(ca: Option<&Path>) -> anyhow::Result<Https> {
        let roots = match ca {
            Some(path) => ca_roots(path)?,
            None => system_roots(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Https {
            config: Arc::new(config),
            ca: ca.map(Path::to_path_buf),
        })
    }

    /// Sends `request` (to an https:// URL) and returns the answer, its
    /// body streamed as it arrives.
    pub async fn send(&self, request: reqwest::Request) -> anyhow::Result<reqwest::Response> {
        let url = request.url().clone();
        let named = url.host_str().ok_or_else(|| anyhow!("{url} names no host"))?;
        let host = named.trim_start_matches('[').trim_end_matches(']').to_string();
        let authority = match url.port() {
            Some(port) => format!("{named}:{port}"),
            None => named.to_string(),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(&host, port))
            .await
            .map_err(|_| {
                anyhow!(
                    "no TLS connection to {host}:{port} within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )
            })??;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("the HTTP handshake failed")?;
        // Ends once the answer is read and `sender` dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "the HTTPS connection ended with an error");
            }
        });
        let mut request = http::Request::try_from(request).context("cannot build the request")?;
        if !request.headers().contains_key(http::header::HOST) {
            let value = http::HeaderValue::try_from(authority).context("the URL's host is not a valid Host header")?;
            request.headers_mut().insert(http::header::HOST, value);
        }
        // HTTP/1.1 to the server itself names only the path and query.
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        *request.uri_mut() = path
            .parse()
            .with_context(|| format!("{path:?} is not a valid request path"))?;
        let response = sender.send_request(request).await.context("the request failed")?;
        let response = response.map(|body| reqwest::Body::wrap_stream(body.into_data_stream()));
        Ok(reqwest::Response::from(response))
    }

    async fn connect(&self, host: &str, port: u16) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string()).map_err(|_| anyhow!("{host:?} is not a host name"))?,
        };
        let stream = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let _ = stream.set_nodelay(true);
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| self.tls_error(host, &e))
    }

    /// Says why the handshake failed, and what to do about it.
    fn tls_error(&self, host: &str, e: &std::io::Error) -> anyhow::Error {
        use rustls::CertificateError as Problem;
        let signers = match &self.ca {
            Some(ca) => format!("no CA in {}", ca.display()),
            None => "no CA this system trusts (pass --ca FILE or set WEFT_CA to trust a private one)".to_string(),
        };
        let Some(error) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
            return anyhow!("the TLS handshake with {host} failed: {e}");
        };
        match error {
            rustls::Error::InvalidCertificate(Problem::UnknownIssuer) => {
                anyhow!("the server's TLS certificate is not trusted: {signers} signed it")
            }
            rustls::Error::InvalidCertificate(
                problem @ (Problem::NotValidForName | Problem::NotValidForNameContext { .. }),
            ) => {
                anyhow!("the server's TLS certificate is not valid for {host}: {problem}")
            }
            rustls::Error::InvalidCertificate(problem) if problem.to_string().contains("CaUsedAsEndEntity") => anyhow!(
                "the server's TLS certificate is a CA's (basicConstraints CA:TRUE), which cannot name a server: \
                 serve one that a CA signed, or a self-signed one made with CA:FALSE"
            ),
            rustls::Error::InvalidCertificate(problem) => {
                anyhow!(
                    "the server's TLS certificate is refused: {problem} (trusted: the CAs in {})",
                    self.trusted()
                )
            }
            rustls::Error::InvalidMessage(_) => {
                anyhow!("the server does not speak TLS ({error}); if it serves plain HTTP, use an http:// URL")
            }
            _ => anyhow!("the TLS handshake with {host} failed: {error}"),
        }
    }

    /// Which roots are trusted, for messages.
    fn trusted(&self) -> String {
        match &self.ca {
            Some(ca) => ca.display().to_string(),
            None => "the system's store; pass --ca FILE or set WEFT_CA for a private one".to_string(),
        }
    }
}

/// The certificates in a `--ca` file, and only those.
fn ca_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read the CA file {}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| anyhow!("the CA file {} is not valid PEM: {e}", path.display()))?;
        roots.add(cert).map_err(|e| {
            anyhow!(
                "the CA file {} holds a certificate that cannot be used: {e}",
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        bail!(
            "the CA file {} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(roots)
}

/// The system's roots; the Mozilla roots when it has none.
fn system_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        tracing::debug!(errors = ?loaded.errors, "no system roots; trusting the Mozilla roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}
