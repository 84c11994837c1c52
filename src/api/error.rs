//! The one error type of the HTTP API and its one JSON shape:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.
//!
//! Every [`ErrorCode`] has exactly one status, so a code says everything a
//! client needs to branch on. A 4xx keeps its message for the client and,
//! where a field was at fault, names it in `details`; a 5xx tells the
//! client only that something failed and logs the cause in full.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::spec::SpecError;
use crate::store::StoreError;

/// Every error code the API answers. Each has one HTTP status
/// ([`ErrorCode::status`]); the OpenAPI document lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: the JSON body has a wrong, missing or unknown field.
    InvalidBody,
    /// 400: a workflow document that is not UTF-8.
    MalformedDocument,
    /// 400: the body could not be read.
    UnreadableBody,
    /// 400: a tenant, module, version or workflow name breaks the rules.
    InvalidName,
    /// 400: a path segment that is not what the route takes (a run id
    /// that is not a number).
    InvalidPath,
    /// 400: a query parameter breaks its declared format or bounds.
    InvalidQuery,
    /// 400: a header breaks its declared format.
    InvalidHeader,
    /// 400: quotas that are not numbers in their range.
    InvalidQuotas,
    /// 400: an `Idempotency-Key` that is not 1 to 255 printable ASCII
    /// characters.
    InvalidIdempotencyKey,
    /// 401: no token, or a token that is not valid here.
    Unauthorized,
    /// 403: the key's tenant is disabled.
    TenantDisabled,
    /// 403: the key's role lacks the permission the operation needs (the
    /// message names both).
    PermissionDenied,
    /// 404: no such resource (another tenant's is not found either).
    NotFound,
    /// 405: the path exists, the method does not (`Allow` lists those
    /// that do).
    MethodNotAllowed,
    /// 409: a module version exists with other bytes.
    VersionExists,
    /// 409: an unfinished run uses the module.
    ModuleInUse,
    /// 409: the tenant name is taken.
    TenantExists,
    /// 409: the run has ended.
    NotRunning,
    /// 409: the run cannot be retried.
    CannotRetry,
    /// 409: the run cannot be reset from that step.
    CannotReset,
    /// 409: the approval is not waiting for a decision: not reached yet,
    /// or decided already.
    ApprovalRefused,
    /// 403: the caller is not one of the people who may decide the
    /// approval.
    NotADecider,
    /// 409: the run does not take this signal now: the steps that wait
    /// for it are done, or it has taken the most signals a run may.
    SignalRefused,
    /// 413: the body is larger than the server accepts.
    BodyTooLarge,
    /// 415: a body of a media type the operation does not take.
    UnsupportedMediaType,
    /// 422: the bytes are not a valid task component.
    InvalidModule,
    /// 422: the workflow document is invalid (`details`: every problem).
    InvalidWorkflow,
    /// 422: the document's `name` is not the one in the path.
    NameMismatch,
    /// 422: a step names a module the tenant has not uploaded.
    UnknownModule,
    /// 422: the input fails the workflow's `input_schema` (`details`:
    /// every problem).
    InvalidInput,
    /// 422: no step of the run's workflow waits for a signal of that name.
    UnknownSignal,
    /// 422: a schedule whose cron expression, time zone, grace or
    /// workflow does not hold (`details`: the field at fault).
    InvalidSchedule,
    /// 422: a hook whose workflow, secret name or input mapping does not
    /// hold (`details`: the field at fault).
    InvalidHook,
    /// 429: over one of the tenant's quotas (`Retry-After` when waiting
    /// helps).
    QuotaExceeded,
    /// 500: the server failed; the cause is in its log.
    Internal,
    /// 503: the server is stopping.
    Unavailable,
}

impl ErrorCode {
    /// The one status this code is answered with.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            MalformedJson
            | InvalidBody
            | MalformedDocument
            | UnreadableBody
            | InvalidName
            | InvalidPath
            | InvalidQuery
            | InvalidHeader
            | InvalidQuotas
            | InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            TenantDisabled | PermissionDenied | NotADecider => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            VersionExists | ModuleInUse | TenantExists | NotRunning | CannotRetry | CannotReset | SignalRefused
            | ApprovalRefused => StatusCode::CONFLICT,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidModule | InvalidWorkflow | NameMismatch | UnknownModule | InvalidInput | UnknownSignal
            | InvalidSchedule | InvalidHook => StatusCode::UNPROCESSABLE_ENTITY,
            QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// A stable, machine-readable code; it fixes the status.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Each problem where there were several, or the field at fault.
    pub details: Vec<Problem>,
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
    /// A stable code; each code has one HTTP status.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The fields at fault, or every problem of a document or an input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub details: Vec<Problem>,
}

/// One problem with a request: where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// What is at fault: a parameter or header (`limit`, `Last-Event-ID`),
    /// a body field (`input.priority`), a place in a workflow document
    /// (`steps[2].needs[0]`) or in a run's input (`input.items[0]`). Empty
    /// for the whole.
    pub path: String,
    /// 1-based line in the document, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, minimum = 1)]
    pub line: Option<usize>,
    /// 1-based column in the document, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, minimum = 1)]
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl From<&SpecError> for Problem {
    fn from(e: &SpecError) -> Problem {
        Problem {
            path: e.path.clone(),
            line: e.line,
            column: e.column,
            message: e.message.clone(),
        }
    }
}

impl ApiError {
    /// An error with a code (which fixes the status) and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// A request part that breaks its declared rules: `code` with the
    /// message, and `field` named in `details`.
    pub fn invalid(code: ErrorCode, field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(code, message.clone()).with_details(vec![Problem::at(field, message)])
    }

    /// 404: the same for a missing resource and another tenant's.
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 429 `quota_exceeded` with the reason.
    pub fn quota(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::QuotaExceeded, message)
    }

    /// 500: the cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(ErrorCode::Internal, "internal error; see the server log")
    }

    /// 503: the server is stopping.
    pub fn unavailable() -> ApiError {
        ApiError::new(ErrorCode::Unavailable, "the server is stopping")
    }

    /// With the problems found.
    pub fn with_details(mut self, details: Vec<Problem>) -> ApiError {
        self.details = details;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Closed => ApiError::unavailable(),
            StoreError::Unavailable(why) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    ErrorCode::Unavailable,
                    format!("the store cannot be reached; try again shortly ({why})"),
                )
            },
            StoreError::Fenced(why) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    ErrorCode::Unavailable,
                    format!("the run moved to another node meanwhile; try again ({why})"),
                )
            },
            e => ApiError::internal(e),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        use ErrorCode::*;
        match e {
            EngineError::InvalidWorkflow(errors) => {
                let details = errors.0.iter().map(Problem::from).collect();
                ApiError::new(InvalidWorkflow, format!("the workflow is invalid:\n{errors}")).with_details(details)
            }
            e @ EngineError::NameMismatch { .. } => ApiError::new(NameMismatch, e.to_string()),
            EngineError::UnknownWorkflow(name) => ApiError::not_found(format!("workflow {name:?}")),
            e @ EngineError::UnknownModule { .. } => ApiError::new(UnknownModule, e.to_string()),
            EngineError::InvalidInput(problems) => ApiError::new(
                InvalidInput,
                format!("the input does not match the workflow's input_schema:\n{problems}"),
            )
            .with_details(problems.0.iter().map(Problem::from).collect()),
            EngineError::NotRunning(run) => ApiError::new(NotRunning, format!("run {run} is not running")),
            EngineError::UnknownRun(run) => ApiError::not_found(format!("run {run}")),
            e @ EngineError::CannotRetry { .. } => ApiError::new(CannotRetry, e.to_string()),
            e @ EngineError::CannotReset { .. } => ApiError::new(CannotReset, e.to_string()),
            e @ EngineError::UnknownSignal { .. } => ApiError::new(UnknownSignal, e.to_string()),
            e @ EngineError::SignalRefused { .. } => ApiError::new(SignalRefused, e.to_string()),
            e @ EngineError::UnknownApproval { .. } => ApiError::new(NotFound, e.to_string()),
            e @ EngineError::ApprovalRefused { .. } => ApiError::new(ApprovalRefused, e.to_string()),
            e @ EngineError::NotADecider { .. } => ApiError::new(NotADecider, e.to_string()),
            EngineError::QuotaExceeded(reason) => ApiError::quota(reason),
            EngineError::Store(e) => e.into(),
            EngineError::Stopped => ApiError::unavailable(),
        }
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
