//! Outbound HTTP for tasks (docs/architecture.md, "Outbound HTTP"):
//! `wasi:http/outgoing-handler`, refusing whatever the step was not given.
//!
//! - `pattern.rs`: allow-list entries and what they match;
//! - `guard.rs`: which addresses may be dialled (the SSRF defence);
//! - `send.rs`: the request itself, under the attempt's caps;
//! - `journal.rs`: what each request did, recorded with the attempt.

mod guard;
mod journal;
mod pattern;
mod send;

use std::time::Duration;

use http::{HeaderName, HeaderValue};

pub use guard::private_kind;
pub use journal::HttpCall;
pub(crate) use journal::Journal;
pub use pattern::{AllowList, Scheme, Target, UrlPattern, quota_entry_pattern};
pub(crate) use send::{HttpHooks, tls_config};

/// What one attempt's requests may use together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests, refused ones included.
    pub requests: u32,
    /// Request body bytes, all requests together.
    pub sent: u64,
    /// Response body bytes, all requests together.
    pub received: u64,
    /// To resolve the name and connect (TLS included).
    pub connect_timeout: Duration,
    /// From sending a request to its response's head, and the longest wait
    /// between two chunks of its body.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            requests: 100,
            sent: 10 << 20,
            received: 32 << 20,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Headers the host sets on requests to URLs a pattern matches, after the
/// guest's own (replacing them), so the guest never holds their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedHeaders {
    /// The requests they go on.
    pub on: UrlPattern,
    /// The headers, values marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Where one attempt may go and what it may use: nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    /// What it may request, and the private addresses it names.
    pub allow: AllowList,
    /// Headers to add.
    pub headers: Vec<InjectedHeaders>,
    /// Its caps.
    pub limits: HttpLimits,
}
