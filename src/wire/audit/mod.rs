//! `AuditEvent` codec and the hash-chain link: what the gate writes to `bucket.audit`.
//!
//! The audit log is kept forever and its schema evolves: every version is its own file in
//! `schemas/` (`audit_event.v1.avsc`, `audit_event.v2.avsc`, ...), a record is decoded with the
//! version that wrote it (named by the frame's schema id, see [`AuditReader`]), and a link's hash
//! is computed over the bytes as stored, so no reader's schema enters it:
//!
//! `hash = SHA-256(prev_hash_hex_ascii || canonical)`, in hex, where `canonical` is the stored
//! Avro body with the `hash` string replaced by the empty string. Every version starts with
//! `seq: long, prev_hash: string, hash: string` (checked by a unit test), so `canonical` is
//! found without knowing the rest of the schema. For version 1 this is exactly the original
//! definition (the body encoded with `hash` empty), so chains written before versions existed
//! verify unchanged.
//!
//! Links are encoded directly from the structs (`avro_write`, one function per record, fields in
//! schema order), byte-identical to `apache-avro`'s encoding of the same schema version (property
//! tests against `value_oracle`); sealing writes the body once. Reading stays with
//! `apache-avro` and the writer's schema.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use sha2::{Digest, Sha256};

use super::WireError;
use super::avro_write;
use super::fields::{Fields, read_datum};
use super::schemas::{APPROVED, ApprovedSchema};
use crate::core::state::OffenderChange;

mod versions;
pub use versions::{AuditVersion, FactsLayout, LATEST_VERSION, VERSIONS};

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
    /// What the decision changed in the gate's state (version 2 on; None in version 1 links).
    pub facts: Option<StateFacts>,
}

/// The typed state changes of a decision: restore applies them as recorded, so it never
/// re-derives state from reason codes or from a policy that was not in force at the time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateFacts {
    /// Change in the product's live artifact count (+1 create, -1 delete, 0 otherwise).
    pub artifact_delta: i64,
    /// The rejection counted towards the integration's repeat-offender window.
    pub counted_rejection: bool,
    /// The product's GCRA arrival time after the decision (µs), when it was charged.
    pub rate_tat_us: Option<i64>,
    /// The integration's offender state after the decision, when it changed (version 2).
    pub offender: Option<OffenderFacts>,
    /// How the decision changed the integration's offender state, when it did (version 3 on:
    /// a few numbers, where version 2's `offender` holds the whole window).
    pub offender_change: Option<OffenderChangeFacts>,
}

/// How a decision changed an integration's repeat-offender state (audit version 3 on).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffenderChangeFacts {
    /// The integration.
    pub integration_id: String,
    /// Oldest counted rejections that left the window.
    pub dropped: i64,
    /// Time (ms) of the counted rejection added to the window.
    pub added_ms: Option<i64>,
    /// End of the cooling-off (ms) after the decision, if cooling.
    pub cooling_until_ms: Option<i64>,
}

/// An integration's repeat-offender state as recorded in a decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffenderFacts {
    /// The integration.
    pub integration_id: String,
    /// Times (ms) of the counted rejections in the window, oldest first.
    pub rejections_ms: Vec<i64>,
    /// End of the cooling-off (ms), if cooling.
    pub cooling_until_ms: Option<i64>,
}

impl From<&OffenderChange> for OffenderChangeFacts {
    fn from(c: &OffenderChange) -> Self {
        OffenderChangeFacts {
            integration_id: c.integration.clone(),
            dropped: i64::from(c.dropped),
            added_ms: c.added,
            cooling_until_ms: c.cooling_until,
        }
    }
}

impl OffenderChangeFacts {
    /// The change as the core applies it; a `dropped` out of range (a foreign link) is
    /// clamped, and dropping more than the window holds empties it.
    pub fn change(&self) -> OffenderChange {
        OffenderChange {
            integration: self.integration_id.clone(),
            dropped: u32::try_from(self.dropped.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX),
            added: self.added_ms,
            cooling_until: self.cooling_until_ms,
        }
    }
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

/// The encoded size of the `hash` field of a sealed link: a 64-character hex string is its
/// length prefix (the long 64, two bytes) and the 64 bytes.
const HASH_FIELD_LEN: usize = 66;

/// The facts layout of audit schema `version` (its row of [`VERSIONS`]).
pub fn facts_layout(version: u8) -> Result<FactsLayout, WireError> {
    schema_of(version)?;
    versions::row(version)
        .map(|r| r.facts)
        .ok_or_else(|| WireError::Avro(format!("audit schema version {version} is not approved")))
}

/// Appends a link body under a version's facts layout with `hash` as given.
/// Fields in schema order.
fn write_link(out: &mut Vec<u8>, e: &AuditEvent, hash: &str, facts: FactsLayout) {
    avro_write::long(out, e.seq);
    avro_write::string(out, &e.prev_hash);
    avro_write::string(out, hash);
    write_after_hash(out, e, facts);
}

/// The fields after `hash`: `recorded_at` (timestamp-millis) to `governance`.
fn write_after_hash(out: &mut Vec<u8>, e: &AuditEvent, facts: FactsLayout) {
    use avro_write::{long, string, union_null};
    long(out, e.recorded_at);
    string(out, &e.gate_id);
    string(out, &e.policy_version);
    union_null(out, e.decision.as_ref(), |out, d| {
        write_decision(out, d, facts)
    });
    union_null(out, e.governance.as_ref(), |out, g| {
        string(out, &g.event_type);
        string(out, &g.detail);
    });
}

fn write_decision(out: &mut Vec<u8>, d: &DecisionRecord, facts: FactsLayout) {
    use avro_write::{array, boolean, enum_index, int, long, string, union_null};
    int(out, d.source_partition);
    long(out, d.source_offset);
    string(out, &d.value_sha256);
    // Outcome symbols: ACCEPTED, REJECTED.
    enum_index(out, if d.accepted { 0 } else { 1 });
    array(out, &d.reasons, |out, s| string(out, s));
    array(out, &d.threats, |out, s| string(out, s));
    string(out, &d.detail);
    union_null(out, d.intent_id.as_deref(), string);
    union_null(out, d.product_id.as_deref(), string);
    union_null(out, d.integration_id.as_deref(), string);
    union_null(out, d.owner_id.as_deref(), string);
    union_null(out, d.requester_id.as_deref(), string);
    union_null(out, d.artifact_id.as_deref(), string);
    union_null(out, d.artifact_class.as_deref(), string);
    union_null(out, d.operation.as_deref(), string);
    union_null(out, d.version, long);
    boolean(out, d.deleted);
    long(out, d.content_size);
    long(out, d.size_delta);
    union_null(out, d.content_sha256.as_deref(), string);
    boolean(out, d.authenticated);
    if facts != FactsLayout::None {
        union_null(out, d.facts.as_ref(), |out, f| write_facts(out, f, facts));
    }
}

fn write_facts(out: &mut Vec<u8>, f: &StateFacts, layout: FactsLayout) {
    use avro_write::{array, boolean, long, string, union_null};
    long(out, f.artifact_delta);
    boolean(out, f.counted_rejection);
    union_null(out, f.rate_tat_us, long);
    if layout == FactsLayout::WholeOffender {
        union_null(out, f.offender.as_ref(), |out, o| {
            string(out, &o.integration_id);
            array(out, &o.rejections_ms, |out, t| long(out, *t));
            union_null(out, o.cooling_until_ms, long);
        });
    } else {
        union_null(out, f.offender_change.as_ref(), |out, o| {
            string(out, &o.integration_id);
            long(out, o.dropped);
            union_null(out, o.added_ms, long);
            union_null(out, o.cooling_until_ms, long);
        });
    }
}

/// An upper bound of a link's encoded size (hash field included), so its buffer is allocated
/// once: the variable parts plus at most 10 bytes for every other field.
fn len_hint(e: &AuditEvent) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let list = |v: &[String]| v.iter().map(|s| s.len() + 10).sum::<usize>();
    let mut n = 80 + HASH_FIELD_LEN + e.prev_hash.len() + e.gate_id.len() + e.policy_version.len();
    if let Some(d) = &e.decision {
        n += 300
            + d.value_sha256.len()
            + d.detail.len()
            + list(&d.reasons)
            + list(&d.threats)
            + opt(&d.intent_id)
            + opt(&d.product_id)
            + opt(&d.integration_id)
            + opt(&d.owner_id)
            + opt(&d.requester_id)
            + opt(&d.artifact_id)
            + opt(&d.artifact_class)
            + opt(&d.operation)
            + opt(&d.content_sha256);
        if let Some(f) = &d.facts {
            if let Some(o) = &f.offender {
                n += o.integration_id.len() + 10 * o.rejections_ms.len();
            }
            if let Some(o) = &f.offender_change {
                n += o.integration_id.len();
            }
        }
    }
    if let Some(g) = &e.governance {
        n += 30 + g.event_type.len() + g.detail.len();
    }
    n
}

pub(super) fn schema_of(version: u8) -> Result<&'static ApprovedSchema, WireError> {
    APPROVED
        .audit(version)
        .ok_or_else(|| WireError::Avro(format!("audit schema version {version} is not approved")))
}

static STRING_SCHEMA: Schema = Schema::String;

/// The fields every audit version starts with, up to `hash`: a reader of this prefix finds the
/// `hash` string in stored bytes of any version.
static LINK_PREFIX: LazyLock<Option<(GenericDatumReader<'static>, GenericDatumReader<'static>)>> =
    LazyLock::new(|| {
        static BEFORE_HASH: LazyLock<Option<Schema>> = LazyLock::new(|| {
            Schema::parse_str(
                r#"{"type":"record","name":"LinkPrefix","fields":[
                    {"name":"seq","type":"long"},{"name":"prev_hash","type":"string"}]}"#,
            )
            .ok()
        });
        let before = BEFORE_HASH.as_ref()?;
        Some((
            GenericDatumReader::builder(before).build().ok()?,
            GenericDatumReader::builder(&STRING_SCHEMA).build().ok()?,
        ))
    });

/// Where the `hash` string (length prefix and bytes) lies in a stored body.
pub(super) fn hash_span(body: &[u8]) -> Result<(usize, usize), WireError> {
    let avro = |e: apache_avro::Error| WireError::Avro(format!("audit link prefix: {e}"));
    let (before, hash) = LINK_PREFIX
        .as_ref()
        .ok_or_else(|| WireError::Avro("audit link prefix schema".into()))?;
    let mut cursor = body;
    before.read_value(&mut cursor).map_err(avro)?;
    let start = body.len() - cursor.len();
    hash.read_value(&mut cursor).map_err(avro)?;
    Ok((start, body.len() - cursor.len()))
}

fn hash_hex(prev_hash: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    for p in parts {
        h.update(p);
    }
    super::digest::hex_lower(&h.finalize())
}

/// The chain hash of a stored link body (any version): SHA-256 of `prev_hash` and the body with
/// its `hash` emptied (module docs).
pub fn link_hash(prev_hash: &str, body: &[u8]) -> Result<String, WireError> {
    let (start, end) = hash_span(body)?;
    Ok(hash_hex(prev_hash, &[&body[..start], &[0u8], &body[end..]]))
}

/// A link sealed and encoded once: the event with its hash, and the body that hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLink {
    /// The event, `hash` filled in.
    pub event: AuditEvent,
    /// Avro body under the writer version (no Confluent header).
    pub body: Vec<u8>,
}

impl AuditEvent {
    /// Fills `hash` and encodes the link under audit schema `version`, encoding it once: the
    /// hash is computed over the body with `hash` empty and then written into it.
    pub fn seal_as(mut self, version: u8) -> Result<SealedLink, WireError> {
        let mut body = Vec::with_capacity(len_hint(&self));
        self.seal_into(version, &mut body)?;
        Ok(SealedLink { event: self, body })
    }

    /// Fills `hash` and appends the sealed link body under audit schema `version` to `out` (a
    /// reused buffer, or one holding the Confluent header already). Writes the body once, with
    /// room for the hash string; hashes `prev_hash` and the body as it would be with `hash`
    /// empty (the room read as the single 0 byte of an empty string, see [`link_hash`]); then
    /// writes the hash string into the room.
    pub fn seal_into(&mut self, version: u8, out: &mut Vec<u8>) -> Result<(), WireError> {
        let facts = facts_layout(version)?;
        let start = out.len();
        avro_write::long(out, self.seq);
        avro_write::string(out, &self.prev_hash);
        let at = out.len();
        out.resize(at + HASH_FIELD_LEN, 0);
        write_after_hash(out, self, facts);
        let hash = hash_hex(
            &self.prev_hash,
            &[&out[start..at], &[0u8], &out[at + HASH_FIELD_LEN..]],
        );
        let mut field = Vec::with_capacity(HASH_FIELD_LEN);
        avro_write::string(&mut field, &hash);
        match out.get_mut(at..at + HASH_FIELD_LEN) {
            Some(room) if field.len() == HASH_FIELD_LEN => room.copy_from_slice(&field),
            _ => {
                out.truncate(start);
                return Err(WireError::Avro("audit hash field size".into()));
            }
        }
        self.hash = hash;
        Ok(())
    }

    /// Fills `hash` as the latest audit version would (tests and tools building chains).
    pub fn seal(self) -> Result<AuditEvent, WireError> {
        Ok(self.seal_as(LATEST_VERSION)?.event)
    }
}

/// The chain hash `e` has when written under the latest audit version (its `hash` is ignored).
/// Readers of stored links use [`link_hash`] over the stored bytes instead.
pub fn chain_hash(e: &AuditEvent) -> Result<String, WireError> {
    let facts = facts_layout(LATEST_VERSION)?;
    let mut canonical = Vec::with_capacity(len_hint(e));
    write_link(&mut canonical, e, "", facts);
    Ok(hash_hex(&e.prev_hash, &[&canonical]))
}

/// Encodes an event (hash as given) under the latest audit version, no Confluent header.
pub fn encode(e: &AuditEvent) -> Result<Vec<u8>, WireError> {
    encode_as(e, LATEST_VERSION)
}

/// Encodes an event (hash as given) under audit schema `version`, no Confluent header.
pub fn encode_as(e: &AuditEvent, version: u8) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(len_hint(e));
    encode_as_into(e, version, &mut out)?;
    Ok(out)
}

/// Appends the Avro body of an event (hash as given) under audit schema `version` to `out`:
/// the fields written directly in schema order, byte-identical to `apache-avro`'s encoding.
pub fn encode_as_into(e: &AuditEvent, version: u8, out: &mut Vec<u8>) -> Result<(), WireError> {
    write_link(out, e, &e.hash, facts_layout(version)?);
    Ok(())
}

/// Decodes an Avro body written with audit schema `version` (the writer's).
pub fn decode_as(body: &[u8], version: u8) -> Result<AuditEvent, WireError> {
    let mut f = Fields::of(read_datum(&schema_of(version)?.schema, body)?)?;
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
            facts: match d.added_record("facts")? {
                None => None,
                Some(mut f) => Some(StateFacts {
                    artifact_delta: f.long("artifact_delta")?,
                    counted_rejection: f.boolean("counted_rejection")?,
                    rate_tat_us: f.opt_long("rate_tat_us")?,
                    offender: match f.added_record("offender")? {
                        None => None,
                        Some(mut o) => Some(OffenderFacts {
                            integration_id: o.string("integration_id")?,
                            rejections_ms: o.longs("rejections_ms")?,
                            cooling_until_ms: o.opt_long("cooling_until_ms")?,
                        }),
                    },
                    offender_change: match f.added_record("offender_change")? {
                        None => None,
                        Some(mut o) => Some(OffenderChangeFacts {
                            integration_id: o.string("integration_id")?,
                            dropped: o.long("dropped")?,
                            added_ms: o.opt_long("added_ms")?,
                            cooling_until_ms: o.opt_long("cooling_until_ms")?,
                        }),
                    },
                }),
            },
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

/// A link as read from `bucket.audit`: the event, the schema version that wrote it, and the
/// hash its stored bytes actually have (compare with `event.hash` to check the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink {
    /// The decoded event.
    pub event: AuditEvent,
    /// Audit schema version of the writer.
    pub version: u8,
    /// [`link_hash`] of the stored body.
    pub stored_hash: String,
}

impl StoredLink {
    /// True when the hash the link claims is the hash of its stored bytes.
    pub fn hash_ok(&self) -> bool {
        self.stored_hash == self.event.hash
    }
}

/// Resolves a frame's schema id to the approved audit version that wrote it. Filled from the
/// registry (`Registry::audit_reader`) or, by the gate, from the ids it registered; pure here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReader {
    versions: HashMap<u32, u8>,
}

impl AuditReader {
    /// A reader that knows these (schema id, audit version) pairs.
    pub fn with_ids(ids: impl IntoIterator<Item = (u32, u8)>) -> AuditReader {
        AuditReader {
            versions: ids.into_iter().collect(),
        }
    }

    /// Learns that registry id `id` holds a schema with `fingerprint`; true when it is an
    /// approved audit version.
    pub fn learn(&mut self, id: u32, fingerprint: &str) -> bool {
        let version = APPROVED
            .audit_versions
            .iter()
            .position(|s| s.fingerprint == fingerprint)
            .and_then(|i| u8::try_from(i + 1).ok());
        if let Some(v) = version {
            self.versions.insert(id, v);
        }
        version.is_some()
    }

    /// The audit version registered under `id`, if known.
    pub fn version_of(&self, id: u32) -> Option<u8> {
        self.versions.get(&id).copied()
    }

    /// The (id, version) pairs known, by id.
    pub fn ids(&self) -> Vec<(u32, u8)> {
        let mut v: Vec<(u32, u8)> = self.versions.iter().map(|(i, v)| (*i, *v)).collect();
        v.sort_unstable();
        v
    }

    /// Decodes a Confluent-framed `bucket.audit` value with its writer's schema and computes
    /// the hash of its stored bytes.
    pub fn read(&self, value: Option<&[u8]>) -> Result<StoredLink, WireError> {
        let (version, body) = self.writer_of(value)?;
        let event = decode_as(body, version)?;
        let stored_hash = link_hash(&event.prev_hash, body)?;
        Ok(StoredLink {
            event,
            version,
            stored_hash,
        })
    }

    /// Decodes a Confluent-framed `bucket.audit` value with its writer's schema.
    pub fn decode_framed(&self, value: Option<&[u8]>) -> Result<AuditEvent, WireError> {
        let (version, body) = self.writer_of(value)?;
        decode_as(body, version)
    }

    /// The writer's audit version and the Avro body of a framed value.
    fn writer_of<'v>(&self, value: Option<&'v [u8]>) -> Result<(u8, &'v [u8]), WireError> {
        let (id, body) = super::framing::unframe(value)?;
        let version = self
            .version_of(id)
            .ok_or(WireError::UnknownWriterSchema(id))?;
        Ok((version, body))
    }
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
                facts: Some(StateFacts {
                    artifact_delta: 1,
                    counted_rejection: true,
                    rate_tat_us: Some(17),
                    offender: Some(OffenderFacts {
                        integration_id: "i".into(),
                        rejections_ms: vec![3, 4],
                        cooling_until_ms: None,
                    }),
                    offender_change: None,
                }),
                ..Default::default()
            }),
            governance: None,
        }
    }

    fn reader() -> AuditReader {
        AuditReader::with_ids([(7, 1), (9, 2)])
    }

    fn framed(id: u32, body: &[u8]) -> Vec<u8> {
        super::super::framing::frame(id, body)
    }

    #[test]
    fn every_version_starts_with_seq_prev_hash_hash() {
        for (i, s) in APPROVED.audit_versions.iter().enumerate() {
            let Schema::Record(r) = &s.schema else {
                panic!("version {} is not a record", i + 1)
            };
            let names: Vec<&str> = r.fields.iter().take(3).map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["seq", "prev_hash", "hash"], "version {}", i + 1);
        }
    }

    #[test]
    fn version_1_hash_is_the_original_definition() {
        // Before versions existed: SHA-256(prev_hash || v1 body with hash ""), in hex.
        let e = event(3, GENESIS_HASH);
        let sealed = e.clone().seal_as(1).unwrap();
        let canonical = encode_as(&e, 1).unwrap();
        let mut h = Sha256::new();
        h.update(GENESIS_HASH.as_bytes());
        h.update(&canonical);
        assert_eq!(sealed.event.hash, hex::encode(h.finalize()));
        assert_eq!(sealed.body, encode_as(&sealed.event, 1).unwrap());
    }

    #[test]
    fn each_version_round_trips_and_hashes_its_stored_bytes() {
        let a = event(0, GENESIS_HASH).seal_as(1).unwrap();
        let b = event(1, &a.event.hash).seal_as(2).unwrap();
        let r = reader();
        let la = r.read(Some(&framed(7, &a.body))).unwrap();
        let lb = r.read(Some(&framed(9, &b.body))).unwrap();
        assert!(la.hash_ok() && lb.hash_ok());
        assert_eq!((la.version, lb.version), (1, 2));
        // Version 1 has no facts; everything else survives.
        let mut without_facts = a.event.clone();
        without_facts.decision.as_mut().unwrap().facts = None;
        assert_eq!(la.event, without_facts);
        assert_eq!(lb.event, b.event);
        assert_eq!(lb.event.prev_hash, la.event.hash);
        // The hash of a v2 link is over v2 bytes: a v1 encoding of the same event differs.
        assert_ne!(
            event(1, &a.event.hash).seal_as(1).unwrap().event.hash,
            b.event.hash
        );
    }

    #[test]
    fn a_changed_byte_or_a_wrong_writer_schema_is_caught() {
        let b = event(1, GENESIS_HASH).seal_as(2).unwrap();
        let mut tampered = b.event.clone();
        tampered.decision.as_mut().unwrap().reasons.clear();
        let body = encode_as(&tampered, 2).unwrap();
        let link = reader().read(Some(&framed(9, &body))).unwrap();
        assert!(!link.hash_ok());
        // Decoding v2 bytes as v1 is refused, not silently misread.
        assert!(reader().read(Some(&framed(7, &b.body))).is_err());
        assert!(matches!(
            reader().read(Some(&framed(8, &b.body))),
            Err(WireError::UnknownWriterSchema(8))
        ));
    }

    use crate::wire::accepted::tests::{int, long, text};
    use crate::wire::value_oracle;
    use proptest::prelude::*;

    fn arb_facts() -> BoxedStrategy<StateFacts> {
        let offender = (
            text(),
            proptest::collection::vec(long(), 0..4),
            proptest::option::of(long()),
        )
            .prop_map(
                |(integration_id, rejections_ms, cooling_until_ms)| OffenderFacts {
                    integration_id,
                    rejections_ms,
                    cooling_until_ms,
                },
            );
        let change = (
            text(),
            long(),
            proptest::option::of(long()),
            proptest::option::of(long()),
        )
            .prop_map(|(integration_id, dropped, added_ms, cooling_until_ms)| {
                OffenderChangeFacts {
                    integration_id,
                    dropped,
                    added_ms,
                    cooling_until_ms,
                }
            });
        (
            long(),
            any::<bool>(),
            proptest::option::of(long()),
            proptest::option::of(offender),
            proptest::option::of(change),
        )
            .prop_map(
                |(artifact_delta, counted_rejection, rate_tat_us, offender, offender_change)| {
                    StateFacts {
                        artifact_delta,
                        counted_rejection,
                        rate_tat_us,
                        offender,
                        offender_change,
                    }
                },
            )
            .boxed()
    }

    fn arb_decision() -> BoxedStrategy<DecisionRecord> {
        let opt = || proptest::option::of(text());
        let head = (
            int(),
            long(),
            text(),
            any::<bool>(),
            proptest::collection::vec(text(), 0..4),
            proptest::collection::vec(text(), 0..3),
            text(),
        );
        let ids = (opt(), opt(), opt(), opt(), opt(), opt(), opt(), opt());
        let tail = (
            proptest::option::of(long()),
            any::<bool>(),
            long(),
            long(),
            opt(),
            any::<bool>(),
            proptest::option::of(arb_facts()),
        );
        (head, ids, tail)
            .prop_map(|(head, ids, tail)| {
                let (
                    source_partition,
                    source_offset,
                    value_sha256,
                    accepted,
                    reasons,
                    threats,
                    detail,
                ) = head;
                let (
                    intent_id,
                    product_id,
                    integration_id,
                    owner_id,
                    requester_id,
                    artifact_id,
                    artifact_class,
                    operation,
                ) = ids;
                let (
                    version,
                    deleted,
                    content_size,
                    size_delta,
                    content_sha256,
                    authenticated,
                    facts,
                ) = tail;
                DecisionRecord {
                    source_partition,
                    source_offset,
                    value_sha256,
                    accepted,
                    reasons,
                    threats,
                    detail,
                    intent_id,
                    product_id,
                    integration_id,
                    owner_id,
                    requester_id,
                    artifact_id,
                    artifact_class,
                    operation,
                    version,
                    deleted,
                    content_size,
                    size_delta,
                    content_sha256,
                    authenticated,
                    facts,
                }
            })
            .boxed()
    }

    fn arb_event() -> BoxedStrategy<AuditEvent> {
        let governance = (text(), text())
            .prop_map(|(event_type, detail)| GovernanceRecord { event_type, detail });
        let prev = prop_oneof![Just(GENESIS_HASH.to_string()), "[0-9a-f]{64}", text()];
        (
            long(),
            prev,
            prop_oneof![Just(String::new()), "[0-9a-f]{64}", text()],
            long(),
            text(),
            text(),
            proptest::option::of(arb_decision()),
            proptest::option::of(governance),
        )
            .prop_map(
                |(
                    seq,
                    prev_hash,
                    hash,
                    recorded_at,
                    gate_id,
                    policy_version,
                    decision,
                    governance,
                )| {
                    AuditEvent {
                        seq,
                        prev_hash,
                        hash,
                        recorded_at,
                        gate_id,
                        policy_version,
                        decision,
                        governance,
                    }
                },
            )
            .boxed()
    }

    /// What a version keeps of an event: version 1 has no facts, version 2 no offender
    /// change, version 3 no whole offender state.
    fn as_stored(e: &AuditEvent, version: u8) -> AuditEvent {
        let mut e = e.clone();
        if let Some(d) = e.decision.as_mut() {
            match version {
                1 => d.facts = None,
                2 => d.facts.iter_mut().for_each(|f| f.offender_change = None),
                _ => d.facts.iter_mut().for_each(|f| f.offender = None),
            }
        }
        e
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every version: the direct bytes are `apache-avro`'s, decode back, and sealing gives
        /// the old hash and body, a hash that checks against the stored bytes.
        #[test]
        fn direct_encoding_and_sealing_are_apache_avros(e in arb_event()) {
            for version in 1..=LATEST_VERSION {
                let direct = encode_as(&e, version).unwrap();
                prop_assert_eq!(&direct, &value_oracle::audit_encode_as(&e, version).unwrap());
                prop_assert_eq!(decode_as(&direct, version).unwrap(), as_stored(&e, version));

                let sealed = e.clone().seal_as(version).unwrap();
                let old = value_oracle::audit_seal_as(e.clone(), version).unwrap();
                prop_assert_eq!(&sealed.event.hash, &old.event.hash);
                prop_assert_eq!(&sealed.body, &old.body);
                prop_assert_eq!(&sealed.event, &old.event);
                prop_assert_eq!(link_hash(&e.prev_hash, &sealed.body).unwrap(), sealed.event.hash.clone());
                prop_assert_eq!(&sealed.body, &encode_as(&sealed.event, version).unwrap());
                prop_assert_eq!(
                    decode_as(&sealed.body, version).unwrap(),
                    as_stored(&sealed.event, version)
                );

                // Appending: what the buffer held stays, the body follows it.
                let mut event = e.clone();
                let mut framed = vec![0, 0, 0, 0, 3];
                event.seal_into(version, &mut framed).unwrap();
                prop_assert_eq!(&framed[..5], &[0, 0, 0, 0, 3]);
                prop_assert_eq!(&framed[5..], &sealed.body[..]);
                prop_assert_eq!(&event, &sealed.event);
                let mut framed = vec![1, 2];
                encode_as_into(&e, version, &mut framed).unwrap();
                prop_assert_eq!(&framed[2..], &direct[..]);
            }
            let latest = value_oracle::audit_seal_as(e.clone(), LATEST_VERSION).unwrap();
            prop_assert_eq!(chain_hash(&e).unwrap(), latest.event.hash);
        }
    }

    #[test]
    fn every_approved_version_has_a_direct_encoder_and_no_other_does() {
        let approved = u8::try_from(APPROVED.audit_versions.len()).unwrap();
        for version in 1..=approved {
            assert!(facts_layout(version).is_ok(), "version {version}");
        }
        for version in [0, approved + 1, u8::MAX] {
            let e = event(0, GENESIS_HASH);
            assert!(e.clone().seal_as(version).is_err(), "version {version}");
            assert!(encode_as(&e, version).is_err(), "version {version}");
            assert!(value_oracle::audit_seal_as(e, version).is_err());
        }
    }

    #[test]
    fn the_hash_field_of_a_sealed_link_is_66_bytes() {
        let mut field = Vec::new();
        avro_write::string(&mut field, GENESIS_HASH);
        assert_eq!(field.len(), HASH_FIELD_LEN);
    }

    #[test]
    fn learning_an_id_needs_an_approved_fingerprint() {
        let mut r = AuditReader::default();
        assert!(!r.learn(1, &APPROVED.intent.fingerprint));
        assert!(r.learn(2, &APPROVED.audit_versions[1].fingerprint));
        assert_eq!(r.ids(), vec![(2, 2)]);
    }
}
