//! `ArtifactIntent` codec: Avro body ⇄ [`ArtifactIntent`].

use apache_avro::types::Value;

use super::WireError;
use super::fields::{Fields, operation, operation_value, opt, read_datum, record, write_datum};
use super::schemas::APPROVED;
use crate::core::ArtifactIntent;

/// Encodes an intent as an Avro body (no Confluent header) with the approved schema.
pub fn encode(i: &ArtifactIntent) -> Result<Vec<u8>, WireError> {
    let value = record(vec![
        ("intent_id", Value::String(i.intent_id.clone())),
        ("product_id", Value::String(i.product_id.clone())),
        ("integration_id", Value::String(i.integration_id.clone())),
        ("owner_id", Value::String(i.owner_id.clone())),
        ("requester_id", Value::String(i.requester_id.clone())),
        ("artifact_id", Value::String(i.artifact_id.clone())),
        ("artifact_class", Value::String(i.artifact_class.clone())),
        ("operation", operation_value(i.operation)),
        ("expected_version", opt(i.expected_version, Value::Long)),
        ("content", opt(i.content.clone(), Value::Bytes)),
        ("content_type", Value::String(i.content_type.clone())),
        ("metadata", Value::String(i.metadata.clone())),
        ("purpose", Value::String(i.purpose.clone())),
        ("client_time", Value::TimestampMillis(i.client_time)),
    ]);
    write_datum(&APPROVED.intent.schema, value)
}

/// Decodes an Avro body written with the approved intent schema.
pub fn decode(body: &[u8]) -> Result<ArtifactIntent, WireError> {
    let mut f = Fields::of(read_datum(&APPROVED.intent.schema, body)?)?;
    Ok(ArtifactIntent {
        intent_id: f.string("intent_id")?,
        product_id: f.string("product_id")?,
        integration_id: f.string("integration_id")?,
        owner_id: f.string("owner_id")?,
        requester_id: f.string("requester_id")?,
        artifact_id: f.string("artifact_id")?,
        artifact_class: f.string("artifact_class")?,
        operation: operation(&mut f)?,
        expected_version: f.opt_long("expected_version")?,
        content: f.opt_bytes("content")?,
        content_type: f.string("content_type")?,
        metadata: f.string("metadata")?,
        purpose: f.string("purpose")?,
        client_time: f.long("client_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Operation;
    use proptest::prelude::*;

    pub(crate) fn sample() -> ArtifactIntent {
        ArtifactIntent {
            intent_id: "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f".into(),
            product_id: "ai_assistant".into(),
            integration_id: "assistant-backend".into(),
            owner_id: "alice".into(),
            requester_id: "alice".into(),
            artifact_id: "doc-1".into(),
            artifact_class: "document".into(),
            operation: Operation::Update,
            expected_version: Some(3),
            content: Some(vec![1, 2, 3]),
            content_type: "text/plain".into(),
            metadata: "{\"a\":1}".into(),
            purpose: "because".into(),
            client_time: 1_700_000_000_123,
        }
    }

    #[test]
    fn round_trip() {
        let i = sample();
        assert_eq!(decode(&encode(&i).unwrap()).unwrap(), i);
    }

    #[test]
    fn truncated_and_trailing_bytes_fail() {
        let body = encode(&sample()).unwrap();
        assert!(decode(&body[..body.len() - 1]).is_err());
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
