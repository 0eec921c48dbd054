//! Read queries over PostgreSQL for the API (the `bucket_reader` role: SELECT only), through a
//! pool of connections (deadpool-postgres): a slow query holds one connection, not the API.
//! The version reads are also one of the [`super::versions::VersionReads`] the handlers read
//! versions through; decisions and usage exist only here (see that module).

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::Serialize;
use tokio_postgres::Row;

use crate::sink::store::ArtifactRow;
use crate::sink::store::row::{ROW_COLUMN_COUNT, ROW_COLUMNS};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageReadError {
    /// The URL does not parse.
    #[error("bad PostgreSQL URL: {0}")]
    Config(String),
    /// The database failed (outage, missing grant, missing migration, TLS refused).
    #[error("postgres: {}", crate::sink::store::pg::tls::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// No pooled connection could be had (database down, or every connection busy too long).
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The object store holding the content failed.
    #[error(transparent)]
    Object(#[from] crate::sink::store::ObjectError),
    /// The filesystem store failed (I/O, or an index file that does not read back).
    #[error("storage: {0}")]
    Store(#[from] crate::sink::StoreError),
}

/// One artifact version as the API returns it: the stored row, when it was stored and (on
/// single-version reads) its content.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionView {
    /// The version's fields.
    #[serde(flatten)]
    pub row: ArtifactRow,
    /// When the sink stored it, ms.
    pub stored_at_ms: i64,
    /// Content as base64 (only on single-version reads; None for tombstones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// Raw content bytes when the row holds them (never serialised).
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
    /// The object holding the content when it is in the object store (never serialised).
    #[serde(skip)]
    pub content_object: Option<String>,
}

/// One audit decision about an artifact.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecisionView {
    /// Audit partition.
    pub partition: i32,
    /// Audit offset.
    pub offset: i64,
    /// Position in the partition's chain.
    pub seq: i64,
    /// Chain hash of the event.
    pub hash: String,
    /// Gate clock, ms.
    pub recorded_at_ms: i64,
    /// Gate instance.
    pub gate_id: String,
    /// Policy version in force.
    pub policy_version: String,
    /// ACCEPTED or REJECTED.
    pub outcome: Option<String>,
    /// Reason codes, rule order.
    pub reasons: Vec<String>,
    /// Threat ids.
    pub threats: Vec<String>,
    /// Detail of the first reason.
    pub detail: String,
    /// Intent id.
    pub intent_id: Option<String>,
    /// Requester.
    pub requester_id: Option<String>,
    /// Operation asked for.
    pub operation: Option<String>,
    /// Version assigned (accepted) or current (conflict).
    pub version: Option<i64>,
    /// Intent partition.
    pub source_partition: Option<i32>,
    /// Intent offset.
    pub source_offset: Option<i64>,
}

/// A product's storage use.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageView {
    /// Product.
    pub product_id: String,
    /// Artifacts whose latest version is not a tombstone.
    pub live_artifacts: i64,
    /// Sum of the latest live versions' sizes (what quotas count).
    pub live_bytes: i64,
    /// Every stored version, tombstones and prior versions included.
    pub stored_versions: i64,
    /// Bytes of every stored version.
    pub stored_bytes: i64,
}

/// Connections the read API keeps at most (each a server backend of the reader role).
const POOL_SIZE: usize = 16;

/// Shared reader; cheap to clone.
#[derive(Clone)]
pub struct Reader {
    pool: Pool,
}

/// A version from a query that selected [`ROW_COLUMNS`], the storage time in ms and, when
/// `with_content`, the content.
fn version_view(r: &Row, with_content: bool) -> Result<VersionView, StorageReadError> {
    let (content, content_object) = if with_content {
        (
            r.try_get(ROW_COLUMN_COUNT + 1)?,
            r.try_get(ROW_COLUMN_COUNT + 2)?,
        )
    } else {
        (None, None)
    };
    Ok(VersionView {
        row: ArtifactRow::from_pg(r)?,
        stored_at_ms: r.try_get(ROW_COLUMN_COUNT)?,
        content_base64: None,
        content,
        content_object,
    })
}

impl Reader {
    /// Connects (the first connection must succeed, so a bad URL or grant fails at start-up).
    pub async fn connect(url: &str) -> Result<Reader, StorageReadError> {
        let config = crate::sink::store::pg::tls::PgConnectConfig::from_url(url)
            .map_err(|e| StorageReadError::Config(e.to_string()))?;
        let manager = Manager::from_config(
            config.config().clone(),
            config.tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StorageReadError::Config(e.to_string()))?;
        let reader = Reader { pool };
        reader
            .client()
            .await?
            .batch_execute(
                "SELECT 1 FROM artifact_versions LIMIT 0; SELECT 1 FROM audit_decisions LIMIT 0",
            )
            .await?;
        Ok(reader)
    }

    /// A pooled connection (a broken one is replaced when it is next taken).
    pub(crate) async fn client(&self) -> Result<Object, StorageReadError> {
        Ok(self.pool.get().await?)
    }

    /// Connections open and idle in the pool, for `/metrics`.
    pub fn pool_status(&self) -> (usize, usize) {
        let s = self.pool.status();
        (s.size, s.available)
    }

    /// The version `version` (the latest, a tombstone when deleted, when None) and its content
    /// size, without the content: what the content limits are charged before it is read.
    pub async fn size_of(
        &self,
        product: &str,
        artifact: &str,
        version: Option<i64>,
    ) -> Result<Option<(i64, i64)>, StorageReadError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT version, content_size FROM artifact_versions \
                 WHERE product_id = $1 AND artifact_id = $2 AND ($3::bigint IS NULL OR version = $3) \
                 ORDER BY version DESC LIMIT 1",
                &[&product, &artifact, &version],
            )
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// One version with content.
    pub async fn version(
        &self,
        product: &str,
        artifact: &str,
        version: i64,
    ) -> Result<Option<VersionView>, StorageReadError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS}, (extract(epoch FROM stored_at) * 1000)::bigint, content, \
             content_object FROM artifact_versions \
             WHERE product_id = $1 AND artifact_id = $2 AND version = $3"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&product, &artifact, &version])
            .await?;
        row.map(|r| version_view(&r, true)).transpose()
    }

    /// Versions below `before`, newest first, at most `limit` (without content).
    pub async fn history(
        &self,
        product: &str,
        artifact: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<VersionView>, StorageReadError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS}, (extract(epoch FROM stored_at) * 1000)::bigint FROM artifact_versions \
             WHERE product_id = $1 AND artifact_id = $2 AND version < $3 \
             ORDER BY version DESC LIMIT $4"
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &[&product, &artifact, &before, &limit])
            .await?;
        rows.iter().map(|r| version_view(r, false)).collect()
    }

    /// Decisions about an artifact after the cursor `(recorded_at_ms, partition, offset)`,
    /// oldest first, at most `limit`.
    pub async fn decisions(
        &self,
        product: &str,
        artifact: &str,
        after: (i64, i32, i64),
        limit: i64,
    ) -> Result<Vec<DecisionView>, StorageReadError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT \"partition\", \"offset\", seq, hash, recorded_at_ms, gate_id, \
                 policy_version, outcome, reasons, threats, detail, intent_id, requester_id, \
                 operation, version, source_partition, source_offset FROM audit_decisions \
                 WHERE product_id = $1 AND artifact_id = $2 AND kind = 'DECISION' \
                 AND (recorded_at_ms, \"partition\", \"offset\") > ($3, $4, $5) \
                 ORDER BY recorded_at_ms, \"partition\", \"offset\" LIMIT $6",
                &[&product, &artifact, &after.0, &after.1, &after.2, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DecisionView {
                    partition: r.try_get(0)?,
                    offset: r.try_get(1)?,
                    seq: r.try_get(2)?,
                    hash: r.try_get(3)?,
                    recorded_at_ms: r.try_get(4)?,
                    gate_id: r.try_get(5)?,
                    policy_version: r.try_get(6)?,
                    outcome: r.try_get(7)?,
                    reasons: r.try_get(8)?,
                    threats: r.try_get(9)?,
                    detail: r.try_get(10)?,
                    intent_id: r.try_get(11)?,
                    requester_id: r.try_get(12)?,
                    operation: r.try_get(13)?,
                    version: r.try_get(14)?,
                    source_partition: r.try_get(15)?,
                    source_offset: r.try_get(16)?,
                })
            })
            .collect()
    }

    /// Storage use of one product: the counters the database keeps beside the versions
    /// (migration 0006), one row per source partition, summed.
    pub async fn usage(&self, product: &str) -> Result<UsageView, StorageReadError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT coalesce(sum(live_artifacts), 0)::bigint, \
                 coalesce(sum(live_bytes), 0)::bigint, coalesce(sum(stored_versions), 0)::bigint, \
                 coalesce(sum(stored_bytes), 0)::bigint FROM product_usage WHERE product_id = $1",
                &[&product],
            )
            .await?;
        Ok(UsageView {
            product_id: product.to_string(),
            live_artifacts: row.try_get(0)?,
            live_bytes: row.try_get(1)?,
            stored_versions: row.try_get(2)?,
            stored_bytes: row.try_get(3)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::accepted::tests::sample;

    /// The JSON of a version keeps its field names and order (docs/openapi.json).
    #[test]
    fn a_version_serialises_with_the_documented_fields_in_order() {
        let view = VersionView {
            row: ArtifactRow::of(&sample()),
            stored_at_ms: 9,
            content_base64: Some("eA==".into()),
            content: Some(b"x".to_vec()),
            content_object: None,
        };
        let json = serde_json::to_string(&view).unwrap();
        let keys = [
            "product_id",
            "artifact_id",
            "version",
            "intent_id",
            "artifact_class",
            "owner_id",
            "requester_id",
            "integration_id",
            "operation",
            "deleted",
            "content_sha256",
            "content_size",
            "content_type",
            "metadata",
            "purpose",
            "client_time_ms",
            "decided_at_ms",
            "policy_version",
            "source_partition",
            "source_offset",
            "stored_at_ms",
            "content_base64",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| json.find(&format!("\"{k}\":")).expect(k))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value.as_object().unwrap().len(), keys.len(), "{json}");
    }
}
