//! The transparency log over HTTP, read-only, from the directory `bucket audit tiles` keeps
//! (`bucket api --tlog-dir`): checkpoints and hash tiles for any valid token, proof bundles for
//! the decision's own product only.
//!
//! - Checkpoints and hash tiles carry no product data (signed sizes and roots, SHA-256 hashes),
//!   and witnesses and auditors need them whole: every valid token may read them.
//! - Entry bundles hold every product's decision records: they are **not** served (404); a
//!   product gets its own records inside its proof bundles. Auditors with access to
//!   `bucket.audit` read the entries from the topic or the tiles directory.
//! - A proof bundle is answered only to a token of the decision's product, and only when the
//!   path names that product: another product's decision is a 404, as if it did not exist.

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::handlers::{ApiError, authorize, principal};
use crate::audit::prove::{ProveError, prove_key};
use crate::audit::tlog_index::Key;
use crate::tlog::tiles::TileKind;
use crate::tlog::tiles_fs::TileSource;
use crate::tlog::{FsTileStore, TileId};

/// The tiles directory, or a 404 when the API was started without one.
fn tlog_dir(state: &ApiState) -> Result<PathBuf, ApiError> {
    state
        .tlog
        .clone()
        .ok_or_else(|| ApiError::NotFound("no transparency log is served here".into()))
}

/// Runs blocking filesystem work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::BadRequest("request aborted".into()))?
}

/// `GET /v1/audit/tlog`: the partitions that have a log.
pub async fn partitions(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal(&state, &headers)?;
    let dir = tlog_dir(&state)?;
    let parts = blocking(move || {
        let mut out: Vec<i32> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        Ok(out)
    })
    .await?;
    Ok(axum::Json(serde_json::json!({ "partitions": parts })).into_response())
}

/// `GET /v1/audit/tlog/{partition}/checkpoint`: the published signed checkpoint, as text.
pub async fn checkpoint(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(partition): Path<i32>,
) -> Result<Response, ApiError> {
    principal(&state, &headers)?;
    let dir = tlog_dir(&state)?;
    let note = blocking(move || {
        FsTileStore::new(dir.join(partition.to_string()))
            .read_checkpoint()
            .map_err(|_| ApiError::NotFound(format!("no checkpoint for partition {partition}")))
    })
    .await?;
    let mut r = (StatusCode::OK, note).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// `GET /v1/audit/tlog/{partition}/tile/{*path}`: a hash tile (`tile/<L>/<N>[.p/<W>]`),
/// immutable once written. Entry bundles answer 404 (they hold every product's records).
pub async fn tile(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((partition, path)): Path<(i32, String)>,
) -> Result<Response, ApiError> {
    principal(&state, &headers)?;
    let dir = tlog_dir(&state)?;
    let missing = || ApiError::NotFound("no such tile".into());
    let id = TileId::parse_path(&format!("tile/{path}")).map_err(|_| missing())?;
    if id.kind == TileKind::Entries {
        return Err(ApiError::NotFound(
            "entry bundles are not served: they hold every product's records".into(),
        ));
    }
    let bytes = blocking(move || {
        FsTileStore::new(dir.join(partition.to_string()))
            .read_tile(&id)
            .map_err(|_| missing())
    })
    .await?;
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(r)
}

/// The proof routes' query: `?format=tlog-proof` asks for the C2SP text instead of JSON.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ProofQuery {
    /// `json` (the default) or `tlog-proof`.
    format: Option<String>,
}

impl ProofQuery {
    /// Whether the C2SP `tlog-proof` text was asked for; an unknown format is a 400.
    fn tlog_proof(&self) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            None | Some("json") => Ok(false),
            Some("tlog-proof") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "format {other:?}: use json or tlog-proof"
            ))),
        }
    }
}

/// The bundle of the decision `key` of `product`, or a 404 that does not say whether it exists
/// for another product.
async fn bundle(
    state: &ApiState,
    product: String,
    key: Key,
    query: ProofQuery,
) -> Result<Response, ApiError> {
    let dir = tlog_dir(state)?;
    let tlog_proof = query.tlog_proof()?;
    let text = blocking(move || match prove_key(&dir, &key, Some(&product)) {
        Ok((b, _, _)) if tlog_proof => Ok(b.to_tlog_proof()),
        Ok((b, _, _)) => Ok(b.to_json()),
        Err(ProveError::NotFound(_)) => Err(ApiError::NotFound("no such decision".into())),
        Err(e @ ProveError::NotYetCheckpointed { .. }) => Err(ApiError::NotYet(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "proof failed");
            Err(ApiError::NotFound("no proof available".into()))
        }
    })
    .await?;
    let content_type = if tlog_proof {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// `GET /v1/products/{product}/decisions/{intent_id}/proof`: the proof bundle of the decision
/// on an intent of this product.
pub async fn intent_proof(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, intent_id)): Path<(String, String)>,
    Query(query): Query<ProofQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, Some(&intent_id))?;
    bundle(&state, product, Key::Intent(intent_id), query).await
}

/// `GET /v1/products/{product}/artifacts/{artifact}/versions/{version}/proof`: the proof
/// bundle of the decision that accepted this version.
pub async fn version_proof(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, artifact, version)): Path<(String, String, i64)>,
    Query(query): Query<ProofQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, Some(&artifact))?;
    let key = Key::Version {
        product: product.clone(),
        artifact,
        version,
    };
    bundle(&state, product, key, query).await
}
