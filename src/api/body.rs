//! Request bodies: size caps, content types and JSON, each failure turned
//! into the API's error shape instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult, ErrorCode};

/// The media type of a request, lower-cased, without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// 415 naming what was sent and what is accepted.
pub fn unsupported(headers: &HeaderMap, accepted: &[&str]) -> ApiError {
    let sent = content_type(headers).unwrap_or_else(|| "no Content-Type".into());
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!("{sent} is not accepted here; send one of: {}", accepted.join(", ")),
    )
}

/// The body, or the reason it could not be read (413 when over the cap).
pub fn bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::BodyTooLarge,
                "the request body is larger than the server accepts",
            )
        } else {
            ApiError::new(ErrorCode::UnreadableBody, rejection.body_text())
        }
    })
}

/// A JSON body (`Content-Type: application/json`); an empty body reads as
/// `{}` so optional fields can all be left out. A field that breaks the
/// body's schema is named in the error.
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
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = super::params::field(e.path());
        let e = e.into_inner();
        if e.is_data() {
            ApiError::invalid(ErrorCode::InvalidBody, &field, format!("the body is not valid: {e}"))
        } else {
            malformed(e)
        }
    })?;
    deserializer.end().map_err(malformed)?;
    Ok(value)
}

fn malformed(e: serde_json::Error) -> ApiError {
    ApiError::new(ErrorCode::MalformedJson, format!("the body is not JSON: {e}"))
}

/// The schema of a body of raw bytes (a component upload).
pub struct Binary;

schema!(
    Binary,
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
            utoipa::openapi::schema::KnownFormat::Binary
        )))
        .build()
);

/// An integer type of a request field, and the largest value the document
/// declares for it. `u64` fields are declared `format: int64`, so they
/// stop at `i64::MAX`; `u32` fields are declared `int64` with a
/// `maximum` of `u32::MAX` (`int32` would stop them at `i32::MAX`).
pub trait Integer: TryFrom<i128> {
    /// The declared maximum.
    const MAX: i128;
}

impl Integer for i32 {
    const MAX: i128 = i32::MAX as i128;
}

impl Integer for u32 {
    const MAX: i128 = u32::MAX as i128;
}

impl Integer for u64 {
    const MAX: i128 = i64::MAX as i128;
}

/// Reads an integer field the way JSON Schema reads the `type: integer`
/// the document declares: `5` and `5.0` alike; a fraction, or a value out
/// of the declared range, is refused.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Integer,
{
    whole(serde_json::Number::deserialize(deserializer)?)
}

/// [`integer`] for a field that may be left out or `null` (with
/// `#[serde(default)]`).
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Integer,
{
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(whole)
        .transpose()
}

fn whole<E: serde::de::Error, T: Integer>(number: serde_json::Number) -> Result<T, E> {
    let whole = match (number.as_i64(), number.as_u64(), number.as_f64()) {
        (Some(i), _, _) => Some(i128::from(i)),
        (_, Some(u), _) => Some(i128::from(u)),
        // Whole floats beyond i64 are out of every field's range anyway.
        (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.3e18 => Some(f as i128),
        _ => None,
    };
    let whole = whole.ok_or_else(|| E::custom(format!("{number} is not a whole number")))?;
    if whole > T::MAX {
        return Err(E::custom(format!("{number} is over the maximum of {}", T::MAX)));
    }
    T::try_from(whole).map_err(|_| E::custom(format!("{number} is out of range")))
}
