//! An API failure as the client sees it: its HTTP status, a JSON body with a stable error code,
//! and the headers some statuses carry (`WWW-Authenticate`, `Content-Range`, `Retry-After`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::limits::Throttled;
use super::read::StorageReadError;

/// An API failure and its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Nothing there, or not the token's product (indistinguishable on purpose).
    #[error("{0}")]
    NotFound(String),
    /// The version is a tombstone: there is no content.
    #[error("{0}")]
    Gone(String),
    /// A query parameter is out of range or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Not available yet (a decision no published checkpoint covers); ask again later.
    #[error("{0}")]
    NotYet(String),
    /// The requested byte range is outside the content of this many bytes: 416.
    #[error("range not satisfiable: the content has {0} bytes")]
    RangeNotSatisfiable(u64),
    /// Over a limit: 429 with `Retry-After`.
    #[error("over the {} limit; retry after {} s", .0.kind.as_str(), retry_after_secs(.0))]
    Throttled(Throttled),
    /// The database is unavailable.
    #[error("storage unavailable")]
    Unavailable(#[from] StorageReadError),
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Gone(_) => (StatusCode::GONE, "deleted"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotYet(_) => (StatusCode::CONFLICT, "not_checkpointed"),
            ApiError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            ApiError::RangeNotSatisfiable(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "api read failed");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        let body = Json(ErrorBody {
            error: code,
            message: self.to_string(),
        });
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bucket\""),
            );
        }
        if let ApiError::RangeNotSatisfiable(size) = &self
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        if let ApiError::Throttled(t) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(t)));
        }
        response
    }
}

/// Whole seconds to wait (at least 1): the `Retry-After` value.
fn retry_after_secs(t: &Throttled) -> u64 {
    t.retry_after.as_secs_f64().ceil().max(1.0) as u64
}
