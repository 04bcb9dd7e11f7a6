//! The service's error type and its JSON rendering.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferro_wire::{ErrorBody, ErrorCode, ErrorDetail, ErrorItem};

/// Every way a request can fail. Client errors carry a stable [`ErrorCode`] and a message that
/// says what to do; server errors are logged in full and answered with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error (4xx).
    #[error("{code}: {message}")]
    Client {
        /// Stable code.
        code: ErrorCode,
        /// What to do (never secrets).
        message: String,
        /// Seconds for `Retry-After` (429).
        retry_after: Option<u64>,
    },
    /// A client error of a bulk request, with the failed items (index, ID, code, message).
    #[error("{code}: {message} ({} items)", items.len())]
    Items {
        /// Stable code of the whole request.
        code: ErrorCode,
        /// What to do.
        message: String,
        /// Each failed item.
        items: Vec<ErrorItem>,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database failed outside sqlx (the SQLite read path of `Db::read_optional` and
    /// `Db::read_all`), or a read was malformed.
    #[error("{0}")]
    Db(crate::db::DbError),
    /// Any other server-side failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<crate::db::DbError> for ApiError {
    /// sqlx's errors keep their variant ([`ApiError::Database`]: unique violations, pool
    /// timeouts), so both read paths answer alike.
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Sqlx(e) => ApiError::Database(e),
            other => ApiError::Db(other),
        }
    }
}

impl From<crate::datastore::StoreError> for ApiError {
    /// A corrupt row is a server error (logged, answered generically); a value the database
    /// cannot hold is the request's fault.
    fn from(e: crate::datastore::StoreError) -> Self {
        use crate::datastore::StoreError;
        match e {
            StoreError::Db(e) => ApiError::from(e),
            StoreError::Corrupt(m) => ApiError::Internal(format!("corrupt row in database: {m}")),
            StoreError::Unrepresentable(m) => ApiError::invalid_body(m),
        }
    }
}

impl crate::datastore::StoreError {
    /// At the edge: a unique violation as a 409 with `message`, anything else as itself.
    pub fn on_unique(self, message: impl Into<String>) -> ApiError {
        ApiError::from(self).on_unique(message)
    }
}

/// Result of a handler or domain function.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A client error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Client {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 404 for an object of `kind` (e.g. "product"). The message never depends on whether the
    /// object exists in another tenant.
    pub fn not_found(kind: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("{kind} not found; check the ID, and that you hold a role in its tenant"),
        )
    }

    /// 403: the caller's role is too weak.
    pub fn forbidden(needed: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("this operation needs the {needed} role; ask a tenant Administrator"),
        )
    }

    /// 401: no or bad credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "missing, unknown, expired or revoked token; log in with POST /v1/auth/login and send \
             `Authorization: Bearer <token>`",
        )
    }

    /// 409 conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 422 for a name outside the allowed pattern.
    pub fn invalid_name(field: &str) -> Self {
        Self::new(
            ErrorCode::InvalidName,
            format!(
                "`{field}` must be 1 to 50 characters: letters, digits, spaces, `-` and `_`, \
                 not starting or ending with a space"
            ),
        )
    }

    /// 422 for a body that is well-formed but not acceptable.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidBody, message)
    }

    /// Whether this is a database unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, ApiError::Database(sqlx::Error::Database(e))
            if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }

    /// Turn a unique violation into a 409 with `message`; other errors pass through.
    pub fn on_unique(self, message: impl Into<String>) -> Self {
        if self.is_unique_violation() {
            ApiError::conflict(message)
        } else {
            self
        }
    }

    /// The code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Client { code, .. } | ApiError::Items { code, .. } => *code,
            ApiError::Database(e) if is_unavailable(e) => ErrorCode::Unavailable,
            ApiError::Db(e) if e.is_unavailable() => ErrorCode::Unavailable,
            ApiError::Database(_) | ApiError::Db(_) | ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

/// Render a code and message as the JSON error response.
pub fn error_response(code: ErrorCode, message: String) -> Response {
    error_response_with(code, message, Vec::new())
}

/// Render a code, message and per-item errors as the JSON error response.
pub fn error_response_with(code: ErrorCode, message: String, details: Vec<ErrorItem>) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            details,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client {
                code,
                message,
                retry_after,
            } => {
                let mut resp = error_response(code, message);
                if let Some(secs) = retry_after
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            ApiError::Items {
                code,
                message,
                items,
            } => error_response_with(code, message, items),
            ApiError::Database(e) if is_unavailable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                error_response(
                    ErrorCode::Unavailable,
                    "the database is unavailable; retry later".into(),
                )
            }
            ApiError::Db(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                error_response(
                    ErrorCode::Unavailable,
                    "the database is unavailable; retry later".into(),
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                error_response(
                    ErrorCode::Internal,
                    "internal error; report the x-request-id response header to the operator"
                        .into(),
                )
            }
        }
    }
}

/// One entry of an error's `details`: what was wrong with entry `index` of a request's list.
pub(crate) fn item(
    index: usize,
    id: Option<String>,
    code: &str,
    message: impl Into<String>,
) -> ErrorItem {
    ErrorItem {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        id,
        code: code.to_string(),
        message: message.into(),
    }
}
