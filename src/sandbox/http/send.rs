//! One outbound request of a task: checked against the step's allow-list
//! and caps, its name resolved and every address checked by the host, the
//! checked address dialled (so DNS rebinding has no second answer to
//! use), the step's headers added, and both bodies streamed through byte
//! counters that end them at the caps.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::guard;
use super::journal::{Call, Journal};
use super::pattern::{Scheme, Target};
use super::{HttpLimits, HttpPolicy};
use crate::sandbox::capture::{Level, LogSink};

/// What the connection does once the response's head is in: driven by
/// wasmtime while the guest reads the body.
type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Exchange = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), Error>> + Send>;

/// The `wasi:http` hooks of one attempt.
pub(crate) struct HttpHooks {
    outbound: Arc<Outbound>,
    /// Requests made so far, refused ones included.
    made: u32,
}

/// What every request of one attempt shares.
struct Outbound {
    policy: HttpPolicy,
    private_permitted: bool,
    journal: Journal,
    logs: LogSink,
    sent: AtomicU64,
    received: AtomicU64,
}

/// How a request did not get its response.
enum Failure {
    /// The host would not make it.
    Refused(Error, String),
    /// It was made and went wrong.
    Failed(Error),
}

impl HttpHooks {
    /// The hooks for an attempt under `policy`, and where its requests are
    /// recorded. `private_permitted`: the server's setting.
    pub(crate) fn new(policy: HttpPolicy, private_permitted: bool, logs: LogSink) -> (HttpHooks, Journal) {
        let journal = Journal::default();
        let outbound = Arc::new(Outbound {
            policy,
            private_permitted,
            journal: journal.clone(),
            logs,
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        });
        (HttpHooks { outbound, made: 0 }, journal)
    }

    /// Why the host will not send this request, if it will not.
    fn refusal(&self, target: &Result<Target, String>) -> Option<(Error, String)> {
        let policy = &self.outbound.policy;
        if self.made > policy.limits.requests {
            return Some((
                Error::ConnectionLimitReached,
                format!(
                    "the attempt made its {} requests (http.limits.requests)",
                    policy.limits.requests
                ),
            ));
        }
        let target = match target {
            Ok(target) => target,
            Err(why) => return Some((Error::HttpRequestUriInvalid, why.clone())),
        };
        if policy.allow.allowing(target).is_none() {
            let why = match policy.allow.is_empty() {
                true => "the step may not make HTTP requests (its http.allow is empty)".to_string(),
                false => format!("{} is not on the step's http.allow list", target.url()),
            };
            return Some((Error::HttpRequestDenied, why));
        }
        None
    }
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Exchange {
        self.made = self.made.saturating_add(1);
        let method = request.method().to_string();
        let target = Target::of(request.uri());
        let url = match &target {
            Ok(target) => target.url(),
            Err(_) => without_query(request.uri()),
        };
        let call = self.outbound.journal.begin(&method, url.clone());
        if let Some((error, why)) = self.refusal(&target) {
            call.refuse(&why);
            self.outbound
                .logs
                .line(Level::Warn, &format!("http: refused {method} {url}: {why}"));
            return Box::new(async move { Err(error) });
        }
        let target = target.expect("refused above when invalid");
        for injected in &self.outbound.policy.headers {
            if injected.on.matches(&target) {
                for (name, value) in &injected.headers {
                    request.headers_mut().insert(name.clone(), value.clone());
                }
            }
        }
        let outbound = self.outbound.clone();
        Box::new(async move {
            match exchange(&outbound, request, options, &target, &call).await {
                Ok(exchanged) => Ok(exchanged),
                Err(Failure::Refused(error, why)) => {
                    call.refuse(&why);
                    outbound
                        .logs
                        .line(Level::Warn, &format!("http: refused {method} {url}: {why}"));
                    Err(error)
                }
                Err(Failure::Failed(error)) => {
                    call.fail(&error.to_string());
                    outbound
                        .logs
                        .line(Level::Warn, &format!("http: {method} {url} failed: {error}"));
                    Err(error)
                }
            }
        })
    }
}

fn without_query(uri: &http::Uri) -> String {
    let text = uri.to_string();
    text.split(['?', '#']).next().unwrap_or_default().to_string()
}

/// Resolves, checks, connects and sends; the response's head, with its
/// body counted.
async fn exchange(
    outbound: &Arc<Outbound>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: &Target,
    call: &Arc<Call>,
) -> Result<(http::Response<WasiBody>, Io), Failure> {
    let limits = outbound.policy.limits;
    let connect_timeout = shorter(options.and_then(|o| o.connect_timeout), limits.connect_timeout);
    let first_byte = shorter(options.and_then(|o| o.first_byte_timeout), limits.request_timeout);
    let between_bytes = shorter(options.and_then(|o| o.between_bytes_timeout), limits.request_timeout);

    let connecting = async {
        let addresses = resolve(target).await?;
        let mut why_not = None;
        let permitted: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(
                |address| match guard::check(address.ip(), &outbound.policy.allow, outbound.private_permitted) {
                    Ok(()) => true,
                    Err(why) => {
                        why_not.get_or_insert(why);
                        false
                    }
                },
            )
            .collect();
        if permitted.is_empty() {
            let why = why_not.unwrap_or_else(|| format!("{} has no address", target.host));
            return Err(Failure::Refused(Error::DestinationIpProhibited, why));
        }
        let stream = dial(&permitted).await?;
        let stream: Box<dyn Stream> = match target.scheme {
            Scheme::Http => Box::new(stream),
            Scheme::Https => Box::new(secure(stream, target).await?),
        };
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Failed(Error::from(e)))
    };
    let (mut sender, connection) = tokio::time::timeout(connect_timeout, connecting)
        .await
        .map_err(|_| Failure::Failed(Error::ConnectionTimeout))??;

    // The request line carries the path only; the authority is in `Host`.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Failure::Failed(Error::HttpRequestUriInvalid))?;
    let request = request.map(|body| {
        Counted {
            inner: body,
            direction: Direction::Sent,
            outbound: outbound.clone(),
            call: call.clone(),
            between: None,
            over: false,
        }
        .boxed_unsync()
    });

    let mut response = pin!(tokio::time::timeout(first_byte, sender.send_request(request)));
    let mut connection = Some(connection);
    // Drive the connection while waiting for the response's head.
    let head = poll_fn(|cx| {
        if let Poll::Ready(answer) = response.as_mut().poll(cx) {
            return Poll::Ready(answer);
        }
        if let Some(driving) = connection.as_mut()
            && let Poll::Ready(ended) = Pin::new(driving).poll(cx)
        {
            connection = None;
            if let Err(e) = ended {
                return Poll::Ready(Ok(Err(e)));
            }
        }
        Poll::Pending
    })
    .await
    .map_err(|_| Failure::Failed(Error::ConnectionReadTimeout))?
    .map_err(|e| {
        // A request body cut at the cap aborts the exchange as a hyper
        // error; the guest should hear which cap it was.
        match outbound.sent.load(Ordering::Relaxed) > limits.sent {
            true => Failure::Failed(Error::HttpRequestBodySize(Some(limits.sent))),
            false => Failure::Failed(Error::from(e)),
        }
    })?;

    call.answered(head.status().as_u16());
    let outbound = outbound.clone();
    let call = call.clone();
    let response = head.map(move |body| {
        Counted {
            inner: body,
            direction: Direction::Received,
            outbound,
            call,
            between: Some((between_bytes, Box::pin(tokio::time::sleep(between_bytes)))),
            over: false,
        }
        .boxed_unsync()
    });
    let io: Io = Box::new(async move {
        match connection {
            Some(connection) => connection.await.map_err(Error::from),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

fn shorter(asked: Option<Duration>, cap: Duration) -> Duration {
    asked.map_or(cap, |asked| asked.min(cap))
}

/// Every address of the target's host: the literal itself, or what the
/// name resolves to now.
async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, Failure> {
    if let Some(ip) = target.ip {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
        Ok(addresses) => Ok(addresses.collect()),
        Err(e) => Err(Failure::Failed(Error::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        })),
    }
}

/// Connects to the first of `addresses` that answers.
async fn dial(addresses: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Failure::Failed(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        Some(e) => Error::Connect(e),
        None => Error::DestinationUnavailable,
    }))
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// TLS to the target's name (or address), trusting the Mozilla roots.
async fn secure(stream: TcpStream, target: &Target) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    use rustls::pki_types::ServerName;
    let name = match target.ip {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(target.host.clone()).map_err(|_| Failure::Failed(Error::HttpRequestUriInvalid))?,
    };
    tokio_rustls::TlsConnector::from(tls_config())
        .connect(name, stream)
        .await
        .map_err(|e| {
            Failure::Failed(match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidCertificate(_)) => Error::TlsCertificateError,
                _ => Error::Tls(e),
            })
        })
}

pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Sent,
    Received,
}

/// A body counted against the attempt's cap for its direction, ended with
/// an error past it; a received one also ends when no chunk comes within
/// the request timeout.
struct Counted<B> {
    inner: B,
    direction: Direction,
    outbound: Arc<Outbound>,
    call: Arc<Call>,
    between: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    over: bool,
}

impl<B> Counted<B> {
    fn count(&mut self, bytes: u64) -> Result<(), Error> {
        let limits: HttpLimits = self.outbound.policy.limits;
        let (total, cap) = match self.direction {
            Direction::Sent => (&self.outbound.sent, limits.sent),
            Direction::Received => (&self.outbound.received, limits.received),
        };
        let before = total.fetch_add(bytes, Ordering::Relaxed);
        match self.direction {
            Direction::Sent => self.call.sent(bytes),
            Direction::Received => self.call.received(bytes),
        }
        if before + bytes <= cap {
            return Ok(());
        }
        self.over = true;
        let (what, error) = match self.direction {
            Direction::Sent => ("sent", Error::HttpRequestBodySize(Some(cap))),
            Direction::Received => ("received", Error::HttpResponseBodySize(Some(cap))),
        };
        let why = format!("the attempt's requests {what} more than {cap} body bytes (http.limits.{what}); cut off");
        self.call.fail(&why);
        self.outbound.logs.line(Level::Warn, &format!("http: {why}"));
        Err(error)
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.over {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some((wait, timer)) = &mut self.between {
                    timer.as_mut().reset(tokio::time::Instant::now() + *wait);
                }
                let bytes = frame.data_ref().map_or(0, |data| data.len() as u64);
                Poll::Ready(Some(self.count(bytes).map(|()| frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: Error = e.into();
                self.call.fail(&e.to_string());
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if self.direction == Direction::Received {
                    self.call.end();
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some((_, timer)) = &mut self.between else {
                    return Poll::Pending;
                };
                ready!(timer.as_mut().poll(cx));
                self.call.fail("no body bytes came within the request timeout");
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.over || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
