//! The codecs as they were before the direct ones (`avro_write`, `avro_read`): the output
//! encoders through an `apache-avro` `Value` tree, and the intent decoder through one. Kept as an
//! oracle: the codecs' property tests check the direct bytes and intents against these, and
//! `benches/gate_core.rs` (feature `bench`) measures both. Not in the production binary.

use apache_avro::Schema;
use apache_avro::types::Value;

use super::WireError;
use super::accepted::AcceptedArtifact;
use super::audit::{
    AuditEvent, DecisionRecord, FactsLayout, SealedLink, StateFacts, facts_layout, hash_span,
    link_hash, schema_of,
};
use super::fields::{operation_value, opt, record, write_datum};
use super::schemas::APPROVED;

/// `intent::decode` as it was: a `Value` tree read by `apache-avro`, then its fields (still the
/// decoder of record for malformed bodies).
pub fn intent_decode(body: &[u8]) -> Result<crate::core::ArtifactIntent, WireError> {
    super::intent::decode_value(body)
}

/// `accepted::encode` through a `Value` tree and `apache-avro`'s writer.
pub fn accepted(a: &AcceptedArtifact) -> Result<Vec<u8>, WireError> {
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

fn facts_value(f: &StateFacts, layout: FactsLayout) -> Value {
    let offender = if layout == FactsLayout::OffenderChange {
        (
            "offender_change",
            opt(f.offender_change.as_ref(), |o| {
                record(vec![
                    ("integration_id", Value::String(o.integration_id.clone())),
                    ("dropped", Value::Long(o.dropped)),
                    ("added_ms", opt(o.added_ms, Value::Long)),
                    ("cooling_until_ms", opt(o.cooling_until_ms, Value::Long)),
                ])
            }),
        )
    } else {
        (
            "offender",
            opt(f.offender.as_ref(), |o| {
                record(vec![
                    ("integration_id", Value::String(o.integration_id.clone())),
                    (
                        "rejections_ms",
                        Value::Array(o.rejections_ms.iter().map(|t| Value::Long(*t)).collect()),
                    ),
                    ("cooling_until_ms", opt(o.cooling_until_ms, Value::Long)),
                ])
            }),
        )
    };
    record(vec![
        ("artifact_delta", Value::Long(f.artifact_delta)),
        ("counted_rejection", Value::Boolean(f.counted_rejection)),
        ("rate_tat_us", opt(f.rate_tat_us, Value::Long)),
        offender,
    ])
}

fn decision_value(d: &DecisionRecord, layout: FactsLayout) -> Value {
    let s = |v: &Option<String>| opt(v.clone(), Value::String);
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    let mut fields = vec![
        ("source_partition", Value::Int(d.source_partition)),
        ("source_offset", Value::Long(d.source_offset)),
        ("value_sha256", Value::String(d.value_sha256.clone())),
        (
            "outcome",
            if d.accepted {
                Value::Enum(0, "ACCEPTED".into())
            } else {
                Value::Enum(1, "REJECTED".into())
            },
        ),
        ("reasons", strings(&d.reasons)),
        ("threats", strings(&d.threats)),
        ("detail", Value::String(d.detail.clone())),
        ("intent_id", s(&d.intent_id)),
        ("product_id", s(&d.product_id)),
        ("integration_id", s(&d.integration_id)),
        ("owner_id", s(&d.owner_id)),
        ("requester_id", s(&d.requester_id)),
        ("artifact_id", s(&d.artifact_id)),
        ("artifact_class", s(&d.artifact_class)),
        ("operation", s(&d.operation)),
        ("version", opt(d.version, Value::Long)),
        ("deleted", Value::Boolean(d.deleted)),
        ("content_size", Value::Long(d.content_size)),
        ("size_delta", Value::Long(d.size_delta)),
        ("content_sha256", s(&d.content_sha256)),
        ("authenticated", Value::Boolean(d.authenticated)),
    ];
    if layout != FactsLayout::None {
        fields.push(("facts", opt(d.facts.as_ref(), |f| facts_value(f, layout))));
    }
    record(fields)
}

fn event_value(e: &AuditEvent, hash: &str, layout: FactsLayout) -> Value {
    record(vec![
        ("seq", Value::Long(e.seq)),
        ("prev_hash", Value::String(e.prev_hash.clone())),
        ("hash", Value::String(hash.to_string())),
        ("recorded_at", Value::TimestampMillis(e.recorded_at)),
        ("gate_id", Value::String(e.gate_id.clone())),
        ("policy_version", Value::String(e.policy_version.clone())),
        (
            "decision",
            opt(e.decision.as_ref(), |d| decision_value(d, layout)),
        ),
        (
            "governance",
            opt(e.governance.as_ref(), |g| {
                record(vec![
                    ("event_type", Value::String(g.event_type.clone())),
                    ("detail", Value::String(g.detail.clone())),
                ])
            }),
        ),
    ])
}

/// `audit::encode_as` through a `Value` tree and `apache-avro`'s writer.
pub fn audit_encode_as(e: &AuditEvent, version: u8) -> Result<Vec<u8>, WireError> {
    write_datum(
        &schema_of(version)?.schema,
        event_value(e, &e.hash, facts_layout(version)?),
    )
}

/// `AuditEvent::seal_as` as it was: encode with `hash` empty, hash, re-encode the hash string
/// and splice it in.
pub fn audit_seal_as(mut e: AuditEvent, version: u8) -> Result<SealedLink, WireError> {
    let canonical = write_datum(
        &schema_of(version)?.schema,
        event_value(&e, "", facts_layout(version)?),
    )?;
    e.hash = link_hash(&e.prev_hash, &canonical)?;
    let (start, end) = hash_span(&canonical)?;
    let mut body = Vec::with_capacity(canonical.len() + 66);
    body.extend_from_slice(&canonical[..start]);
    body.extend_from_slice(&write_datum(
        &Schema::String,
        Value::String(e.hash.clone()),
    )?);
    body.extend_from_slice(&canonical[end..]);
    Ok(SealedLink { event: e, body })
}
