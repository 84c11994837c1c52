//! Why an outbound request did not give the task a response it can use,
//! and the [`TaskError`] each kind of failure becomes.

use std::fmt;

use wasip2::http::types::ErrorCode;

use crate::TaskError;

/// Why a request failed.
///
/// The host refuses requests the step was not given (`Refused`) and cuts
/// off requests that use up the step's caps (`Limit`); both say why in the
/// attempt's log, where the task author can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed, or is not `http`/`https`.
    InvalidUrl(String),
    /// The host would not send it: not on the step's `http.allow` list, or
    /// to an address that is not allowed (loopback, private, link-local).
    Refused(String),
    /// A cap of the step was reached: requests, bytes sent or received.
    Limit(String),
    /// No connection, answer or body bytes came in time.
    Timeout(String),
    /// More redirects than the request follows.
    TooManyRedirects(u32),
    /// Anything else on the way: connection refused or reset, TLS, DNS,
    /// a malformed answer.
    Failed(String),
    /// The server answered with an error status
    /// ([`super::Response::error_for_status`]).
    Status {
        /// The status code, 400 to 599.
        status: u16,
        /// The start of the response body, for the error message.
        body: String,
    },
}

impl HttpError {
    /// The error for a `wasi:http` error code, for a request to `url`.
    pub(super) fn from_code(code: &ErrorCode, url: &str) -> HttpError {
        use ErrorCode as C;
        let what = format!("{code:?}");
        let what = what.trim_start_matches("ErrorCode::");
        match code {
            C::HttpRequestDenied | C::DestinationIpProhibited => HttpError::Refused(format!(
                "the host refused the request to {url} ({what}); the attempt's log says why"
            )),
            C::HttpRequestBodySize(_) | C::HttpResponseBodySize(_) | C::ConnectionLimitReached => HttpError::Limit(
                format!("the request to {url} reached a cap of the step ({what}); the attempt's log says which"),
            ),
            C::DnsTimeout | C::ConnectionTimeout | C::ConnectionReadTimeout | C::HttpResponseTimeout => {
                HttpError::Timeout(format!("the request to {url} timed out ({what})"))
            }
            C::HttpRequestUriInvalid => HttpError::InvalidUrl(format!("{url} is not a valid request URL")),
            _ => HttpError::Failed(format!("the request to {url} failed: {what}")),
        }
    }

    /// Whether another attempt could succeed: timeouts, connection
    /// failures and 5xx or 429 answers; not refusals, caps or bad URLs.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Timeout(_) | HttpError::Failed(_) => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The stable code the error becomes as a [`TaskError`].
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::InvalidUrl(_) => "http_invalid_url",
            HttpError::Refused(_) => "http_refused",
            HttpError::Limit(_) => "http_limit",
            HttpError::Timeout(_) => "http_timeout",
            HttpError::TooManyRedirects(_) => "http_too_many_redirects",
            HttpError::Failed(_) => "http_failed",
            HttpError::Status { .. } => "http_status",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidUrl(why)
            | HttpError::Refused(why)
            | HttpError::Limit(why)
            | HttpError::Timeout(why)
            | HttpError::Failed(why) => f.write_str(why),
            HttpError::TooManyRedirects(n) => write!(f, "more than {n} redirects"),
            HttpError::Status { status, body } if body.is_empty() => write!(f, "the server answered {status}"),
            HttpError::Status { status, body } => write!(f, "the server answered {status}: {body}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for TaskError {
    fn from(e: HttpError) -> Self {
        let code = e.code();
        match e.is_retryable() {
            true => TaskError::retryable(code, e.to_string()),
            false => TaskError::new(code, e.to_string()),
        }
    }
}
