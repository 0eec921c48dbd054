//! HTTP handlers: authorise the product, validate the input, read, shape the answer.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::config::ServerLimits;
use super::content::{content_response, with_content_loaded};
pub use super::error::ApiError;
use super::limits::StreamPermit;
use super::read::{DecisionView, VersionView};
use super::{ApiState, OPENAPI_JSON};

/// Longest artifact id the API looks up (longer ones cannot be stored).
const MAX_ID_LEN: usize = 1024;

/// `limit` and `cursor` of list endpoints.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A `limit` parameter within the server's page sizes (default when absent), or a 400.
pub(crate) fn page_limit(limit: Option<i64>, server: &ServerLimits) -> Result<i64, ApiError> {
    let max = server.max_page_size;
    match limit.unwrap_or(server.default_page_size) {
        n if (1..=max).contains(&n) => Ok(n),
        n => Err(ApiError::BadRequest(format!(
            "limit {n} out of range 1..={max}"
        ))),
    }
}

impl Page {
    fn limit(&self, server: &ServerLimits) -> Result<i64, ApiError> {
        page_limit(self.limit, server)
    }
}

/// A page of versions, newest first.
#[derive(Serialize)]
struct VersionPage {
    items: Vec<VersionView>,
    next_cursor: Option<String>,
}

/// A page of decisions, oldest first.
#[derive(Serialize)]
struct DecisionPage {
    items: Vec<DecisionView>,
    next_cursor: Option<String>,
}

/// The holder of the request's token, or 401.
pub(crate) fn principal<'a>(
    state: &'a ApiState,
    headers: &HeaderMap,
) -> Result<&'a super::Principal, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state
        .tokens
        .authenticate(auth)
        .ok_or(ApiError::Unauthorized)
}

/// Checks the token and that it reads `product`, and that `artifact` is a possible id.
pub(crate) fn authorize<'a>(
    state: &'a ApiState,
    headers: &HeaderMap,
    product: &str,
    artifact: Option<&str>,
) -> Result<&'a super::Principal, ApiError> {
    let principal = principal(state, headers)?;
    if principal.product != product {
        tracing::info!(token = %principal.name, "token used for another product; answering 404");
        return Err(ApiError::NotFound(format!("no product {product:?}")));
    }
    if let Some(a) = artifact
        && (a.is_empty() || a.len() > MAX_ID_LEN || a.contains('\0'))
    {
        return Err(not_found(product, a));
    }
    Ok(principal)
}

fn not_found(product: &str, artifact: &str) -> ApiError {
    ApiError::NotFound(format!("no artifact {product}/{artifact}"))
}

fn with_base64(mut v: VersionView) -> VersionView {
    v.content_base64 = v
        .content
        .as_deref()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c));
    v
}

/// `response` whose body keeps `permit` (a content-stream slot) until it is sent or dropped.
fn holding(response: Response, permit: StreamPermit) -> Response {
    use axum::body::HttpBody;
    let (mut parts, body) = response.into_parts();
    if let Some(n) = body.size_hint().exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The version `version` (the latest when None) with its content, admitted by the token's
/// content limits first: the size is read, the bytes charged and a stream slot taken before the
/// content leaves the database.
async fn admitted_version(
    state: &ApiState,
    principal: &super::Principal,
    product: &str,
    artifact: &str,
    version: Option<i64>,
) -> Result<(VersionView, StreamPermit), ApiError> {
    let (version, size) = state
        .versions
        .size_of(product, artifact, version)
        .await?
        .ok_or_else(|| not_found(product, artifact))?;
    let permit = state
        .limits
        .admit_content(principal, size)
        .map_err(|t| state.throttled(&principal.product, t))?;
    let v = state
        .versions
        .version(product, artifact, version)
        .await?
        .ok_or_else(|| not_found(product, artifact))?;
    Ok((v, permit))
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

/// `GET /healthz`.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /v1/products/{product}/artifacts/{artifact}`: the latest version with content.
pub async fn latest(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let p = authorize(&state, &headers, &product, Some(&artifact))?;
    let (v, permit) = admitted_version(&state, p, &product, &artifact, None).await?;
    let v = with_content_loaded(&state, v).await?;
    Ok(holding(Json(with_base64(v)).into_response(), permit))
}

/// `GET /v1/products/{product}/artifacts/{artifact}/content`: the latest content, raw.
pub async fn latest_content(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let p = authorize(&state, &headers, &product, Some(&artifact))?;
    let (v, permit) = admitted_version(&state, p, &product, &artifact, None).await?;
    Ok(holding(
        content_response(&state, v, &headers).await?,
        permit,
    ))
}

/// `GET /v1/products/{product}/artifacts/{artifact}/versions/{version}`.
pub async fn version(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact, version)): Path<(String, String, i64)>,
) -> Result<Response, ApiError> {
    let p = authorize(&state, &headers, &product, Some(&artifact))?;
    let (v, permit) = admitted_version(&state, p, &product, &artifact, Some(version)).await?;
    let v = with_content_loaded(&state, v).await?;
    Ok(holding(Json(with_base64(v)).into_response(), permit))
}

/// `GET /v1/products/{product}/artifacts/{artifact}/versions/{version}/content`.
pub async fn version_content(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact, version)): Path<(String, String, i64)>,
) -> Result<Response, ApiError> {
    let p = authorize(&state, &headers, &product, Some(&artifact))?;
    let (v, permit) = admitted_version(&state, p, &product, &artifact, Some(version)).await?;
    Ok(holding(
        content_response(&state, v, &headers).await?,
        permit,
    ))
}

/// `GET /v1/products/{product}/artifacts/{artifact}/versions?limit&cursor`: newest first; the
/// cursor is the last version of the previous page.
pub async fn history(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, Some(&artifact))?;
    let limit = page.limit(&state.server)?;
    let before = match page.cursor.as_deref() {
        None | Some("") => i64::MAX,
        Some(c) => c
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("cursor {c:?} is not a version")))?,
    };
    let mut items = state
        .versions
        .history(&product, &artifact, before, limit + 1)
        .await?;
    if items.is_empty() && before == i64::MAX {
        return Err(not_found(&product, &artifact));
    }
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|v| v.row.version.to_string()))
        .flatten();
    Ok(Json(VersionPage { items, next_cursor }).into_response())
}

/// Parses a decisions cursor `recorded_at_ms.partition.offset`.
fn decision_cursor(c: Option<&str>) -> Result<(i64, i32, i64), ApiError> {
    let Some(c) = c.filter(|c| !c.is_empty()) else {
        return Ok((i64::MIN, i32::MIN, i64::MIN));
    };
    let bad = || ApiError::BadRequest(format!("cursor {c:?} is not a decisions cursor"));
    let mut parts = c.split('.');
    let (Some(t), Some(p), Some(o), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        t.parse().map_err(|_| bad())?,
        p.parse().map_err(|_| bad())?,
        o.parse().map_err(|_| bad())?,
    ))
}

/// `GET /v1/products/{product}/artifacts/{artifact}/decisions?limit&cursor`: the audit trail
/// (from the `audit_decisions` index), oldest first.
pub async fn decisions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, Some(&artifact))?;
    let limit = page.limit(&state.server)?;
    let after = decision_cursor(page.cursor.as_deref())?;
    let mut items = state
        .reader
        .decisions(&product, &artifact, after, limit + 1)
        .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|d| format!("{}.{}.{}", d.recorded_at_ms, d.partition, d.offset))
        })
        .flatten();
    Ok(Json(DecisionPage { items, next_cursor }).into_response())
}

/// `GET /v1/products/{product}/usage`: live artifacts and bytes.
pub async fn usage(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(product): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, None)?;
    Ok(Json(state.reader.usage(&product).await?).into_response())
}

/// `GET /metrics`: OpenMetrics text. With `--admin-token`, only for that bearer token; without
/// one, only for loopback clients (others get 404, like an unknown path).
pub async fn metrics(State(state): State<ApiState>, req: Request) -> Response {
    let allowed = match &state.metrics_token {
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                use subtle::ConstantTimeEq;
                bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
            }),
        None => super::guard::peer(&req).is_loopback(),
    };
    if !allowed {
        return fallback().await.into_response();
    }
    match state.metrics.encode(&state.limits) {
        Ok(body) => ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Any other path.
pub async fn fallback() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::limits::Throttled;

    #[test]
    fn decision_cursors_round_trip_and_refuse_junk() {
        assert_eq!(decision_cursor(None).unwrap().0, i64::MIN);
        assert_eq!(decision_cursor(Some("5.1.9")).unwrap(), (5, 1, 9));
        assert!(decision_cursor(Some("5.1")).is_err());
        assert!(decision_cursor(Some("5.1.9.3")).is_err());
        assert!(decision_cursor(Some("a.b.c")).is_err());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        let server = ServerLimits {
            default_page_size: 7,
            max_page_size: 20,
            ..ServerLimits::default()
        };
        let page = |limit| Page {
            limit,
            cursor: None,
        };
        assert_eq!(page(None).limit(&server).unwrap(), 7);
        assert_eq!(page(Some(20)).limit(&server).unwrap(), 20);
        assert!(page(Some(0)).limit(&server).is_err());
        assert!(page(Some(21)).limit(&server).is_err());
    }

    #[test]
    fn a_throttled_answer_is_429_with_retry_after_in_whole_seconds() {
        let r = ApiError::Throttled(Throttled {
            kind: super::super::limits::LimitKind::Requests,
            retry_after: std::time::Duration::from_millis(1200),
        })
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
