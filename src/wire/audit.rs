//! `AuditEvent` codec and the hash-chain link: what the gate writes to `bucket.audit`.
//!
//! Canonical encoding: the Avro binary datum of the event (approved `AuditEvent` schema) with
//! `hash` set to the empty string. `hash = SHA-256(prev_hash_hex_ascii || canonical)`, in hex.

use apache_avro::types::Value;
use sha2::{Digest, Sha256};

use super::WireError;
use super::fields::{Fields, opt, read_datum, record, write_datum};
use super::schemas::APPROVED;

/// `prev_hash` of the first link of every partition's chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A decision as recorded in the audit log: enough to rebuild gate state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecisionRecord {
    /// Partition of the intent.
    pub source_partition: i32,
    /// Offset of the intent.
    pub source_offset: i64,
    /// Hex SHA-256 of the intent value bytes.
    pub value_sha256: String,
    /// True when accepted.
    pub accepted: bool,
    /// Reason codes, rule order.
    pub reasons: Vec<String>,
    /// Threat ids.
    pub threats: Vec<String>,
    /// Detail of the first reason.
    pub detail: String,
    /// Intent id, if decoded.
    pub intent_id: Option<String>,
    /// Product id, if decoded.
    pub product_id: Option<String>,
    /// Integration id, if decoded.
    pub integration_id: Option<String>,
    /// Owner id (the artifact's owner after an accepted change).
    pub owner_id: Option<String>,
    /// Requester id, if decoded.
    pub requester_id: Option<String>,
    /// Artifact id, if decoded.
    pub artifact_id: Option<String>,
    /// Artifact class (the artifact's class after an accepted change).
    pub artifact_class: Option<String>,
    /// Operation, if decoded.
    pub operation: Option<String>,
    /// Assigned version (accepted) or current version (conflict).
    pub version: Option<i64>,
    /// True when the accepted change is a tombstone.
    pub deleted: bool,
    /// Size of the content of the new version.
    pub content_size: i64,
    /// Change in the product's stored bytes.
    pub size_delta: i64,
    /// Hex SHA-256 of the content, if any.
    pub content_sha256: Option<String>,
    /// The intent passed authenticity checks (its id is remembered against replays).
    pub authenticated: bool,
}

/// An event about the gate itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceRecord {
    /// Event type, e.g. `GATE_STARTED`.
    pub event_type: String,
    /// JSON text with the event's fields.
    pub detail: String,
}

/// One link of a partition's audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the chain, from 0.
    pub seq: i64,
    /// Hash of the previous link.
    pub prev_hash: String,
    /// Hash of this link (see module docs).
    pub hash: String,
    /// Gate clock, ms.
    pub recorded_at: i64,
    /// Writer instance.
    pub gate_id: String,
    /// Policy version in force.
    pub policy_version: String,
    /// The decision, for decision events.
    pub decision: Option<DecisionRecord>,
    /// The governance event, for governance events.
    pub governance: Option<GovernanceRecord>,
}

fn decision_value(d: &DecisionRecord) -> Value {
    let s = |v: &Option<String>| opt(v.clone(), Value::String);
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    record(vec![
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
    ])
}

fn event_value(e: &AuditEvent, hash: &str) -> Value {
    record(vec![
        ("seq", Value::Long(e.seq)),
        ("prev_hash", Value::String(e.prev_hash.clone())),
        ("hash", Value::String(hash.to_string())),
        ("recorded_at", Value::TimestampMillis(e.recorded_at)),
        ("gate_id", Value::String(e.gate_id.clone())),
        ("policy_version", Value::String(e.policy_version.clone())),
        ("decision", opt(e.decision.as_ref(), decision_value)),
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

/// The chain hash of `e` (its `hash` field is ignored).
pub fn chain_hash(e: &AuditEvent) -> Result<String, WireError> {
    let canonical = write_datum(&APPROVED.audit.schema, event_value(e, ""))?;
    let mut h = Sha256::new();
    h.update(e.prev_hash.as_bytes());
    h.update(&canonical);
    Ok(hex::encode(h.finalize()))
}

impl AuditEvent {
    /// Fills `hash` from the other fields, making this a valid link after `prev_hash`.
    pub fn seal(mut self) -> Result<AuditEvent, WireError> {
        self.hash = chain_hash(&self)?;
        Ok(self)
    }
}

/// Encodes an event as an Avro body (no Confluent header).
pub fn encode(e: &AuditEvent) -> Result<Vec<u8>, WireError> {
    write_datum(&APPROVED.audit.schema, event_value(e, &e.hash))
}

/// Decodes an Avro body written with the approved audit schema.
pub fn decode(body: &[u8]) -> Result<AuditEvent, WireError> {
    let mut f = Fields::of(read_datum(&APPROVED.audit.schema, body)?)?;
    let decision = match f.opt_record("decision")? {
        None => None,
        Some(mut d) => Some(DecisionRecord {
            source_partition: d.int("source_partition")?,
            source_offset: d.long("source_offset")?,
            value_sha256: d.string("value_sha256")?,
            accepted: d.string("outcome")? == "ACCEPTED",
            reasons: d.strings("reasons")?,
            threats: d.strings("threats")?,
            detail: d.string("detail")?,
            intent_id: d.opt_string("intent_id")?,
            product_id: d.opt_string("product_id")?,
            integration_id: d.opt_string("integration_id")?,
            owner_id: d.opt_string("owner_id")?,
            requester_id: d.opt_string("requester_id")?,
            artifact_id: d.opt_string("artifact_id")?,
            artifact_class: d.opt_string("artifact_class")?,
            operation: d.opt_string("operation")?,
            version: d.opt_long("version")?,
            deleted: d.boolean("deleted")?,
            content_size: d.long("content_size")?,
            size_delta: d.long("size_delta")?,
            content_sha256: d.opt_string("content_sha256")?,
            authenticated: d.boolean("authenticated")?,
        }),
    };
    let governance = match f.opt_record("governance")? {
        None => None,
        Some(mut g) => Some(GovernanceRecord {
            event_type: g.string("event_type")?,
            detail: g.string("detail")?,
        }),
    };
    Ok(AuditEvent {
        seq: f.long("seq")?,
        prev_hash: f.string("prev_hash")?,
        hash: f.string("hash")?,
        recorded_at: f.long("recorded_at")?,
        gate_id: f.string("gate_id")?,
        policy_version: f.string("policy_version")?,
        decision,
        governance,
    })
}

/// Decodes a Confluent-framed value from `bucket.audit`.
pub fn decode_framed(value: Option<&[u8]>) -> Result<AuditEvent, WireError> {
    let (_id, body) = super::framing::unframe(value)?;
    decode(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, prev: &str) -> AuditEvent {
        AuditEvent {
            seq,
            prev_hash: prev.to_string(),
            hash: String::new(),
            recorded_at: 5,
            gate_id: "g".into(),
            policy_version: "p".into(),
            decision: Some(DecisionRecord {
                source_offset: seq,
                reasons: vec!["KEY_MISMATCH".into()],
                product_id: Some("ai_assistant".into()),
                ..Default::default()
            }),
            governance: None,
        }
    }

    #[test]
    fn round_trip_and_chain() {
        let a = event(0, GENESIS_HASH).seal().unwrap();
        let b = event(1, &a.hash).seal().unwrap();
        assert_eq!(decode(&encode(&b).unwrap()).unwrap(), b);
        assert_eq!(chain_hash(&b).unwrap(), b.hash);
        let mut tampered = b.clone();
        tampered.decision.as_mut().unwrap().reasons.clear();
        assert_ne!(chain_hash(&tampered).unwrap(), b.hash);
    }
}
