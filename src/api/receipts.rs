//! Decision receipts: the gate's answer to each intent, for the intent's own product only
//! (`GET /v1/products/{product}/decisions/{intent_id}` and the paged
//! `GET /v1/products/{product}/decisions`), from the `audit_decisions` index the sink's audit
//! indexer keeps. The receipt's JSON shape is a contract the client libraries rely on: keys may
//! be added, never renamed (docs/api.md, "Decision receipts").
//!
//! A decision is a product's when its audit record names the product. An intent whose value did
//! not decode has no product in its record, so it has no receipt: it stays operator-only.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::ApiState;
use super::handlers::{ApiError, authorize, page_limit};
use super::read::{Reader, StorageReadError};

/// Columns every receipt query selects, in [`receipt_of`]'s order.
const RECEIPT_COLUMNS: &str = "topic, \"partition\", \"offset\", seq, hash, recorded_at_ms, \
     policy_version, outcome, reasons, threats, detail, intent_id, product_id, artifact_id, \
     operation, integration_id, version";

/// Most partitions a cursor may name (far above any audit topic's partition count).
const MAX_CURSOR_PARTITIONS: usize = 4096;

/// Where a decision sits in the audit log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditPosition {
    /// Audit topic.
    pub topic: String,
    /// Audit partition.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// Position in the partition's hash chain (the transparency log's leaf index).
    pub seq: i64,
    /// Chain hash of the link.
    pub hash: String,
}

/// The answer to one intent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Receipt {
    /// The intent's id.
    pub intent_id: String,
    /// Its product (the path's).
    pub product_id: String,
    /// The artifact it named, if it decoded that far.
    pub artifact_id: Option<String>,
    /// `ACCEPTED` or `REJECTED`.
    pub outcome: String,
    /// Reason codes in rule order (docs/reason-codes.md); empty when accepted cleanly.
    pub reasons: Vec<String>,
    /// Detail of the first reason.
    pub detail: String,
    /// Version assigned (accepted) or current (version conflict), if any.
    pub version: Option<i64>,
    /// Policy version in force.
    pub policy_version: String,
    /// Gate clock at the decision, ms.
    pub recorded_at_ms: i64,
    /// Audit coordinates.
    pub audit: AuditPosition,
    /// Path of the proof bundle once a published checkpoint covers the decision, else null.
    pub proof: Option<String>,
    /// Threat ids of the reasons.
    pub threats: Vec<String>,
    /// Operation asked for.
    pub operation: Option<String>,
    /// Integration that sent it.
    pub integration_id: Option<String>,
    /// How many decisions this intent id has (replays included); single receipts only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<i64>,
}

fn receipt_of(r: &Row) -> Result<Receipt, StorageReadError> {
    Ok(Receipt {
        audit: AuditPosition {
            topic: r.try_get(0)?,
            partition: r.try_get(1)?,
            offset: r.try_get(2)?,
            seq: r.try_get(3)?,
            hash: r.try_get(4)?,
        },
        recorded_at_ms: r.try_get(5)?,
        policy_version: r.try_get(6)?,
        outcome: r.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
        reasons: r.try_get(8)?,
        threats: r.try_get(9)?,
        detail: r.try_get(10)?,
        intent_id: r.try_get::<_, Option<String>>(11)?.unwrap_or_default(),
        product_id: r.try_get::<_, Option<String>>(12)?.unwrap_or_default(),
        artifact_id: r.try_get(13)?,
        operation: r.try_get(14)?,
        integration_id: r.try_get(15)?,
        version: r.try_get(16)?,
        proof: None,
        decisions: None,
    })
}

/// `outcome=accepted|rejected` as stored.
fn outcome_filter(outcome: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    match outcome.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(None),
        Some("accepted") => Ok(Some("ACCEPTED")),
        Some("rejected") => Ok(Some("REJECTED")),
        Some(other) => Err(ApiError::BadRequest(format!(
            "outcome {other:?}: use accepted or rejected"
        ))),
    }
}

/// A list position: the last offset read in each audit partition. Opaque to clients
/// (base64url of `partition:offset,…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<i32, i64>);

impl Cursor {
    /// Parses a `since` value; empty or absent is the start.
    pub fn parse(s: Option<&str>) -> Result<Cursor, ApiError> {
        let Some(s) = s.filter(|s| !s.is_empty()) else {
            return Ok(Cursor::default());
        };
        let bad = || ApiError::BadRequest("since is not a cursor of this endpoint".into());
        if s.len() > MAX_CURSOR_PARTITIONS * 16 {
            return Err(bad());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let mut map = BTreeMap::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = part.split_once(':').ok_or_else(bad)?;
            let (p, o) = (
                p.parse::<i32>().map_err(|_| bad())?,
                o.parse::<i64>().map_err(|_| bad())?,
            );
            if p < 0 || o < 0 || map.insert(p, o).is_some() {
                return Err(bad());
            }
        }
        if map.len() > MAX_CURSOR_PARTITIONS {
            return Err(bad());
        }
        Ok(Cursor(map))
    }

    /// The opaque text.
    pub fn encode(&self) -> String {
        let text: Vec<String> = self.0.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.join(","))
    }

    /// The cursor after `receipts` were read.
    fn after(&self, receipts: &[Receipt]) -> Cursor {
        let mut next = self.clone();
        for r in receipts {
            let at = next.0.entry(r.audit.partition).or_insert(r.audit.offset);
            *at = (*at).max(r.audit.offset);
        }
        next
    }
}

impl Reader {
    /// The first decision (audit order: gate clock, partition, offset) on `intent_id` of
    /// `product`, and how many it has.
    pub async fn receipt(
        &self,
        product: &str,
        intent_id: &str,
    ) -> Result<Option<Receipt>, StorageReadError> {
        let sql = format!(
            "SELECT {RECEIPT_COLUMNS}, count(*) OVER () FROM audit_decisions \
             WHERE product_id = $1 AND intent_id = $2 AND kind = 'DECISION' \
             ORDER BY recorded_at_ms, \"partition\", \"offset\" LIMIT 1"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&product, &intent_id])
            .await?;
        row.map(|r| {
            let mut receipt = receipt_of(&r)?;
            receipt.decisions = Some(r.try_get(17)?);
            Ok(receipt)
        })
        .transpose()
    }

    /// Up to `limit` decisions of `product` after `cursor`, by audit partition then offset,
    /// optionally of one outcome. Each partition is read from its own position with the index
    /// `audit_decisions_by_product_partition` (migration 0004).
    pub async fn receipts(
        &self,
        product: &str,
        cursor: &Cursor,
        outcome: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Receipt>, StorageReadError> {
        let partitions: Vec<i32> = cursor.0.keys().copied().collect();
        let offsets: Vec<i64> = cursor.0.values().copied().collect();
        let d_columns = RECEIPT_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // The product's partitions by a loose index scan, then each partition from its cursor.
        let sql = format!(
            "WITH RECURSIVE parts(p) AS ( \
               (SELECT \"partition\" FROM audit_decisions \
                WHERE product_id = $1 AND kind = 'DECISION' ORDER BY \"partition\" LIMIT 1) \
               UNION ALL \
               SELECT (SELECT \"partition\" FROM audit_decisions \
                       WHERE product_id = $1 AND kind = 'DECISION' AND \"partition\" > parts.p \
                       ORDER BY \"partition\" LIMIT 1) \
               FROM parts WHERE parts.p IS NOT NULL) \
             SELECT {d_columns} FROM parts, LATERAL ( \
               SELECT {RECEIPT_COLUMNS} FROM audit_decisions \
               WHERE product_id = $1 AND kind = 'DECISION' AND \"partition\" = parts.p \
                 AND ($4::text IS NULL OR outcome = $4) \
                 AND \"offset\" > coalesce((SELECT c.o FROM unnest($2::int[], $3::bigint[]) \
                                            AS c(p, o) WHERE c.p = parts.p), -1) \
               ORDER BY \"offset\" LIMIT $5) d \
             WHERE parts.p IS NOT NULL \
             ORDER BY d.\"partition\", d.\"offset\" LIMIT $5"
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &[&product, &partitions, &offsets, &outcome, &limit])
            .await?;
        rows.iter().map(receipt_of).collect()
    }
}

/// The published tree size of each audit partition in `partitions` (0 when none).
fn published_sizes(dir: &std::path::Path, partitions: &[i32]) -> HashMap<i32, u64> {
    use crate::audit::tiles::published_checkpoint;
    use crate::tlog::FsTileStore;
    partitions
        .iter()
        .map(|&p| {
            let store = FsTileStore::new(dir.join(p.to_string()));
            let size = match published_checkpoint(&store) {
                Ok(Some((_, head))) => head.size,
                Ok(None) => 0,
                Err(error) => {
                    tracing::warn!(%error, partition = p, "reading a published checkpoint");
                    0
                }
            };
            (p, size)
        })
        .collect()
}

/// Fills `proof` of each receipt the published checkpoints cover (none without `--tlog-dir`).
async fn with_proofs(tlog: Option<PathBuf>, mut receipts: Vec<Receipt>) -> Vec<Receipt> {
    let Some(dir) = tlog else {
        return receipts;
    };
    let mut partitions: Vec<i32> = receipts.iter().map(|r| r.audit.partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let sizes = tokio::task::spawn_blocking(move || published_sizes(&dir, &partitions))
        .await
        .unwrap_or_default();
    for r in &mut receipts {
        let covered = sizes
            .get(&r.audit.partition)
            .is_some_and(|&size| r.audit.seq >= 0 && (r.audit.seq as u64) < size);
        if covered {
            r.proof = Some(proof_path(&r.product_id, &r.intent_id));
        }
    }
    receipts
}

/// The proof route of an intent's decision, path segments percent-encoded.
fn proof_path(product: &str, intent_id: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    /// Everything but RFC 3986's unreserved characters.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let seg = |s| utf8_percent_encode(s, SEGMENT).to_string();
    format!(
        "/v1/products/{}/decisions/{}/proof",
        seg(product),
        seg(intent_id)
    )
}

/// Query of the receipts list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Opaque cursor from a previous page's `next` or `cursor`.
    since: Option<String>,
    /// `accepted` or `rejected`.
    outcome: Option<String>,
    /// Page size (the server's default and maximum apply).
    limit: Option<i64>,
}

/// A page of receipts.
#[derive(Serialize)]
struct ReceiptPage {
    decisions: Vec<Receipt>,
    /// The cursor of the next page while more are there now; null on the last page.
    next: Option<String>,
    /// The position after this page, always: poll with it to follow new decisions.
    cursor: String,
}

/// `GET /v1/products/{product}/decisions/{intent_id}`: the receipt of the intent's first
/// decision (`decisions` says how many it has).
pub async fn one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((product, intent_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, Some(&intent_id))?;
    let receipt = state
        .reader
        .receipt(&product, &intent_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such decision".into()))?;
    let mut receipts = with_proofs(state.tlog.clone(), vec![receipt]).await;
    let receipt = receipts
        .pop()
        .ok_or_else(|| ApiError::NotFound("no such decision".into()))?;
    Ok(Json(receipt).into_response())
}

/// `GET /v1/products/{product}/decisions?since&outcome&limit`: the product's decisions in audit
/// order (partition, then offset), accepted and rejected.
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(product): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &product, None)?;
    let limit = page_limit(q.limit, &state.server)?;
    let outcome = outcome_filter(q.outcome.as_deref())?;
    let cursor = Cursor::parse(q.since.as_deref())?;
    let mut receipts = state
        .reader
        .receipts(&product, &cursor, outcome, limit + 1)
        .await?;
    let more = receipts.len() as i64 > limit;
    receipts.truncate(limit as usize);
    let after = cursor.after(&receipts).encode();
    let receipts = with_proofs(state.tlog.clone(), receipts).await;
    Ok(Json(ReceiptPage {
        decisions: receipts,
        next: more.then(|| after.clone()),
        cursor: after,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(partition: i32, offset: i64) -> Receipt {
        Receipt {
            intent_id: "i/1".into(),
            product_id: "ai_assistant".into(),
            artifact_id: None,
            outcome: "REJECTED".into(),
            reasons: vec!["SIGNATURE_INVALID".into()],
            detail: "d".into(),
            version: None,
            policy_version: "p".into(),
            recorded_at_ms: 1,
            audit: AuditPosition {
                topic: "bucket.audit".into(),
                partition,
                offset,
                seq: offset,
                hash: "h".into(),
            },
            proof: None,
            threats: vec![],
            operation: None,
            integration_id: None,
            decisions: None,
        }
    }

    #[test]
    fn cursors_round_trip_advance_per_partition_and_refuse_junk() {
        assert_eq!(Cursor::parse(None).unwrap(), Cursor::default());
        let c = Cursor::default().after(&[receipt(2, 5), receipt(0, 9), receipt(2, 7)]);
        assert_eq!(c.0, BTreeMap::from([(0, 9), (2, 7)]));
        assert_eq!(Cursor::parse(Some(&c.encode())).unwrap(), c);
        let later = c.after(&[receipt(0, 10)]);
        assert_eq!(later.0, BTreeMap::from([(0, 10), (2, 7)]));
        for junk in ["%%%", "LTE6MQ", "eA", "MTotMQ"] {
            assert!(Cursor::parse(Some(junk)).is_err(), "{junk}");
        }
    }

    #[test]
    fn outcome_filter_takes_two_values() {
        assert_eq!(outcome_filter(None).unwrap(), None);
        assert_eq!(outcome_filter(Some("Rejected")).unwrap(), Some("REJECTED"));
        assert_eq!(outcome_filter(Some("accepted")).unwrap(), Some("ACCEPTED"));
        assert!(outcome_filter(Some("maybe")).is_err());
    }

    /// The receipt's keys are a contract (docs/api.md): these must all be there.
    #[test]
    fn a_receipt_has_every_contract_key() {
        let mut r = receipt(0, 1);
        r.decisions = Some(2);
        r.proof = Some(proof_path("ai_assistant", "i/1"));
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "intent_id",
            "product_id",
            "artifact_id",
            "outcome",
            "reasons",
            "detail",
            "version",
            "policy_version",
            "recorded_at_ms",
            "audit",
            "proof",
            "decisions",
        ] {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        for k in ["topic", "partition", "offset", "seq", "hash"] {
            assert!(v["audit"].get(k).is_some(), "audit.{k} missing: {v}");
        }
        assert_eq!(
            v["proof"],
            "/v1/products/ai_assistant/decisions/i%2F1/proof"
        );
        assert!(v["artifact_id"].is_null() && v["version"].is_null());
    }
}
