//! One request over `wasi:http/outgoing-handler`: the request is handed
//! to the host first and its body written after (so a body larger than the
//! host's buffer streams instead of blocking), then the response's head is
//! awaited and its body read as a stream.

use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    self as wit, ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, OutgoingBody,
    OutgoingRequest, RequestOptions,
};
use wasip2::io::streams::{InputStream, StreamError};

use super::HttpError;

/// The most bytes one `wasi:io` write may carry.
const WRITE_CHUNK: usize = 4096;
/// The most bytes asked for in one read.
const READ_CHUNK: u64 = 64 * 1024;

/// What goes out: already split into the parts `wasi:http` wants.
pub(super) struct Outgoing<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a [(String, Vec<u8>)],
    pub body: &'a [u8],
    pub timeout: Option<Duration>,
}

/// A response whose body has not been read yet.
pub(super) struct Incoming {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: BodyStream,
}

/// A response body as it arrives. Its fields drop in order: the stream
/// before the body, the body before the response that owns it.
pub(super) struct BodyStream {
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
    _response: IncomingResponse,
    url: String,
}

impl BodyStream {
    /// The next bytes, `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        match stream.blocking_read(READ_CHUNK) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StreamError::Closed) => {
                self.stream = None;
                Ok(None)
            }
            Err(StreamError::LastOperationFailed(e)) => {
                self.stream = None;
                Err(match wit::http_error_code(&e) {
                    Some(code) => HttpError::from_code(&code, &self.url),
                    None => from_text(&e.to_debug_string(), &self.url),
                })
            }
        }
    }
}

/// The error for a body-stream failure the host gave as text only.
///
/// wasmtime-wasi-http (48) hands a body's errors to the guest as plain
/// `wasi:io` errors, so `http-error-code` finds no code in them; their
/// text is the host's description, which says which cap or timeout it was.
fn from_text(text: &str, url: &str) -> HttpError {
    let why = format!("reading the answer of {url} failed: {text}");
    if text.contains("body size exceeds") {
        HttpError::Limit(why)
    } else if text.contains("timeout") || text.contains("timed out") {
        HttpError::Timeout(why)
    } else {
        HttpError::Failed(why)
    }
}

/// Sends one request and waits for the head of its response.
pub(super) fn send(out: Outgoing<'_>, url: &str) -> Result<Incoming, HttpError> {
    let failed = |code: ErrorCode| HttpError::from_code(&code, url);
    let headers = Fields::from_list(out.headers)
        .map_err(|e| HttpError::InvalidUrl(format!("a header of the request to {url} is not valid: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let parts = request
        .set_method(&method(out.method))
        .and_then(|()| request.set_scheme(Some(&scheme(out.uri))))
        .and_then(|()| request.set_authority(out.uri.authority().map(|a| a.as_str())))
        .and_then(|()| request.set_path_with_query(Some(out.uri.path_and_query().map_or("/", |p| p.as_str()))));
    if parts.is_err() {
        return Err(HttpError::InvalidUrl(format!("{url} is not a valid request URL")));
    }
    let body = request.body().expect("a new request's body is taken once");
    let options = RequestOptions::new();
    if let Some(timeout) = out.timeout {
        let nanos = Some(timeout.as_nanos().min(u64::MAX as u128) as u64);
        // A host may not support a timeout; the step's own caps apply anyway.
        let _ = options.set_connect_timeout(nanos);
        let _ = options.set_first_byte_timeout(nanos);
        let _ = options.set_between_bytes_timeout(nanos);
    }
    let future = outgoing_handler::handle(request, Some(options)).map_err(failed)?;
    // A body the host stops taking (a refusal, a cap) is not the error to
    // report: the response future says what happened.
    let written = write_body(body, out.body);
    let response = wait(&future).map_err(failed)?;
    written?;
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response.consume().expect("a response's body is taken once");
    let stream = incoming.stream().expect("a body's stream is taken once");
    Ok(Incoming {
        status,
        headers,
        body: BodyStream {
            stream: Some(stream),
            _body: Some(incoming),
            _response: response,
            url: url.to_string(),
        },
    })
}

/// Writes the whole body and finishes it; an error only when the host
/// would not take it for a reason the response will not tell.
fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    if let Ok(stream) = body.write() {
        for chunk in bytes.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                drop(stream);
                drop(body);
                return Ok(());
            }
        }
        drop(stream);
    }
    OutgoingBody::finish(body, None)
        .map_err(|code| HttpError::Failed(format!("the request body could not be finished: {code:?}")))
}

/// Blocks until the response's head (or its failure) is in.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    loop {
        match future.get() {
            Some(Ok(answer)) => return answer,
            Some(Err(())) => unreachable!("a response future is read once"),
            None => future.subscribe().block(),
        }
    }
}

fn method(method: &http::Method) -> wit::Method {
    match *method {
        http::Method::GET => wit::Method::Get,
        http::Method::HEAD => wit::Method::Head,
        http::Method::POST => wit::Method::Post,
        http::Method::PUT => wit::Method::Put,
        http::Method::DELETE => wit::Method::Delete,
        http::Method::CONNECT => wit::Method::Connect,
        http::Method::OPTIONS => wit::Method::Options,
        http::Method::TRACE => wit::Method::Trace,
        http::Method::PATCH => wit::Method::Patch,
        ref other => wit::Method::Other(other.to_string()),
    }
}

fn scheme(uri: &http::Uri) -> wit::Scheme {
    match uri.scheme_str() {
        Some("http") => wit::Scheme::Http,
        Some("https") | None => wit::Scheme::Https,
        Some(other) => wit::Scheme::Other(other.to_string()),
    }
}
