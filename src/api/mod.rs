//! Read API over HTTP (`bucket api`): artifacts, their history and decisions, decision receipts
//! per intent, per-product usage, for people and tools that should not need Kafka. Every data
//! endpoint needs a bearer token scoped to one product; another product's paths answer 404, as
//! if they did not exist. Every request passes per-token and per-address limits (429 with
//! `Retry-After`) and bounded sizes and times (docs/api.md, "Limits"). The OpenAPI document is
//! `docs/openapi.json`, compiled in and served at `/openapi.json`.

pub mod auth;
pub mod config;
pub mod content;
pub mod error;
pub mod guard;
pub mod handlers;
pub mod limits;
pub mod metrics;
pub mod read;
pub mod receipts;
pub mod server;
pub mod tlog;
pub mod versions;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use auth::TokenLimits;
pub use auth::{Principal, Tokens, TokensError, hash_token};
pub use config::{ApiConfig, ServerLimits};
pub use read::{Reader, StorageReadError};
pub use server::serve;
pub use versions::VersionReads;

/// The OpenAPI 3 document kept in the repo.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    /// Database reader: decisions, receipts and usage (PostgreSQL only).
    pub reader: Reader,
    /// Where artifact versions are read from: `reader` unless another backend is set.
    pub versions: Arc<dyn VersionReads>,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
    /// The tiles directory of `bucket audit tiles`, when the transparency log is served.
    pub tlog: Option<std::path::PathBuf>,
    /// Server-wide bounds (page sizes, timeouts, sizes).
    pub server: Arc<ServerLimits>,
    /// The rate and concurrency limiters.
    pub limits: Arc<limits::Limiters>,
    /// Refusals and limiter sizes, served at `/metrics`.
    pub metrics: metrics::ApiMetrics,
    /// Bearer token `/metrics` requires; without one only loopback clients may read it.
    pub metrics_token: Option<Arc<str>>,
    /// The object store content is streamed from, when versions keep it there.
    pub objects: Option<crate::sink::store::ContentObjects>,
}

impl ApiState {
    /// The state of an API serving `config` from `reader`.
    pub fn new(reader: Reader, config: ApiConfig, tlog: Option<std::path::PathBuf>) -> ApiState {
        let limits = limits::Limiters::new(&config.tokens, &config.server);
        ApiState {
            versions: Arc::new(reader.clone()),
            reader,
            tokens: Arc::new(config.tokens),
            tlog,
            server: Arc::new(config.server),
            limits: Arc::new(limits),
            metrics: metrics::ApiMetrics::default(),
            metrics_token: None,
            objects: None,
        }
    }
}

/// Why the API could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApiServeError {
    /// Tokens file unusable.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The database is unreachable or not migrated.
    #[error("database: {0}")]
    Database(#[from] StorageReadError),
    /// Binding or serving failed.
    #[error("http: {0}")]
    Io(#[from] std::io::Error),
}

/// The router with every endpoint and the request bounds: body size (413), the limits (429),
/// the request timeout (503).
pub fn router(state: ApiState) -> Router {
    use handlers::*;
    let artifact = "/v1/products/{product}/artifacts/{artifact}";
    let timeout = state.server.request_timeout;
    let max_body = state.server.max_body_bytes;
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/v1/products/{product}/usage", get(usage))
        .route(artifact, get(latest))
        .route(&format!("{artifact}/content"), get(latest_content))
        .route(&format!("{artifact}/versions"), get(history))
        .route(&format!("{artifact}/versions/{{version}}"), get(version))
        .route(
            &format!("{artifact}/versions/{{version}}/content"),
            get(version_content),
        )
        .route(&format!("{artifact}/decisions"), get(decisions))
        .route(
            &format!("{artifact}/versions/{{version}}/proof"),
            get(tlog::version_proof),
        )
        .route("/v1/products/{product}/decisions", get(receipts::list))
        .route(
            "/v1/products/{product}/decisions/{intent_id}",
            get(receipts::one),
        )
        .route(
            "/v1/products/{product}/decisions/{intent_id}/proof",
            get(tlog::intent_proof),
        )
        .route("/v1/audit/tlog", get(tlog::partitions))
        .route(
            "/v1/audit/tlog/{partition}/checkpoint",
            get(tlog::checkpoint),
        )
        .route("/v1/audit/tlog/{partition}/tile/{*path}", get(tlog::tile))
        .fallback(fallback)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(RequestBodyLimitLayer::new(max_body))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn openapi_document_is_json_with_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI_JSON).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/v1/products/{product}/usage",
            "/v1/products/{product}/artifacts/{artifact}",
            "/v1/products/{product}/artifacts/{artifact}/content",
            "/v1/products/{product}/artifacts/{artifact}/versions",
            "/v1/products/{product}/artifacts/{artifact}/versions/{version}",
            "/v1/products/{product}/artifacts/{artifact}/versions/{version}/content",
            "/v1/products/{product}/artifacts/{artifact}/decisions",
            "/v1/products/{product}/artifacts/{artifact}/versions/{version}/proof",
            "/v1/products/{product}/decisions",
            "/v1/products/{product}/decisions/{intent_id}",
            "/v1/products/{product}/decisions/{intent_id}/proof",
            "/v1/audit/tlog",
            "/v1/audit/tlog/{partition}/checkpoint",
            "/v1/audit/tlog/{partition}/tile/{tile}",
        ] {
            assert!(paths.contains_key(p), "{p} missing from docs/openapi.json");
        }
        // Every /v1 operation documents the 429 of the limits.
        for (path, item) in paths {
            if path.starts_with("/v1/") {
                assert!(
                    item["get"]["responses"].get("429").is_some(),
                    "{path}: no 429 in docs/openapi.json"
                );
            }
        }
    }
}
