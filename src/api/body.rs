//! Request bodies: size caps, content types and JSON, each failure turned
//! into the API's error shape instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// The media type of a request, lower-cased, without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// 415 naming what was sent and what is accepted.
pub fn unsupported(headers: &HeaderMap, accepted: &[&str]) -> ApiError {
    let sent = content_type(headers).unwrap_or_else(|| "no Content-Type".into());
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{sent} is not accepted here; send one of: {}", accepted.join(", ")),
    )
}

/// The body, or the reason it could not be read (413 when over the cap).
pub fn bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server accepts",
            )
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })
}

/// A JSON body (`Content-Type: application/json`); an empty body reads as
/// `{}` so optional fields can all be left out.
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = bytes(body)?;
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        match content_type(headers).as_deref() {
            Some("application/json") => &body,
            _ => return Err(unsupported(headers, &["application/json"])),
        }
    };
    serde_json::from_slice(text).map_err(|e| {
        let code = if e.is_data() { "invalid_body" } else { "malformed_json" };
        ApiError::bad_request(code, format!("the body is not valid: {e}"))
    })
}
