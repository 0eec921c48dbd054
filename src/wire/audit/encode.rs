//! The direct encoder of audit links: the fields of each record written in schema order under
//! a version's facts layout, byte-identical to `apache-avro`'s encoding of that version
//! (property tests against `value_oracle`).

use super::super::WireError;
use super::super::avro_write;
use super::*;

/// The encoded size of the `hash` field of a sealed link: a 64-character hex string is its
/// length prefix (the long 64, two bytes) and the 64 bytes.
pub(super) const HASH_FIELD_LEN: usize = 66;

/// Appends a link body under a version's facts layout with `hash` as given.
/// Fields in schema order.
pub(super) fn write_link(out: &mut Vec<u8>, e: &AuditEvent, hash: &str, facts: FactsLayout) {
    avro_write::long(out, e.seq);
    avro_write::string(out, &e.prev_hash);
    avro_write::string(out, hash);
    write_after_hash(out, e, facts);
}

/// The fields after `hash`: `recorded_at` (timestamp-millis) to `governance`.
pub(super) fn write_after_hash(out: &mut Vec<u8>, e: &AuditEvent, facts: FactsLayout) {
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
pub(super) fn len_hint(e: &AuditEvent) -> usize {
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
