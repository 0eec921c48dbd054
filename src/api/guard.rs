//! The limits every request passes before a handler runs: first the client address (refused
//! while it is over its allowance of requests without a valid token, before any token check),
//! then the token's request rate, or, without a valid token, one unit of the address's allowance.
//! Content limits (bytes, streams) are taken by the content handlers, which know the size.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use super::limits::AddressKey;

/// The TCP peer of a request (unspecified when the router runs without connection info).
pub(crate) fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The middleware: address, then token or address allowance; 429 with `Retry-After` when over.
pub async fn guard(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let addr = AddressKey::of(peer(&req));
    if let Err(t) = state.limits.check_blocked(addr) {
        return state.throttled("none", t).into_response();
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let charged = match state.tokens.authenticate(auth) {
        Some(p) => state
            .limits
            .charge_request(p)
            .map_err(|t| state.throttled(&p.product, t)),
        None => state
            .limits
            .charge_unauthenticated(addr)
            .map_err(|t| state.throttled("none", t)),
    };
    match charged {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Why a refusal is an [`ApiError`]: counted once, here.
impl ApiState {
    pub(crate) fn throttled(&self, product: &str, t: super::limits::Throttled) -> ApiError {
        self.metrics.throttled(product, t.kind);
        ApiError::Throttled(t)
    }
}
