//! `AcceptedArtifact` codec: what the gate writes to `bucket.accepted` and the sink stores.

use apache_avro::types::Value;

use super::WireError;
use super::fields::{Fields, operation, operation_value, opt, read_datum, record, write_datum};
use super::schemas::APPROVED;
use crate::core::Operation;

/// One accepted artifact version (schema `schemas/accepted_artifact.avsc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedArtifact {
    /// Intent that produced this version.
    pub intent_id: String,
    /// Owning product.
    pub product_id: String,
    /// Integration that sent the intent.
    pub integration_id: String,
    /// Artifact owner.
    pub owner_id: String,
    /// Principal that asked.
    pub requester_id: String,
    /// Artifact id within the product.
    pub artifact_id: String,
    /// Artifact class.
    pub artifact_class: String,
    /// Operation that produced this version.
    pub operation: Operation,
    /// Version assigned by the gate.
    pub version: i64,
    /// True for a DELETE tombstone.
    pub deleted: bool,
    /// Content bytes (None for a tombstone).
    pub content: Option<Vec<u8>>,
    /// Hex SHA-256 of the content ("" for a tombstone).
    pub content_sha256: String,
    /// Content length in bytes.
    pub content_size: i64,
    /// MIME type.
    pub content_type: String,
    /// JSON metadata text.
    pub metadata: String,
    /// Provenance: why.
    pub purpose: String,
    /// Producer clock, ms.
    pub client_time: i64,
    /// Gate clock at decision, ms.
    pub decided_at: i64,
    /// Policy version of the decision.
    pub policy_version: String,
    /// Source partition in `bucket.intents`.
    pub source_partition: i32,
    /// Source offset in `bucket.intents`.
    pub source_offset: i64,
}

impl AcceptedArtifact {
    /// Record key on `bucket.accepted`: `product_id/artifact_id`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.product_id, self.artifact_id)
    }
}

/// Encodes an accepted artifact as an Avro body (no Confluent header).
pub fn encode(a: &AcceptedArtifact) -> Result<Vec<u8>, WireError> {
    let value = record(vec![
        ("intent_id", Value::String(a.intent_id.clone())),
        ("product_id", Value::String(a.product_id.clone())),
        ("integration_id", Value::String(a.integration_id.clone())),
        ("owner_id", Value::String(a.owner_id.clone())),
        ("requester_id", Value::String(a.requester_id.clone())),
        ("artifact_id", Value::String(a.artifact_id.clone())),
        ("artifact_class", Value::String(a.artifact_class.clone())),
        ("operation", operation_value(a.operation)),
        ("version", Value::Long(a.version)),
        ("deleted", Value::Boolean(a.deleted)),
        ("content", opt(a.content.clone(), Value::Bytes)),
        ("content_sha256", Value::String(a.content_sha256.clone())),
        ("content_size", Value::Long(a.content_size)),
        ("content_type", Value::String(a.content_type.clone())),
        ("metadata", Value::String(a.metadata.clone())),
        ("purpose", Value::String(a.purpose.clone())),
        ("client_time", Value::TimestampMillis(a.client_time)),
        ("decided_at", Value::TimestampMillis(a.decided_at)),
        ("policy_version", Value::String(a.policy_version.clone())),
        ("source_partition", Value::Int(a.source_partition)),
        ("source_offset", Value::Long(a.source_offset)),
    ]);
    write_datum(&APPROVED.accepted.schema, value)
}

/// Decodes an Avro body written with the approved accepted-artifact schema.
pub fn decode(body: &[u8]) -> Result<AcceptedArtifact, WireError> {
    let mut f = Fields::of(read_datum(&APPROVED.accepted.schema, body)?)?;
    Ok(AcceptedArtifact {
        intent_id: f.string("intent_id")?,
        product_id: f.string("product_id")?,
        integration_id: f.string("integration_id")?,
        owner_id: f.string("owner_id")?,
        requester_id: f.string("requester_id")?,
        artifact_id: f.string("artifact_id")?,
        artifact_class: f.string("artifact_class")?,
        operation: operation(&mut f)?,
        version: f.long("version")?,
        deleted: f.boolean("deleted")?,
        content: f.opt_bytes("content")?,
        content_sha256: f.string("content_sha256")?,
        content_size: f.long("content_size")?,
        content_type: f.string("content_type")?,
        metadata: f.string("metadata")?,
        purpose: f.string("purpose")?,
        client_time: f.long("client_time")?,
        decided_at: f.long("decided_at")?,
        policy_version: f.string("policy_version")?,
        source_partition: f.int("source_partition")?,
        source_offset: f.long("source_offset")?,
    })
}

/// Decodes a Confluent-framed value from `bucket.accepted` (the schema id must be the approved
/// accepted schema's; the caller checks the id when it cares, the sink trusts the gate's topic).
pub fn decode_framed(value: Option<&[u8]>) -> Result<AcceptedArtifact, WireError> {
    let (_id, body) = super::framing::unframe(value)?;
    decode(body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sample accepted artifact for tests.
    pub(crate) fn sample() -> AcceptedArtifact {
        AcceptedArtifact {
            intent_id: "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f".into(),
            product_id: "ai_assistant".into(),
            integration_id: "assistant-backend".into(),
            owner_id: "alice".into(),
            requester_id: "alice".into(),
            artifact_id: "doc-1".into(),
            artifact_class: "document".into(),
            operation: Operation::Create,
            version: 1,
            deleted: false,
            content: Some(b"hi".to_vec()),
            content_sha256: "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
                .into(),
            content_size: 2,
            content_type: "text/plain".into(),
            metadata: "{}".into(),
            purpose: "demo".into(),
            client_time: 1,
            decided_at: 2,
            policy_version: "p".into(),
            source_partition: 0,
            source_offset: 7,
        }
    }

    #[test]
    fn round_trip_framed() {
        let a = sample();
        let framed = super::super::framing::frame(9, &encode(&a).unwrap());
        assert_eq!(decode_framed(Some(&framed)).unwrap(), a);
        assert_eq!(a.key(), "ai_assistant/doc-1");
    }
}
