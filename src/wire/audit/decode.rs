//! Reading stored links: a body decoded with the schema version that wrote it, named by the
//! frame's schema id ([`AuditReader`]).

use std::collections::HashMap;

use super::super::WireError;
use super::super::fields::{Fields, read_datum};
use super::*;

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
        let (id, body) = super::super::framing::unframe(value)?;
        let version = self
            .version_of(id)
            .ok_or(WireError::UnknownWriterSchema(id))?;
        Ok((version, body))
    }
}
