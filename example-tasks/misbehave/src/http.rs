//! The HTTP ways to misbehave: each pushes one of the step's HTTP caps and
//! reports how far it got and how it was stopped.

use std::io::Read;
use std::time::Duration;

use serde_json::{Value, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use weft_sdk::TaskError;
use weft_sdk::http::{self, HttpError};

/// Requests `url` again and again until the host stops it.
pub fn flood(url: &str) -> Result<Value, TaskError> {
    let mut made = 0u64;
    loop {
        match http::get(url).send().and_then(|response| response.bytes()) {
            Ok(_) => made += 1,
            Err(e) => return Ok(json!({ "made": made, "error": e.code(), "message": e.to_string() })),
        }
    }
}

/// Uploads a body that never ends to `url` (`http://host:port/path`),
/// through the raw bindings since it has no length, until the host cuts it.
pub fn endless_upload(url: &str) -> Result<Value, TaskError> {
    let uri: ::http::Uri = url.parse().map_err(|_| TaskError::new("invalid_url", url.to_string()))?;
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(uri.authority().map(|a| a.as_str()));
    let _ = request.set_path_with_query(Some(uri.path()));
    let body = request.body().expect("the body is taken once");
    let future = outgoing_handler::handle(request, None)
        .map_err(|e| TaskError::new("refused", format!("{e:?}")))?;
    let stream = body.write().expect("the stream is taken once");
    let chunk = [0x55u8; 4096];
    let mut written = 0u64;
    while stream.blocking_write_and_flush(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
    let answer = loop {
        match future.get() {
            Some(answer) => break answer,
            None => future.subscribe().block(),
        }
    };
    let error = match answer {
        Ok(Ok(response)) => format!("answered {}", response.status()),
        Ok(Err(code)) => format!("{code:?}"),
        Err(()) => "no answer".to_string(),
    };
    Ok(json!({ "written": written, "error": error }))
}

/// Reads the answer of `url` to its end, keeping none of it.
pub fn drain(url: &str) -> Result<Value, TaskError> {
    let mut response = http::get(url).send()?;
    let mut read = 0u64;
    loop {
        match response.chunk() {
            Ok(Some(chunk)) => read += chunk.len() as u64,
            Ok(None) => return Ok(json!({ "read": read, "error": Value::Null })),
            Err(e) => return Ok(json!({ "read": read, "error": e.code(), "message": e.to_string() })),
        }
    }
}

/// Reads the answer of `url` a few bytes at a time, pausing between reads.
pub fn slow_reader(url: &str, pause_ms: u64) -> Result<Value, TaskError> {
    let mut body = http::get(url).send()?.reader();
    let mut buf = [0u8; 16];
    let mut read = 0u64;
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(json!({ "read": read })),
            Ok(n) => read += n as u64,
            Err(e) => {
                let code = e.get_ref().and_then(|e| e.downcast_ref::<HttpError>()).map(HttpError::code);
                return Ok(json!({ "read": read, "error": code }));
            }
        }
        std::thread::sleep(Duration::from_millis(pause_ms));
    }
}
