//! Bearer-token check of the admin endpoints: constant-time comparison of SHA-256 digests, so
//! neither the token's content nor its length leaks through timing.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AdminState;

/// The admin token, kept as its digest.
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// Wraps a resolved token.
    pub fn new(token: &str) -> Token {
        Token {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// True when an `Authorization` header value is `Bearer <this token>`.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        digest[..].ct_eq(&self.digest[..]).into()
    }
}

/// Middleware: refuses with 401 unless the token (when one is configured) is presented.
pub async fn require(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token.accepts(given) {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": "unauthorized",
                    "message": "missing or invalid bearer token"
                })),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bucket-admin\""),
            );
            return r;
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let t = Token::new("abc123");
        assert!(t.accepts(Some("Bearer abc123")));
        assert!(!t.accepts(Some("Bearer abc124")));
        assert!(!t.accepts(Some("Bearer abc1234")));
        assert!(!t.accepts(Some("abc123")));
        assert!(!t.accepts(Some("Basic abc123")));
        assert!(!t.accepts(None));
    }
}
