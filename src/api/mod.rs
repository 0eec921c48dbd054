//! Read API over HTTP (`bucket api`): artifacts, their history and decisions, per-product
//! usage, for people and tools that should not need Kafka. Every data endpoint needs a bearer
//! token scoped to one product; another product's paths answer 404, as if they did not exist.
//! The OpenAPI document is `docs/openapi.json`, compiled in and served at `/openapi.json`.

pub mod auth;
pub mod handlers;
pub mod read;
pub mod tlog;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use auth::{Principal, Tokens, TokensError, hash_token};
pub use read::{ReadError, Reader};

/// The OpenAPI 3 document kept in the repo.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    /// Database reader.
    pub reader: Reader,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
    /// The tiles directory of `bucket audit tiles`, when the transparency log is served.
    pub tlog: Option<std::path::PathBuf>,
}

/// Why the API could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApiServeError {
    /// Tokens file unusable.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The database is unreachable or not migrated.
    #[error("database: {0}")]
    Database(#[from] ReadError),
    /// Binding or serving failed.
    #[error("http: {0}")]
    Io(#[from] std::io::Error),
}

/// The router with every endpoint.
pub fn router(state: ApiState) -> Router {
    use handlers::*;
    let artifact = "/v1/products/{product}/artifacts/{artifact}";
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
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
        .with_state(state)
}

/// Serves on `listen` until `shutdown` is cancelled; `ready` receives the bound address.
pub async fn serve(
    listen: SocketAddr,
    state: ApiState,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ApiServeError> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tokens = state.tokens.len(), "read API listening");
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("read API stopped");
    Ok(())
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
            "/v1/products/{product}/decisions/{intent_id}/proof",
            "/v1/audit/tlog",
            "/v1/audit/tlog/{partition}/checkpoint",
            "/v1/audit/tlog/{partition}/tile/{tile}",
        ] {
            assert!(paths.contains_key(p), "{p} missing from docs/openapi.json");
        }
    }
}
