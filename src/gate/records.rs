//! Turns a decision into the records the transaction carries: the accepted artifact or the
//! rejected original, and the audit link. Pure: no Kafka here.

use super::TopicNames;
use super::consumed::Consumed;
use super::task::ChainHead;
use crate::core::state::OffenderState;
use crate::core::{ArtifactIntent, Decision, Outcome, recorded};
use crate::kafka::registry::OutputSchemaIds;
use crate::wire::accepted::{self, AcceptedRef};
use crate::wire::audit::{
    self, AuditEvent, DecisionRecord, FactsLayout, OffenderChangeFacts, OffenderFacts, StateFacts,
};
use crate::wire::digest::sha256_hex;
use crate::wire::{WireError, framing, headers};

/// The typed state changes of a decision, as an audit link of `layout` records them. A
/// version 2 link records the integration's whole offender state after the decision, which is
/// `offender_before` with the change applied; version 3 records the change.
pub fn facts_of(
    decision: &Decision,
    offender_before: Option<&OffenderState>,
    layout: FactsLayout,
) -> StateFacts {
    let change = decision.offender.as_ref();
    StateFacts {
        artifact_delta: decision.artifact_delta,
        counted_rejection: decision.counted_rejection,
        rate_tat_us: decision.rate_tat.as_ref().map(|(_, tat)| *tat),
        offender: change
            .filter(|_| layout == FactsLayout::WholeOffender)
            .map(|c| {
                let mut after = offender_before.cloned().unwrap_or_default();
                after.apply(c);
                OffenderFacts {
                    integration_id: c.integration.clone(),
                    rejections_ms: after.rejections.into(),
                    cooling_until_ms: after.cooling_until,
                }
            }),
        offender_change: change
            .filter(|_| layout == FactsLayout::OffenderChange)
            .map(OffenderChangeFacts::from),
    }
}

/// Largest governance detail (JSON text) a link carries whole. Details come from operators (a
/// policy diff, a `bucket.control` event of up to 1 MiB): a larger one is recorded as its small
/// members plus the size and digest of the whole ([`bounded_detail`]), so every link fits a
/// C2SP entry bundle (65,535 bytes) and the audit topic.
pub const MAX_GOVERNANCE_DETAIL: usize = 32 * 1024;

/// The detail as a link records it: whole up to [`MAX_GOVERNANCE_DETAIL`] bytes; else its
/// top-level members of at most 1 KiB each, and `detail_cut` with the whole text's size, its
/// SHA-256 and the names of the members left out.
pub fn bounded_detail(detail: &serde_json::Value) -> String {
    let text = detail.to_string();
    if text.len() <= MAX_GOVERNANCE_DETAIL {
        return text;
    }
    let whole = serde_json::json!({"bytes": text.len(), "sha256": sha256_hex(text.as_bytes())});
    let mut kept = serde_json::Map::new();
    let mut left_out = Vec::new();
    if let serde_json::Value::Object(members) = detail {
        for (name, value) in members {
            if name.len() <= 256 && value.to_string().len() <= 1024 {
                kept.insert(name.clone(), value.clone());
            } else {
                left_out.push(recorded(name).into_owned());
            }
        }
    }
    let mut cut = whole.clone();
    cut["left_out"] = left_out.into();
    kept.insert("detail_cut".into(), cut);
    let bounded = serde_json::Value::Object(kept).to_string();
    if bounded.len() <= MAX_GOVERNANCE_DETAIL {
        bounded
    } else {
        // Thousands of small members: only the size and digest stay.
        serde_json::json!({ "detail_cut": whole }).to_string()
    }
}

/// A record to produce inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Destination topic.
    pub topic: String,
    /// Explicit partition (audit only), else the key decides.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (None only when a rejected original value was null).
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What the gate writes for one decided intent.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Accepted or rejected record, then the audit record (always last).
    pub records: Vec<OutRecord>,
    /// The audit link written (the new chain head).
    pub audit: AuditEvent,
}

impl Outputs {
    /// The audit link's value bytes as produced (its record is always the last): what the
    /// partition's Merkle tree takes as the link's leaf.
    pub fn audit_value(&self) -> &[u8] {
        (self.records.last())
            .and_then(|r| r.value.as_deref())
            .unwrap_or_default()
    }
}

/// Static context of the writer.
#[derive(Debug, Clone)]
pub struct OutputWriter<'a> {
    /// Topic names.
    pub topics: &'a TopicNames,
    /// Registered output schema ids.
    pub ids: OutputSchemaIds,
    /// Gate instance id.
    pub gate_id: &'a str,
    /// Audit schema version the links are written with (`ids.audit` is its registry id).
    pub audit_version: u8,
}

impl OutputWriter<'_> {
    /// Builds the output records of one decision and the audit link after `chain`;
    /// `offender_before` is the decision's integration's offender state before it (a version 2
    /// link records the state after).
    pub fn outputs(
        &self,
        consumed: &Consumed,
        intent: Option<&ArtifactIntent>,
        decision: &Decision,
        offender_before: Option<&OffenderState>,
        chain: &ChainHead,
    ) -> Result<Outputs, WireError> {
        let layout = audit::facts_layout(self.audit_version)?;
        let value = consumed.value.as_deref().unwrap_or_default();
        let mut record = DecisionRecord {
            source_partition: consumed.partition,
            source_offset: consumed.offset,
            value_sha256: sha256_hex(value),
            accepted: decision.outcome == Outcome::Accepted,
            reasons: decision
                .reasons()
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
            threats: decision.threats().iter().map(|t| t.to_string()).collect(),
            detail: recorded(decision.detail()).into_owned(),
            version: decision.version,
            size_delta: decision.size_delta,
            authenticated: decision.replay_key.is_some(),
            facts: Some(facts_of(decision, offender_before, layout)),
            ..DecisionRecord::default()
        };
        if let Some(i) = intent {
            let text = |s: &str| Some(recorded(s).into_owned());
            record.intent_id = text(&i.intent_id);
            record.product_id = text(&i.product_id);
            record.integration_id = text(&i.integration_id);
            record.requester_id = text(&i.requester_id);
            record.artifact_id = text(&i.artifact_id);
            record.operation = Some(i.operation.as_str().to_string());
            record.owner_id = text(&i.owner_id);
            record.artifact_class = text(&i.artifact_class);
        }
        let mut records = Vec::with_capacity(2);
        match (decision.outcome, intent, &decision.effect) {
            (Outcome::Accepted, Some(i), Some(effect)) => {
                let content_sha256 = i
                    .content
                    .as_ref()
                    .map(|c| sha256_hex(c))
                    .unwrap_or_default();
                record.owner_id = Some(effect.record.owner_id.clone());
                record.artifact_class = Some(effect.record.artifact_class.clone());
                record.deleted = effect.record.deleted;
                record.content_size = effect.record.size as i64;
                let a = AcceptedRef {
                    intent_id: &i.intent_id,
                    product_id: &i.product_id,
                    integration_id: &i.integration_id,
                    owner_id: &effect.record.owner_id,
                    requester_id: &i.requester_id,
                    artifact_id: &i.artifact_id,
                    artifact_class: &effect.record.artifact_class,
                    operation: i.operation,
                    version: effect.record.version,
                    deleted: effect.record.deleted,
                    content: i.content.as_deref(),
                    content_sha256: &content_sha256,
                    content_size: effect.record.size as i64,
                    content_type: &i.content_type,
                    metadata: &i.metadata,
                    purpose: &i.purpose,
                    client_time: i.client_time,
                    decided_at: decision.decided_at,
                    policy_version: &decision.policy_version,
                    source_partition: consumed.partition,
                    source_offset: consumed.offset,
                };
                records.push(OutRecord {
                    topic: self.topics.accepted_for(&i.product_id),
                    partition: None,
                    key: Some(a.key().into_bytes()),
                    value: Some({
                        let mut value = framing::header(self.ids.accepted, 256 + value.len());
                        accepted::encode_ref_into(&a, &mut value);
                        value
                    }),
                    // The intent id, then the producer's W3C trace context, so a trace goes on
                    // past the gate (the shell puts its own span's in when it exports spans).
                    headers: std::iter::once((
                        "bucket.intent.id".to_string(),
                        i.intent_id.clone().into_bytes(),
                    ))
                    .chain(headers::trace_context(&consumed.headers))
                    .collect(),
                });
                record.content_sha256 = Some(content_sha256).filter(|s| !s.is_empty());
            }
            _ => records.push(self.rejected(consumed, intent, decision)),
        }
        let mut event = AuditEvent {
            seq: chain.next_seq,
            prev_hash: chain.hash.clone(),
            hash: String::new(),
            recorded_at: decision.decided_at,
            gate_id: self.gate_id.to_string(),
            policy_version: decision.policy_version.clone(),
            decision: Some(record),
            governance: None,
        };
        let value = self.audit_value(&mut event)?;
        records.push(OutRecord {
            topic: self.topics.audit.clone(),
            partition: Some(consumed.partition),
            key: intent.map(|i| i.product_id.clone().into_bytes()),
            value: Some(value),
            headers: Vec::new(),
        });
        Ok(Outputs {
            records,
            audit: event,
        })
    }

    /// Builds a governance event (policy loaded, gate stopped, ...) as the next link of a
    /// partition's chain, and its audit record.
    pub fn governance(
        &self,
        partition: i32,
        chain: &ChainHead,
        event_type: &str,
        detail: &serde_json::Value,
        policy_version: &str,
        now_ms: i64,
    ) -> Result<(OutRecord, AuditEvent), WireError> {
        let mut event = AuditEvent {
            seq: chain.next_seq,
            prev_hash: chain.hash.clone(),
            hash: String::new(),
            recorded_at: now_ms,
            gate_id: self.gate_id.to_string(),
            policy_version: policy_version.to_string(),
            decision: None,
            governance: Some(audit::GovernanceRecord {
                event_type: event_type.to_string(),
                detail: bounded_detail(detail),
            }),
        };
        let value = self.audit_value(&mut event)?;
        let record = OutRecord {
            topic: self.topics.audit.clone(),
            partition: Some(partition),
            key: None,
            value: Some(value),
            headers: Vec::new(),
        };
        Ok((record, event))
    }

    /// Seals `event` (fills its hash) and returns the framed audit value, encoded once.
    fn audit_value(&self, event: &mut AuditEvent) -> Result<Vec<u8>, WireError> {
        let mut value = framing::header(self.ids.audit, 1024);
        event.seal_into(self.audit_version, &mut value)?;
        Ok(value)
    }

    fn rejected(
        &self,
        consumed: &Consumed,
        intent: Option<&ArtifactIntent>,
        decision: &Decision,
    ) -> OutRecord {
        let join = |v: Vec<String>| v.join(",").into_bytes();
        // The producer's headers first, in order; any under the gate's prefix renamed, so the
        // gate's `bucket.errors.*` below are the only ones of their names.
        let mut h: Vec<(String, Vec<u8>)> = consumed
            .headers
            .iter()
            .map(|(k, v)| (headers::as_foreign(k).into_owned(), v.clone()))
            .collect();
        let mut add = |k: &str, v: Vec<u8>| h.push((k.to_string(), v));
        let reasons: Vec<String> = decision
            .reasons()
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        add(
            headers::ERROR_REASON,
            reasons.first().cloned().unwrap_or_default().into_bytes(),
        );
        add(headers::ERROR_REASONS, join(reasons));
        add(headers::ERROR_DETAIL, decision.detail().as_bytes().to_vec());
        add(
            headers::ERROR_THREATS,
            join(decision.threats().iter().map(|t| t.to_string()).collect()),
        );
        add(
            headers::ERROR_TOPIC,
            self.topics.intents.clone().into_bytes(),
        );
        add(
            headers::ERROR_PARTITION,
            consumed.partition.to_string().into_bytes(),
        );
        add(
            headers::ERROR_OFFSET,
            consumed.offset.to_string().into_bytes(),
        );
        if let Some(k) = &consumed.key {
            add(headers::ERROR_ORIGINAL_KEY, k.clone());
        }
        if let Some(ts) = consumed.timestamp {
            add(
                headers::ERROR_ORIGINAL_TIMESTAMP,
                ts.to_string().into_bytes(),
            );
        }
        add(
            headers::ERROR_POLICY_VERSION,
            decision.policy_version.clone().into_bytes(),
        );
        if let Some(i) = intent {
            add(headers::ERROR_INTENT_ID, i.intent_id.clone().into_bytes());
        }
        if let Some(v) = decision.version {
            add(headers::ERROR_CURRENT_VERSION, v.to_string().into_bytes());
        }
        if let Some(ms) = decision
            .findings
            .iter()
            .find(|f| f.reason == crate::core::ReasonCode::RateLimited)
            .and_then(|f| crate::core::rules::rate::retry_after_ms(&f.detail))
        {
            add(headers::ERROR_RETRY_AFTER_MS, ms.to_string().into_bytes());
        }
        OutRecord {
            topic: self.topics.rejected.clone(),
            partition: None,
            key: intent.map(|i| i.product_id.clone().into_bytes()),
            value: consumed.value.clone(),
            headers: h,
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::core::rules::test_support::{create, decide_on};
    use crate::core::state::PartitionState;
    use crate::tlog::tiles::MAX_ENTRY;

    fn writer() -> OutputWriter<'static> {
        static TOPICS: std::sync::LazyLock<TopicNames> =
            std::sync::LazyLock::new(TopicNames::default);
        OutputWriter {
            topics: &TOPICS,
            ids: OutputSchemaIds {
                accepted: 1,
                audit: 2,
            },
            gate_id: "g1",
            audit_version: 2,
        }
    }

    /// A counted rejection of an integration whose window holds 100,000 rejections: version 3
    /// records the change in a few bytes; version 2 recorded every timestamp (ADR 0015), and
    /// both describe the same state after the decision.
    #[test]
    fn a_version_3_link_records_the_offender_change_whatever_the_window_holds() {
        use crate::core::state::{OffenderChange, OffenderState};
        let i = create();
        let mut d = decide_on(&i, &PartitionState::default());
        let before = OffenderState {
            rejections: (0..100_000).collect(),
            cooling_until: None,
        };
        let change = OffenderChange {
            integration: i.integration_id.clone(),
            dropped: 3,
            added: Some(100_000),
            cooling_until: None,
        };
        d.offender = Some(change.clone());
        let consumed = Consumed {
            partition: 1,
            offset: 9,
            key: None,
            value: Some(vec![1; 64]),
            timestamp: None,
            headers: Vec::new(),
        };
        let link_as = |audit_version| {
            let w = OutputWriter {
                audit_version,
                ids: OutputSchemaIds {
                    accepted: 1,
                    audit: 3,
                },
                ..writer()
            };
            w.outputs(
                &consumed,
                Some(&i),
                &d,
                Some(&before),
                &ChainHead::default(),
            )
            .unwrap()
        };
        let (v2, v3) = (link_as(2), link_as(3));
        let size = |o: &Outputs| o.records.last().unwrap().value.as_ref().unwrap().len();
        assert!(size(&v3) < 1024, "{} bytes", size(&v3));
        assert!(size(&v2) > 100_000, "{} bytes", size(&v2));
        let facts = |o: &Outputs| o.audit.decision.as_ref().unwrap().facts.clone().unwrap();
        let whole = facts(&v2).offender.unwrap();
        let recorded = facts(&v3).offender_change.unwrap();
        assert!(facts(&v2).offender_change.is_none() && facts(&v3).offender.is_none());
        assert_eq!(recorded.change(), change);
        let applied = before.after(&recorded.change());
        assert_eq!(Vec::from(applied.rejections), whole.rejections_ms);
        assert_eq!(whole.rejections_ms.len(), 100_000 - 3 + 1);
        assert_eq!(whole.rejections_ms.first(), Some(&3));
    }

    /// A producer controls every id of an intent and may send megabytes of each: the link
    /// stays a C2SP entry (and far under the audit topic's 1 MiB), the rejected copy whole.
    #[test]
    fn megabyte_ids_make_a_bounded_link_and_a_whole_rejected_copy() {
        let mut i = create();
        let huge = "x".repeat(2 << 20);
        (i.intent_id, i.artifact_id, i.owner_id) = (huge.clone(), huge.clone(), huge.clone());
        (i.requester_id, i.integration_id, i.artifact_class) =
            (huge.clone(), huge.clone(), huge.clone());
        let d = decide_on(&i, &PartitionState::default());
        assert!(d.reasons().contains(&crate::core::ReasonCode::InvalidField));
        let value = vec![7u8; 12 << 20];
        let consumed = Consumed {
            partition: 1,
            offset: 9,
            key: None,
            value: Some(value.clone()),
            timestamp: None,
            headers: Vec::new(),
        };
        let out = writer()
            .outputs(&consumed, Some(&i), &d, None, &ChainHead::default())
            .unwrap();
        let link = out.records.last().unwrap().value.as_ref().unwrap();
        assert!(link.len() < 8 * 1024, "{} bytes", link.len());
        assert!(link.len() <= MAX_ENTRY);
        let rec = out.audit.decision.as_ref().unwrap();
        assert_eq!(
            rec.artifact_id.as_deref(),
            Some(&*crate::core::recorded(&huge))
        );
        assert!(
            rec.intent_id
                .as_ref()
                .unwrap()
                .contains("2097152 bytes, sha256:")
        );
        assert_eq!(
            out.records[0].value.as_deref(),
            Some(&value[..]),
            "original bytes"
        );
    }

    /// A producer's W3C trace context goes on to the accepted record (after the intent id) even
    /// when the gate exports no spans; the audit link carries none; other producer headers stay
    /// behind.
    #[test]
    fn the_producers_trace_context_goes_on_to_the_accepted_record() {
        let i = create();
        let d = decide_on(&i, &PartitionState::default());
        assert_eq!(d.outcome, Outcome::Accepted);
        let consumed = Consumed {
            partition: 0,
            offset: 1,
            key: None,
            value: Some(vec![1]),
            timestamp: None,
            headers: vec![
                (headers::SIGNATURE.into(), b"sig".to_vec()),
                (headers::TRACEPARENT.into(), b"00-4bf9-00f0-01".to_vec()),
                (headers::TRACESTATE.into(), b"v=1".to_vec()),
            ],
        };
        let out = writer()
            .outputs(&consumed, Some(&i), &d, None, &ChainHead::default())
            .unwrap();
        let names: Vec<&str> = out.records[0]
            .headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, ["bucket.intent.id", "traceparent", "tracestate"]);
        assert!(out.records[1].headers.is_empty(), "the audit link");
    }

    #[test]
    fn a_governance_detail_over_the_limit_keeps_its_small_members_and_digest() {
        let small = serde_json::json!({"from": "v1", "to": "v2", "diff": ["+a"]});
        assert_eq!(bounded_detail(&small), small.to_string());
        let diff: Vec<String> = (0..20_000).map(|n| format!("+line {n}")).collect();
        let big = serde_json::json!({"from": "v1", "to": "v2", "diff": diff});
        let text = big.to_string();
        let cut: serde_json::Value = serde_json::from_str(&bounded_detail(&big)).unwrap();
        assert_eq!((&cut["from"], &cut["to"]), (&big["from"], &big["to"]));
        assert_eq!(cut["detail_cut"]["bytes"], text.len());
        assert_eq!(
            cut["detail_cut"]["sha256"],
            hex::encode(Sha256::digest(text.as_bytes()))
        );
        assert_eq!(cut["detail_cut"]["left_out"], serde_json::json!(["diff"]));
        let many: serde_json::Map<String, serde_json::Value> = (0..20_000)
            .map(|n| (format!("k{n}"), serde_json::json!(n)))
            .collect();
        let cut = bounded_detail(&serde_json::Value::Object(many));
        assert!(cut.len() < 200 && cut.contains("detail_cut"), "{cut}");
        let (_, link) = writer()
            .governance(0, &ChainHead::default(), "POLICY_LOADED", &big, "v2", 1)
            .map(|(r, e)| (e, r.value.unwrap()))
            .unwrap();
        assert!(link.len() <= MAX_GOVERNANCE_DETAIL + 1024);
    }
}
