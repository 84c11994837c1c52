//! Secrets of the tenant, for a task that truly needs a value.
//!
//! Prefer the step's `http.headers`, which the host adds to requests
//! without the task seeing the value. A value read here is redacted from
//! the attempt's logs, output and errors, but the task can still send it
//! anywhere its step may reach.

use crate::__private::bindings::weft::task::secrets as wit;

/// The value of the secret `name`, if the step lists it in `secrets:`;
/// `None` otherwise (or when the tenant has no such secret, which fails
/// the attempt before the task runs).
pub fn get(name: &str) -> Option<String> {
    wit::get(name)
}
