//! The stored artifact row: one version's fields as storage keeps them (the `artifact_versions`
//! columns, content aside), written out once. The filesystem index entry
//! ([`super::fs::IndexEntry`]) and the read API's view (`api::read::VersionView`) embed it, each
//! adding what is its own (the blob and Kafka coordinates; the storage time and the content).

use serde::{Deserialize, Serialize};

use crate::wire::accepted::AcceptedArtifact;

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
