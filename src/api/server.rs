//! The HTTP/1.1 server of the read API: hyper with the connection bounds axum's `serve` does not
//! expose (request head size, time to send it, connection count and age), the client address
//! handed to the router, a periodic clean-up of the limiters, and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::{ApiServeError, ApiState, router};

/// How long in-flight responses get to finish once a connection is told to close.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Serves on `listen` until `shutdown` is cancelled; `ready` receives the bound address.
pub async fn serve(
    listen: SocketAddr,
    state: ApiState,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ApiServeError> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let bounds = state.server.clone();
    tracing::info!(%addr, tokens = state.tokens.len(), "read API listening");
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    let limits = state.limits.clone();
    let stop_clean = shutdown.clone();
    let cleanup_interval = bounds.cleanup_interval;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(cleanup_interval);
        loop {
            tokio::select! {
                _ = stop_clean.cancelled() => break,
                _ = every.tick() => limits.clean(),
            }
        }
    });
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout)
        .max_buf_size(bounds.max_header_bytes);
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { app.call(req).await }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = shutdown.clone();
        let max_age = bounds.connection_max_age;
        connections.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep(max_age) => {}
                _ = stop.cancelled() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
        });
    }
    while connections.join_next().await.is_some() {}
    tracing::info!("read API stopped");
    Ok(())
}
