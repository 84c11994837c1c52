//! Outbound HTTP from a task, over `wasi:http`, with JSON helpers.
//!
//! ```ignore
//! use weft_sdk::http;
//!
//! let charge: Charge = http::post("https://payments.example.com/v1/charges")
//!     .json(&ChargeRequest { amount_cents: 1200, currency: "EUR".into() })?
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! ```
//!
//! A request goes out only if the step's `http.allow` list lets it, within
//! the step's caps; anything else fails with [`HttpError::Refused`] or
//! [`HttpError::Limit`], and the attempt's log says why. Credentials
//! belong in the step's `http.headers`, which the host adds to matching
//! requests: the task never sees them.
//!
//! Redirects (301, 302, 303, 307, 308) are followed, at most
//! [`Request::max_redirects`] of them (5 by default); every hop is a new
//! request the host checks against the allow-list, so a redirect never
//! leads anywhere the step may not go. A 303, and a 301 or 302 answering a
//! `POST`, continue as a `GET` without the body, as browsers do; an
//! `Authorization` header the task set is dropped when a redirect leaves
//! the origin.
//!
//! This is a thin blocking layer over the `wasip2` crate's generated
//! bindings (the Bytecode Alliance's): wasi:http clients such as `wstd`
//! are async and bring a runtime a one-request-at-a-time task does not
//! need.

mod error;
mod wire;

use std::io::Read;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::HttpError;
pub use http::Method;

/// The most bytes of an error response's body kept in [`HttpError::Status`].
const STATUS_BODY_SHOWN: usize = 512;

/// A request being built; [`Request::send`] sends it.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    max_redirects: u32,
}

/// A `GET` request to `url`.
pub fn get(url: impl Into<String>) -> Request {
    Request::new(Method::GET, url)
}

/// A `POST` request to `url`.
pub fn post(url: impl Into<String>) -> Request {
    Request::new(Method::POST, url)
}

/// A `PUT` request to `url`.
pub fn put(url: impl Into<String>) -> Request {
    Request::new(Method::PUT, url)
}

/// A `DELETE` request to `url`.
pub fn delete(url: impl Into<String>) -> Request {
    Request::new(Method::DELETE, url)
}

/// `GET`s `url` and decodes its JSON answer; an error status is an error.
pub fn get_json<T: DeserializeOwned>(url: impl Into<String>) -> Result<T, HttpError> {
    get(url).send()?.error_for_status()?.json()
}

/// `POST`s `body` as JSON to `url` and decodes the JSON answer; an error
/// status is an error.
pub fn post_json<B: Serialize, T: DeserializeOwned>(url: impl Into<String>, body: &B) -> Result<T, HttpError> {
    post(url).json(body)?.send()?.error_for_status()?.json()
}

impl Request {
    /// A request with `method` to `url` (`http://` or `https://`).
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            max_redirects: 5,
        }
    }

    /// Adds a header (a repeated name adds another value).
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets `value`, encoded as JSON, as the body, with its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Request, HttpError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| HttpError::Failed(format!("the request body cannot be encoded as JSON: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Waits at most this long to connect, for the answer, and between two
    /// chunks of its body. The step's `http.limits` still cap it, and the
    /// attempt's deadline covers every request.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Follows at most `n` redirects (0: none, the 3xx is the response).
    pub fn max_redirects(mut self, n: u32) -> Request {
        self.max_redirects = n;
        self
    }

    /// Sends the request, following redirects, and returns the response
    /// once its head is in; its body is read from [`Response`].
    pub fn send(mut self) -> Result<Response, HttpError> {
        let mut uri = parse(&self.url)?;
        let mut hops = 0;
        loop {
            let url = shown(&uri);
            // A known length: the server need not read a chunked body to
            // answer, and the host checks that the body matches it.
            let mut headers = self.headers.clone();
            if !self.body.is_empty() || matches!(self.method, Method::POST | Method::PUT | Method::PATCH) {
                headers.retain(|(name, _)| name != "content-length");
                headers.push(("content-length".into(), self.body.len().to_string().into_bytes()));
            }
            let outgoing = wire::Outgoing {
                method: &self.method,
                uri: &uri,
                headers: &headers,
                body: &self.body,
                timeout: self.timeout,
            };
            let incoming = wire::send(outgoing, &url)?;
            let response = Response {
                status: incoming.status,
                headers: incoming.headers,
                body: incoming.body,
                url,
            };
            let Some(location) = redirect(&response) else {
                return Ok(response);
            };
            if hops == self.max_redirects {
                if self.max_redirects == 0 {
                    return Ok(response);
                }
                return Err(HttpError::TooManyRedirects(self.max_redirects));
            }
            hops += 1;
            let next = resolve(&uri, &location)?;
            if next.authority() != uri.authority() || next.scheme() != uri.scheme() {
                self.headers.retain(|(name, _)| name != "authorization");
            }
            let downgrade =
                response.status == 303 || (matches!(response.status, 301 | 302) && self.method == Method::POST);
            if downgrade && self.method != Method::HEAD {
                self.method = Method::GET;
                self.body.clear();
                self.headers
                    .retain(|(name, _)| name != "content-type" && name != "content-length");
            }
            uri = next;
        }
    }
}

/// A response; its body streams in as it is read.
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: wire::BodyStream,
    url: String,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The URL that answered (after redirects), without its query string.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The first value of the header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Every header, names in lower case.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// Fails with [`HttpError::Status`] on a 4xx or 5xx status.
    pub fn error_for_status(mut self) -> Result<Response, HttpError> {
        if self.status < 400 {
            return Ok(self);
        }
        let mut shown = Vec::new();
        while shown.len() < STATUS_BODY_SHOWN {
            match self.body.next_chunk() {
                Ok(Some(chunk)) => shown.extend_from_slice(&chunk),
                _ => break,
            }
        }
        shown.truncate(STATUS_BODY_SHOWN);
        Err(HttpError::Status {
            status: self.status,
            body: String::from_utf8_lossy(&shown).into_owned(),
        })
    }

    /// The next chunk of the body as it arrives; `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        self.body.next_chunk()
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, HttpError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.body.next_chunk()? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The whole body as text (invalid UTF-8 replaced).
    pub fn text(self) -> Result<String, HttpError> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }

    /// The whole body decoded from JSON.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, HttpError> {
        let url = self.url.clone();
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes)
            .map_err(|e| HttpError::Failed(format!("the answer of {url} is not the JSON expected: {e}")))
    }

    /// The body as a [`std::io::Read`], for streaming it.
    pub fn reader(self) -> impl Read {
        BodyReader {
            response: self,
            pending: Vec::new(),
            at: 0,
        }
    }
}

struct BodyReader {
    response: Response,
    pending: Vec<u8>,
    at: usize,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.pending.len() {
            match self.response.body.next_chunk().map_err(std::io::Error::other)? {
                Some(chunk) => (self.pending, self.at) = (chunk, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Where a redirect response points, if it is one.
fn redirect(response: &Response) -> Option<String> {
    match response.status {
        301 | 302 | 303 | 307 | 308 => response.header("location").map(str::to_string),
        _ => None,
    }
}

fn parse(url: &str) -> Result<http::Uri, HttpError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| HttpError::InvalidUrl(format!("{url:?} is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(HttpError::InvalidUrl(format!(
            "{url:?} is not an absolute http:// or https:// URL"
        ))),
    }
}

/// `location` (absolute, scheme-relative, absolute path or relative path)
/// against the URL that answered.
fn resolve(base: &http::Uri, location: &str) -> Result<http::Uri, HttpError> {
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map_or("", |a| a.as_str());
    let absolute = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let directory = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{directory}{location}")
    };
    parse(&absolute)
}

/// The URL without its query string, for messages.
fn shown(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    )
}
