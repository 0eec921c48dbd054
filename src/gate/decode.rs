//! Turns a record value into an intent or a decode verdict. Registry trouble is an `Err`, never a
//! verdict: the caller waits and retries.

use tokio::runtime::Handle;

use crate::core::{ArtifactIntent, DecodeFailure, ReasonCode};
use crate::kafka::registry::{Registry, RegistryError, SchemaVerdict};
use crate::wire::{WireError, framing, intent};

/// Decodes one `bucket.intents` value: framing, schema approval, Avro body. The registry is
/// asked (on `rt`) only about a schema id it has not answered before: the loop thread does not
/// enter the runtime for every intent.
pub fn decode_intent(
    rt: &Handle,
    registry: &Registry,
    value: Option<&[u8]>,
) -> Result<Result<ArtifactIntent, DecodeFailure>, RegistryError> {
    let (id, body) = match framing::unframe(value) {
        Ok(split) => split,
        Err(e) => return Ok(Err(failure(ReasonCode::MalformedRecord, e.to_string()))),
    };
    let verdict = match registry.cached(id) {
        Some(v) => v,
        None => rt.block_on(registry.verdict(id))?,
    };
    match verdict {
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
