//! The HTTP client that delivers notifications: HTTP/1.1 over hyper,
//! TLS by rustls with the ring provider and the webpki roots (as tasks'
//! requests use), no redirects, a 10-second timeout for the whole try,
//! and the same defence against requests to private addresses as tasks
//! get: a target that is, or resolves to, a private address is refused
//! unless the server runs with `--allow-private-http`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

use crate::sandbox::http::private_kind;

/// How long one try may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What a try got.
#[derive(Debug)]
pub struct Answer {
    /// The status code, if the target answered.
    pub code: Option<u16>,
    /// Why the try failed (no answer, or not 2xx).
    pub error: Option<String>,
}

/// Sends notifications.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    allow_private: bool,
}

impl Client {
    /// A client; `allow_private` lets targets on private addresses be
    /// reached (a server's `--allow-private-http`).
    pub fn new(allow_private: bool) -> Client {
        Client { allow_private }
    }

    /// POSTs `body` to `url` with `headers`; a 2xx answer is delivered.
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        match tokio::time::timeout(TIMEOUT, self.exchange(url, headers, body)).await {
            Ok(Ok(code)) if (200..300).contains(&code) => Answer {
                code: Some(code),
                error: None,
            },
            Ok(Ok(code)) => Answer {
                code: Some(code),
                error: Some(format!("answered {code}")),
            },
            Ok(Err(error)) => Answer {
                code: None,
                error: Some(error),
            },
            Err(_) => Answer {
                code: None,
                error: Some(format!("no answer within {} s", TIMEOUT.as_secs())),
            },
        }
    }

    async fn exchange(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Result<u16, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url:?} is not an http:// or https:// URL")),
        };
        let host = uri.host().ok_or_else(|| format!("{url:?} names no host"))?;
        let bare = host.trim_matches(['[', ']']);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| format!("cannot resolve {bare}: {e}"))?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|a| self.allow_private || private_kind(a.ip()).is_none())
            .collect();
        let Some(first) = addresses.first() else {
            return Err(format!("{bare} resolves to no address"));
        };
        if allowed.is_empty() {
            return Err(format!(
                "{} is {}, and this server does not permit private destinations (--allow-private-http)",
                first.ip(),
                private_kind(first.ip()).unwrap_or("private")
            ));
        }
        let stream = dial(&allowed).await?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = http::Request::post(path)
            .header(http::header::HOST, uri.authority().map_or(bare, |a| a.as_str()))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, concat!("weft/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if tls {
            use rustls::pki_types::ServerName;
            let name = match bare.parse::<IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(bare.to_string()).map_err(|_| format!("{bare:?} is not a host name"))?,
            };
            let stream = tokio_rustls::TlsConnector::from(crate::sandbox::http::tls_config())
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS with {bare} failed: {e}"))?;
            send(stream, request).await
        } else {
            send(stream, request).await
        }
    }
}

/// Connects to the first of `addresses` that answers.
async fn dial(addresses: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(format!("cannot connect to {address}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| "no address to connect to".into()))
}

/// Sends `request` on `stream` and reads the answer (its body dropped).
async fn send<S>(stream: S, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"));
    let code = match response {
        Ok(response) => {
            let code = response.status().as_u16();
            let _ = response.into_body().collect().await;
            Ok(code)
        }
        Err(e) => Err(e),
    };
    driver.abort();
    code
}
