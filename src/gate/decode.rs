//! Turns a record value into an intent or a decode verdict. Registry trouble is an `Err`, never a
//! verdict: the caller waits and retries.

use crate::core::{ArtifactIntent, DecodeFailure, ReasonCode};
use crate::registry::{Registry, RegistryError, SchemaVerdict};
use crate::wire::{WireError, framing, intent};

/// Decodes one `bucket.intents` value: framing, schema approval, Avro body.
pub async fn decode_intent(
    registry: &Registry,
    value: Option<&[u8]>,
) -> Result<Result<ArtifactIntent, DecodeFailure>, RegistryError> {
    let (id, body) = match framing::unframe(value) {
        Ok(split) => split,
        Err(e) => return Ok(Err(failure(ReasonCode::MalformedRecord, e.to_string()))),
    };
    match registry.verdict(id).await? {
        SchemaVerdict::Unknown => Ok(Err(failure(
            ReasonCode::UnknownSchemaId,
            format!("schema id {id} is not known to the registry"),
        ))),
        SchemaVerdict::NotApproved(fp) => Ok(Err(failure(
            ReasonCode::SchemaNotApproved,
            format!("schema id {id} (canonical fingerprint {fp}) is not an approved intent schema"),
        ))),
        SchemaVerdict::ApprovedIntent => Ok(intent::decode(body).map_err(|e| match e {
            WireError::Field { .. } => failure(ReasonCode::InvalidField, e.to_string()),
            other => failure(ReasonCode::MalformedAvro, other.to_string()),
        })),
    }
}

fn failure(reason: ReasonCode, detail: String) -> DecodeFailure {
    DecodeFailure { reason, detail }
}
