//! `/status`: a live status page (static HTML and JS compiled in, no external assets) fed by
//! `/status.json`: decision rates per product, top rejection reasons, quota bars, lag per
//! partition and the last decisions and governance events.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::health::readiness;
use super::{AdminState, Role};

/// The page. It reads the token from `#token=…`, keeps it in sessionStorage and sends it as a
/// bearer header when polling `/status.json` every 2 s.
pub const PAGE: &str = include_str!("status.html");

/// `GET /status`.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /status.json`.
pub async fn json(State(state): State<AdminState>) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ready = readiness(&state);
    let body = match &state.role {
        Role::Gate(g) => {
            let Some(b) = g.board() else {
                return Json(serde_json::json!({"role": "gate"})).into_response();
            };
            let recent: Vec<_> = b.recent.iter().rev().collect();
            serde_json::json!({
                "role": "gate",
                "version": env!("CARGO_PKG_VERSION"),
                "now_s": now,
                "ready": ready,
                "policy_version": b.policy.as_ref().map(|(v, _)| v.clone()),
                "products": b.product_rows(now),
                "top_reasons": b.top_reasons().iter()
                    .map(|(code, n)| serde_json::json!({"code": code, "count": n}))
                    .collect::<Vec<_>>(),
                "tasks": b.phases,
                // The restore running now (its partition is `restoring` in `tasks`).
                "restore": crate::gate::lifecycle::RESTORE_PROGRESS.now(),
                "quotas": b.quotas,
                "cooling_off": b.cooling_off,
                "governance": b.governance,
                "recent": recent,
            })
        }
        Role::Sink(s) => {
            let Some(b) = s.board() else {
                return Json(serde_json::json!({"role": "sink"})).into_response();
            };
            serde_json::json!({
                "role": "sink",
                "version": env!("CARGO_PKG_VERSION"),
                "now_s": now,
                "ready": ready,
                "counters": b.governance,
            })
        }
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
