//! The one error type of the HTTP API and its one JSON shape:
//! `{"error": {"code": "...", "message": "...", ...}}`.
//!
//! A 4xx keeps its message for the client; a 5xx tells the client only
//! that something failed and logs the cause in full.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::db::DbError;
use crate::engine::EngineError;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `quota_exceeded`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// More structure where it helps (e.g. every problem of a document).
    pub details: Option<Value>,
    /// For 429: how long to wait, in seconds.
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `not_found`, `invalid_workflow`, `quota_exceeded`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Structured detail, e.g. the list of problems in a document.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: the same for a missing resource and another tenant's.
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 with `code`.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429 `quota_exceeded` with the reason.
    pub fn quota(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
    }

    /// 500: the cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// With structured detail.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::Closed => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is stopping"),
            e => ApiError::internal(e),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::InvalidWorkflow(errors) => {
                let details = serde_json::to_value(&errors.0).unwrap_or_default();
                ApiError::unprocessable("invalid_workflow", format!("the workflow is invalid:\n{errors}"))
                    .with_details(details)
            }
            e @ EngineError::NameMismatch { .. } => ApiError::unprocessable("name_mismatch", e.to_string()),
            EngineError::UnknownWorkflow(name) => ApiError::not_found(format!("workflow {name:?}")),
            e @ EngineError::UnknownModule { .. } => ApiError::unprocessable("unknown_module", e.to_string()),
            EngineError::InvalidInput(problems) => ApiError::unprocessable(
                "invalid_input",
                format!(
                    "the input does not match the workflow's input_schema: {}",
                    problems.join("; ")
                ),
            )
            .with_details(Value::from(problems)),
            EngineError::NotRunning(run) => ApiError::conflict("not_running", format!("run {run} is not running")),
            EngineError::UnknownRun(run) => ApiError::not_found(format!("run {run}")),
            e @ EngineError::CannotRetry { .. } => ApiError::conflict("cannot_retry", e.to_string()),
            EngineError::QuotaExceeded(reason) => ApiError::quota(reason),
            EngineError::Db(e) => e.into(),
            EngineError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is stopping")
            }
        }
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
