//! The stored artifact row: one version's fields as storage keeps them (the `artifact_versions`
//! columns, content aside), written out once. The filesystem index entry
//! ([`super::fs::IndexEntry`]) and the read API's view (`api::read::VersionView`) embed it, each
//! adding what is its own (the blob and Kafka coordinates; the storage time and the content).

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use crate::wire::accepted::AcceptedArtifact;

/// The `artifact_versions` columns of an [`ArtifactRow`], in the order [`ArtifactRow::from_pg`]
/// reads them; a query selects these first and its own columns after them.
pub const ROW_COLUMNS: &str = "product_id, artifact_id, version, intent_id, artifact_class, \
     owner_id, requester_id, integration_id, operation, deleted, content_sha256, content_size, \
     content_type, metadata, purpose, client_time_ms, decided_at_ms, policy_version, \
     source_partition, source_offset";

/// How many columns [`ROW_COLUMNS`] names: the index of a query's first own column.
pub const ROW_COLUMN_COUNT: usize = 20;

/// One stored artifact version, content aside.
///
/// The two times are spelled `client_time_ms` and `decided_at_ms` (the database columns and the
/// API fields); index files written before this row existed spell them `client_time` and
/// `decided_at`, which still read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArtifactRow {
    /// Product.
    pub product_id: String,
    /// Artifact id within the product.
    pub artifact_id: String,
    /// Version, from 1.
    pub version: i64,
    /// Intent that produced it (the idempotency check).
    pub intent_id: String,
    /// Artifact class.
    pub artifact_class: String,
    /// Owner.
    pub owner_id: String,
    /// Principal that asked.
    pub requester_id: String,
    /// Integration that produced it.
    pub integration_id: String,
    /// CREATE, UPDATE or DELETE.
    pub operation: String,
    /// True for a tombstone.
    pub deleted: bool,
    /// Hex SHA-256 of the content the gate stamped ("" for a tombstone).
    pub content_sha256: String,
    /// Content length in bytes.
    pub content_size: i64,
    /// MIME type.
    pub content_type: String,
    /// JSON metadata text.
    pub metadata: String,
    /// Provenance.
    pub purpose: String,
    /// Producer clock, ms.
    #[serde(alias = "client_time")]
    pub client_time_ms: i64,
    /// Gate decision time, ms.
    #[serde(alias = "decided_at")]
    pub decided_at_ms: i64,
    /// Policy version of the decision.
    pub policy_version: String,
    /// Source partition of the intent.
    pub source_partition: i32,
    /// Source offset of the intent.
    pub source_offset: i64,
}

impl ArtifactRow {
    /// Reads the row from the first [`ROW_COLUMN_COUNT`] columns of a query that selected
    /// [`ROW_COLUMNS`] first.
    pub fn from_pg(r: &Row) -> Result<ArtifactRow, tokio_postgres::Error> {
        Ok(ArtifactRow {
            product_id: r.try_get(0)?,
            artifact_id: r.try_get(1)?,
            version: r.try_get(2)?,
            intent_id: r.try_get(3)?,
            artifact_class: r.try_get(4)?,
            owner_id: r.try_get(5)?,
            requester_id: r.try_get(6)?,
            integration_id: r.try_get(7)?,
            operation: r.try_get(8)?,
            deleted: r.try_get(9)?,
            content_sha256: r.try_get(10)?,
            content_size: r.try_get(11)?,
            content_type: r.try_get(12)?,
            metadata: r.try_get(13)?,
            purpose: r.try_get(14)?,
            client_time_ms: r.try_get(15)?,
            decided_at_ms: r.try_get(16)?,
            policy_version: r.try_get(17)?,
            source_partition: r.try_get(18)?,
            source_offset: r.try_get(19)?,
        })
    }

    /// The accepted version this row and its `content` store; None when the stored operation
    /// is not one the gate writes (a hand-edited database).
    pub fn into_accepted(self, content: Option<Vec<u8>>) -> Option<AcceptedArtifact> {
        Some(AcceptedArtifact {
            operation: crate::core::Operation::parse(&self.operation)?,
            product_id: self.product_id,
            artifact_id: self.artifact_id,
            version: self.version,
            intent_id: self.intent_id,
            artifact_class: self.artifact_class,
            owner_id: self.owner_id,
            requester_id: self.requester_id,
            integration_id: self.integration_id,
            deleted: self.deleted,
            content,
            content_sha256: self.content_sha256,
            content_size: self.content_size,
            content_type: self.content_type,
            metadata: self.metadata,
            purpose: self.purpose,
            client_time: self.client_time_ms,
            decided_at: self.decided_at_ms,
            policy_version: self.policy_version,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
        })
    }

    /// The row of an accepted version.
    pub fn of(a: &AcceptedArtifact) -> ArtifactRow {
        ArtifactRow {
            product_id: a.product_id.clone(),
            artifact_id: a.artifact_id.clone(),
            version: a.version,
            intent_id: a.intent_id.clone(),
            artifact_class: a.artifact_class.clone(),
            owner_id: a.owner_id.clone(),
            requester_id: a.requester_id.clone(),
            integration_id: a.integration_id.clone(),
            operation: a.operation.as_str().to_string(),
            deleted: a.deleted,
            content_sha256: a.content_sha256.clone(),
            content_size: a.content_size,
            content_type: a.content_type.clone(),
            metadata: a.metadata.clone(),
            purpose: a.purpose.clone(),
            client_time_ms: a.client_time,
            decided_at_ms: a.decided_at,
            policy_version: a.policy_version.clone(),
            source_partition: a.source_partition,
            source_offset: a.source_offset,
        }
    }
}
