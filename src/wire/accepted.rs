//! `AcceptedArtifact` codec: what the gate writes to `bucket.accepted` and the sink stores.

use super::WireError;
use super::fields::{Fields, operation, operation_index, read_datum};
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
        self.borrowed().key()
    }

    /// The same artifact as borrowed fields, for [`encode_ref_into`].
    pub fn borrowed(&self) -> AcceptedRef<'_> {
        AcceptedRef {
            intent_id: &self.intent_id,
            product_id: &self.product_id,
            integration_id: &self.integration_id,
            owner_id: &self.owner_id,
            requester_id: &self.requester_id,
            artifact_id: &self.artifact_id,
            artifact_class: &self.artifact_class,
            operation: self.operation,
            version: self.version,
            deleted: self.deleted,
            content: self.content.as_deref(),
            content_sha256: &self.content_sha256,
            content_size: self.content_size,
            content_type: &self.content_type,
            metadata: &self.metadata,
            purpose: &self.purpose,
            client_time: self.client_time,
            decided_at: self.decided_at,
            policy_version: &self.policy_version,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
        }
    }
}

/// An accepted artifact whose texts and content are borrowed (from the intent and the
/// decision): the gate encodes one per accepted intent without copying its content and a
/// dozen strings into an [`AcceptedArtifact`] first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedRef<'a> {
    /// Intent that produced this version.
    pub intent_id: &'a str,
    /// Owning product.
    pub product_id: &'a str,
    /// Integration that sent the intent.
    pub integration_id: &'a str,
    /// Artifact owner.
    pub owner_id: &'a str,
    /// Principal that asked.
    pub requester_id: &'a str,
    /// Artifact id within the product.
    pub artifact_id: &'a str,
    /// Artifact class.
    pub artifact_class: &'a str,
    /// Operation that produced this version.
    pub operation: Operation,
    /// Version assigned by the gate.
    pub version: i64,
    /// True for a DELETE tombstone.
    pub deleted: bool,
    /// Content bytes (None for a tombstone).
    pub content: Option<&'a [u8]>,
    /// Hex SHA-256 of the content ("" for a tombstone).
    pub content_sha256: &'a str,
    /// Content length in bytes.
    pub content_size: i64,
    /// MIME type.
    pub content_type: &'a str,
    /// JSON metadata text.
    pub metadata: &'a str,
    /// Provenance: why.
    pub purpose: &'a str,
    /// Producer clock, ms.
    pub client_time: i64,
    /// Gate clock at decision, ms.
    pub decided_at: i64,
    /// Policy version of the decision.
    pub policy_version: &'a str,
    /// Source partition in `bucket.intents`.
    pub source_partition: i32,
    /// Source offset in `bucket.intents`.
    pub source_offset: i64,
}

impl AcceptedRef<'_> {
    /// Record key on `bucket.accepted`: `product_id/artifact_id`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.product_id, self.artifact_id)
    }
}

/// Encodes an accepted artifact as an Avro body (no Confluent header). Cannot fail since it
/// writes directly ([`encode_into`]); the `Result` is kept for its callers.
pub fn encode(a: &AcceptedArtifact) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(encoded_len_hint(a));
    encode_into(a, &mut out);
    Ok(out)
}

/// Appends the Avro body of an accepted artifact to `out` (a reused buffer, or one that already
/// holds the Confluent header): the approved schema's fields in order, written directly, no
/// `Value` tree. Byte-identical to `apache-avro`'s encoding (property test below).
pub fn encode_into(a: &AcceptedArtifact, out: &mut Vec<u8>) {
    encode_ref_into(&a.borrowed(), out);
}

/// [`encode_into`] from borrowed fields.
pub fn encode_ref_into(a: &AcceptedRef<'_>, out: &mut Vec<u8>) {
    use super::avro_write::{boolean, bytes, enum_index, int, long, string, union_null};
    string(out, a.intent_id);
    string(out, a.product_id);
    string(out, a.integration_id);
    string(out, a.owner_id);
    string(out, a.requester_id);
    string(out, a.artifact_id);
    string(out, a.artifact_class);
    enum_index(out, operation_index(a.operation));
    long(out, a.version);
    boolean(out, a.deleted);
    union_null(out, a.content, bytes);
    string(out, a.content_sha256);
    long(out, a.content_size);
    string(out, a.content_type);
    string(out, a.metadata);
    string(out, a.purpose);
    long(out, a.client_time); // timestamp-millis
    long(out, a.decided_at); // timestamp-millis
    string(out, a.policy_version);
    int(out, a.source_partition);
    long(out, a.source_offset);
}

/// An upper bound of the encoded size: the variable parts plus at most 10 bytes per field.
fn encoded_len_hint(a: &AcceptedArtifact) -> usize {
    [
        &a.intent_id,
        &a.product_id,
        &a.integration_id,
        &a.owner_id,
        &a.requester_id,
        &a.artifact_id,
        &a.artifact_class,
        &a.content_sha256,
        &a.content_type,
        &a.metadata,
        &a.purpose,
        &a.policy_version,
    ]
    .iter()
    .map(|s| s.len())
    .sum::<usize>()
        + a.content.as_ref().map_or(0, Vec::len)
        + 21 * 10
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
    use proptest::prelude::*;

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

    /// Any text: unicode of every plane, control characters, empty.
    pub(crate) fn text() -> impl Strategy<Value = String> {
        "(?s).{0,24}"
    }

    /// Longs with the edges well represented (varint lengths 1 and 10, sign changes).
    pub(crate) fn long() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            Just(63),
            Just(64),
            -200i64..200,
            any::<i64>(),
        ]
    }

    /// Ints with the edges well represented.
    pub(crate) fn int() -> impl Strategy<Value = i32> {
        prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(0), any::<i32>()]
    }

    fn arb_accepted() -> impl Strategy<Value = AcceptedArtifact> {
        let ids = (text(), text(), text(), text(), text(), text(), text());
        let op = prop_oneof![
            Just(Operation::Create),
            Just(Operation::Update),
            Just(Operation::Delete)
        ];
        let content = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200));
        let rest = (
            op,
            long(),
            any::<bool>(),
            content,
            text(),
            long(),
            (text(), text(), text()),
            (long(), long()),
            text(),
            int(),
            long(),
        );
        (ids, rest).prop_map(|(ids, rest)| {
            let (intent_id, product_id, integration_id, owner_id, requester_id, artifact_id, class) =
                ids;
            let (
                operation,
                version,
                deleted,
                content,
                content_sha256,
                content_size,
                (content_type, metadata, purpose),
                (client_time, decided_at),
                policy_version,
                source_partition,
                source_offset,
            ) = rest;
            AcceptedArtifact {
                intent_id,
                product_id,
                integration_id,
                owner_id,
                requester_id,
                artifact_id,
                artifact_class: class,
                operation,
                version,
                deleted,
                content,
                content_sha256,
                content_size,
                content_type,
                metadata,
                purpose,
                client_time,
                decided_at,
                policy_version,
                source_partition,
                source_offset,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The direct encoder writes exactly `apache-avro`'s bytes, and they decode back.
        #[test]
        fn direct_encoding_is_apache_avros(a in arb_accepted()) {
            let direct = encode(&a).unwrap();
            prop_assert_eq!(&direct, &crate::wire::value_oracle::accepted(&a).unwrap());
            prop_assert_eq!(decode(&direct).unwrap(), a.clone());
            // Appending leaves what the buffer held (a frame header) alone.
            let mut framed = vec![0, 0, 0, 0, 9];
            encode_into(&a, &mut framed);
            prop_assert_eq!(&framed[..5], &[0, 0, 0, 0, 9]);
            prop_assert_eq!(&framed[5..], &direct[..]);
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
