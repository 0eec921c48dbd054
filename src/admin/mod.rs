//! Admin HTTP server of `bucket gate` and `bucket sink`: liveness, readiness, Prometheus
//! metrics, the active policy, the threat catalogue and a live status page (docs/admin.md).
//!
//! # Layout
//! - [`config`]: `--admin-addr` / `--admin-token` parsing, secret references, the loopback rule.
//! - [`auth`]: the bearer-token check (constant time) in front of every endpoint but the probes.
//! - [`metrics`]: the Prometheus registry and the metric families, with their exact names.
//! - [`board`]: the bounded, `Mutex`-guarded snapshot behind `/status.json` and `/readyz`.
//! - [`gate_hooks`], [`sink_hooks`]: the handles the gate and sink loops call (one line each).
//! - [`probe`]: background checks off the hot path (registry, storage, sink lag).
//! - [`health`], [`policy`], [`threats`], [`status`]: one endpoint family per file.
//!
//! The gate's decision loop runs on a blocking thread; it shares state with the server through
//! an `Arc` (atomic metrics) and a small mutex (status snapshot), never through a channel that
//! could block a decision.

pub mod auth;
pub mod board;
pub mod config;
pub mod gate_hooks;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod sink_hooks;
pub mod status;
pub mod threats;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use config::{AdminConfig, AdminConfigError};
pub use gate_hooks::GateTelemetry;
pub use sink_hooks::{BatchOutcome, SinkTelemetry, StorageProbe};

/// Which process the server belongs to, and its live state.
#[derive(Clone)]
pub enum Role {
    /// `bucket gate`.
    Gate(GateTelemetry),
    /// `bucket sink`.
    Sink(SinkTelemetry),
}

/// Shared state of the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    /// Gate or sink.
    pub role: Role,
    /// Bearer token required by every endpoint except the probes and the static page (None:
    /// loopback only).
    pub token: Option<Arc<auth::Token>>,
}

/// Why the admin server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Binding or serving failed.
    #[error("admin http on {addr}: {source} (choose another --admin-addr, or \"off\")")]
    Io {
        /// Address asked for.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// The router with every admin endpoint.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/policy", get(policy::handler))
        .route("/threats", get(threats::handler))
        .route("/status.json", get(status::json))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // The page is static and holds no data; a browser cannot send the bearer header when
        // loading it, so it is open and fetches the data (`/status.json`) with the token.
        .route("/status", get(status::page))
        .merge(protected)
        .with_state(state)
}

/// Binds `addr` now (so a taken port fails start-up) and serves on the current runtime until
/// `shutdown` is cancelled; returns the bound address and the server task.
pub async fn start(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdminError> {
    let io = |source| AdminError::Io { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
    let bound = listener.local_addr().map_err(io)?;
    tracing::info!(addr = %bound, auth = state.token.is_some(), "admin http listening");
    let app = router(state);
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "admin http stopped with an error");
        }
    });
    Ok((bound, handle))
}
