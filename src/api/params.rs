//! What a request carries besides its body: path segments, query strings
//! and headers, each read into a typed value or refused with a 400 that
//! names the parameter at fault.
//!
//! The types here are also what the OpenAPI document says of those
//! parameters: each bound, pattern and enum is declared once, on the type
//! that enforces it ([`Wait`], [`Limit`], [`Cursor`]), or beside the
//! check ([`Name`], [`IdempotencyKey`]).

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::error::{ApiError, ApiResult, ErrorCode};
use crate::tenant::{self, NAME_PATTERN};

/// Path parameters, refused with `invalid_path` naming the one at fault.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    _ => String::new(),
                };
                Err(ApiError::invalid(ErrorCode::InvalidPath, &field, e.body_text()))
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

/// Query parameters, refused with `invalid_query` naming the one at
/// fault (an unknown or repeated parameter is refused too).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            ApiError::invalid(
                ErrorCode::InvalidQuery,
                &field(e.path()),
                format!("query: {}", e.inner()),
            )
        })
    }
}

/// The field `serde_path_to_error` stopped at, as `details` names it
/// (empty for the whole, where it says `.`).
pub fn field(path: &serde_path_to_error::Path) -> String {
    let field = path.to_string();
    if field == "." { String::new() } else { field }
}

/// A name in a path or query (`field`) that must follow the naming rules:
/// 400 `invalid_name` naming the field.
pub fn check_name(what: &'static str, field: &str, name: &str) -> ApiResult<()> {
    tenant::check_name(what, name).map_err(|e| ApiError::invalid(ErrorCode::InvalidName, field, e.to_string()))
}

/// The schema of a tenant, module, version or workflow name, for
/// `value_type = Name` (names are strings, checked by [`check_name`]
/// where they arrive, so that the error says which name).
pub struct Name;

schema!(Name, name_schema());

/// [`Name`]'s schema, for `schema_with` on body fields.
pub fn name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NAME_PATTERN))
        .min_length(Some(1))
        .max_length(Some(64))
        .build()
}

/// The schema of `Idempotency-Key`: 1 to 255 printable ASCII characters,
/// as [`idempotency_key`] reads it.
pub struct IdempotencyKey;

schema!(
    IdempotencyKey,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[!-~]{1,255}$"))
        .build()
);

/// How long a start waits for its run: a whole number of `ms`, `s` or `m`.
/// Waits over [`Wait::MAX`] are cut to it; a client that wants longer
/// follows the run's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl Wait {
    /// The longest a start waits.
    pub const MAX: Duration = Duration::from_secs(300);
    const PATTERN: &str = "^[0-9]{1,9}(ms|s|m)$";

    fn parse(text: &str) -> Option<Wait> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        if !(1..=9).contains(&digits) {
            return None;
        }
        let number: u64 = number.parse().ok()?;
        let wait = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            _ => return None,
        };
        Some(Wait(wait.min(Wait::MAX)))
    }
}

schema!(
    Wait,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(Wait::PATTERN))
        .examples(["30s"])
        .build()
);

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Wait::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a wait: a whole number of ms, s or m, such as 30s"
            ))
        })
    }
}

/// How many items a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub usize);

impl Limit {
    const MIN: usize = 1;
    const MAX: usize = 500;
}

schema!(
    Limit,
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(Limit::MIN as f64))
        .maximum(Some(Limit::MAX as f64))
        .build()
);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match whole(&text).and_then(|n| usize::try_from(n).ok()) {
            Some(limit) if (Limit::MIN..=Limit::MAX).contains(&limit) => Ok(Limit(limit)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a page size: a whole number from {} to {}",
                Limit::MIN,
                Limit::MAX
            ))),
        }
    }
}

/// A whole number at least 0. `type: integer` takes `5.0` as well as `5`.
fn whole(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// A time in a query: milliseconds since the Unix epoch, as every time the
/// API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochMs(pub u64);

impl EpochMs {
    /// What a PostgreSQL `bigint` holds.
    const MAX: u64 = i64::MAX as u64;
}

schema!(
    EpochMs,
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0.0))
        .maximum(Some(EpochMs::MAX as f64))
        .build()
);

impl<'de> Deserialize<'de> for EpochMs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match whole(&text) {
            Some(ms) if ms <= EpochMs::MAX => Ok(EpochMs(ms)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a time: a whole number of milliseconds since the Unix epoch"
            ))),
        }
    }
}

/// Where the next page of runs starts: the `next_cursor` of the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub u64);

impl Cursor {
    /// At most 19 digits, so every cursor fits in 64 bits.
    const PATTERN: &str = "^[0-9]{1,19}$";
}

schema!(
    Cursor,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(Cursor::PATTERN))
        .build()
);

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.parse::<u64>() {
            Ok(cursor) if (1..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Cursor(cursor))
            }
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a cursor this server gave"
            ))),
        }
    }
}

/// The `Idempotency-Key` header: 1 to 255 printable ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    const HEADER: &str = "Idempotency-Key";
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid(
            ErrorCode::InvalidIdempotencyKey,
            HEADER,
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// The `Last-Event-ID` header: the `seq` of the last event a client has.
pub fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u32>> {
    const HEADER: &str = "Last-Event-ID";
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        // As declared: an `int32`, which every seq a run reaches is.
        .filter(|seq| *seq <= i32::MAX as u32)
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                ErrorCode::InvalidHeader,
                HEADER,
                "Last-Event-ID must be the seq of an event: a whole number from 0 to 2147483647",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_in_range() {
        let limit = |text: &str| serde_json::from_value::<Limit>(serde_json::json!(text)).ok();
        assert_eq!(limit("1"), Some(Limit(1)));
        assert_eq!(limit("500"), Some(Limit(500)));
        assert_eq!(limit("20.0"), Some(Limit(20)));
        for bad in ["0", "501", "-1", "1.5", "abc", "", "NaN", "inf"] {
            assert_eq!(limit(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn waits_are_whole_numbers_of_a_unit_and_cut_to_five_minutes() {
        assert_eq!(Wait::parse("30s"), Some(Wait(Duration::from_secs(30))));
        assert_eq!(Wait::parse("250ms"), Some(Wait(Duration::from_millis(250))));
        assert_eq!(Wait::parse("2m"), Some(Wait(Duration::from_secs(120))));
        assert_eq!(Wait::parse("999999999m"), Some(Wait(Wait::MAX)));
        for bad in ["", "s", "30", "1h", "1.5s", "-1s", "30 s", "1m30s", "0123456789s"] {
            assert_eq!(Wait::parse(bad), None, "{bad:?}");
        }
    }
}
