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

use super::WireError;
use super::schemas::{APPROVED, ApprovedSchema};
use crate::core::state::OffenderChange;

pub mod checkpoint;
mod decode;
mod encode;
mod seal;

pub use super::audit_versions::{AuditVersion, FactsLayout, LATEST_VERSION, VERSIONS};
pub use decode::{AuditReader, StoredLink, decode_as};
pub use encode::{encode, encode_as, encode_as_into};
#[cfg(any(test, feature = "bench"))]
pub(in crate::wire) use seal::hash_span;
pub use seal::{SealedLink, chain_hash, link_hash};

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

/// The facts layout of audit schema `version` (its row of [`VERSIONS`]).
pub fn facts_layout(version: u8) -> Result<FactsLayout, WireError> {
    schema_of(version)?;
    super::audit_versions::row(version)
        .map(|r| r.facts)
        .ok_or_else(|| WireError::Avro(format!("audit schema version {version} is not approved")))
}

pub(super) fn schema_of(version: u8) -> Result<&'static ApprovedSchema, WireError> {
    APPROVED
        .audit(version)
        .ok_or_else(|| WireError::Avro(format!("audit schema version {version} is not approved")))
}

#[cfg(test)]
mod tests;
