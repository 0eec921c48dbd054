//! The audit verifier's logic, free of I/O: feed it every record of `bucket.audit` in partition
//! order, then the intent offsets that must have decisions; it reports each problem with the
//! exact partition and offset. `bucket audit verify` is the Kafka shell around it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::checkpoint::{CHECKPOINT, Checkpoint};
use crate::core::signature::VerifyKey;
use crate::wire::audit::{self, GENESIS_HASH};

/// One thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Audit partition (or intents partition for completeness problems).
    pub partition: i32,
    /// Offset of the offending record (audit offset, or intent offset for completeness).
    pub offset: i64,
    /// Stable kind, e.g. `CHAIN_BREAK`.
    pub kind: String,
    /// Specifics.
    pub detail: String,
}

/// Trusted state of one partition, to resume verification later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartitionHead {
    /// Next audit offset to read.
    pub next_offset: i64,
    /// Next expected sequence number.
    pub next_seq: i64,
    /// Hash of the last link.
    pub hash: String,
    /// Highest intent offset decided so far (-1 if none).
    pub max_source_offset: i64,
}

/// Per-partition counters for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartitionSummary {
    /// Links verified.
    pub links: u64,
    /// Decision links.
    pub decisions: u64,
    /// Valid signed checkpoints.
    pub checkpoints: u64,
    /// Trusted head after verification.
    pub head: PartitionHead,
}

/// The verifier's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Report {
    /// Per partition.
    pub partitions: BTreeMap<i32, PartitionSummary>,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Chain, checkpoint and completeness verifier.
pub struct Verifier {
    keys: BTreeMap<String, VerifyKey>,
    report: Report,
    /// Intent offset → audit offset of its decision, per partition.
    decided: BTreeMap<i32, HashMap<i64, i64>>,
}

impl Verifier {
    /// A verifier trusting the given gate audit keys; `resume` holds trusted heads.
    pub fn new(keys: BTreeMap<String, VerifyKey>, resume: BTreeMap<i32, PartitionHead>) -> Self {
        let mut report = Report::default();
        for (p, head) in resume {
            report.partitions.insert(
                p,
                PartitionSummary {
                    head,
                    ..PartitionSummary::default()
                },
            );
        }
        Verifier {
            keys,
            report,
            decided: BTreeMap::new(),
        }
    }

    fn problem(&mut self, partition: i32, offset: i64, kind: &str, detail: String) {
        self.report.problems.push(Problem {
            partition,
            offset,
            kind: kind.to_string(),
            detail,
        });
    }

    /// Feeds the next record of audit partition `partition` (records must come in offset order).
    pub fn feed(&mut self, partition: i32, offset: i64, value: Option<&[u8]>) {
        let summary = self
            .report
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionSummary {
                head: PartitionHead {
                    next_offset: 0,
                    next_seq: 0,
                    hash: GENESIS_HASH.to_string(),
                    max_source_offset: -1,
                },
                ..PartitionSummary::default()
            });
        summary.head.next_offset = offset + 1;
        let expected_seq = summary.head.next_seq;
        let expected_prev = summary.head.hash.clone();
        let event = match audit::decode_framed(value) {
            Ok(e) => e,
            Err(e) => {
                return self.problem(partition, offset, "FOREIGN_RECORD", e.to_string());
            }
        };
        let recomputed = audit::chain_hash(&event).unwrap_or_default();
        let mut problems = Vec::new();
        if recomputed != event.hash {
            problems.push((
                "HASH_MISMATCH",
                format!("seq {} hash does not match its content", event.seq),
            ));
        }
        if event.seq != expected_seq {
            let kind = if event.seq < expected_seq {
                "DUPLICATE_SEQUENCE"
            } else {
                "SEQUENCE_GAP"
            };
            problems.push((
                kind,
                format!("seq {} where {expected_seq} was expected", event.seq),
            ));
        }
        if event.prev_hash != expected_prev {
            problems.push((
                "CHAIN_BREAK",
                format!(
                    "prev_hash of seq {} does not link to the previous record",
                    event.seq
                ),
            ));
        }
        if let Some(g) = &event.governance
            && g.event_type == CHECKPOINT
        {
            match serde_json::from_str::<Checkpoint>(&g.detail) {
                Err(e) => {
                    problems.push(("CHECKPOINT_INVALID", format!("unreadable checkpoint: {e}")))
                }
                Ok(c) => match self.keys.get(&c.key_id) {
                    None => problems.push((
                        "CHECKPOINT_UNKNOWN_KEY",
                        format!("key {:?} is not a gate audit key", c.key_id),
                    )),
                    Some(k) if !c.verify(k) => {
                        problems.push(("CHECKPOINT_INVALID", "signature does not verify".into()))
                    }
                    Some(_)
                        if c.partition != partition
                            || c.signed_seq != expected_seq - 1
                            || c.signed_hash != expected_prev =>
                    {
                        problems.push((
                            "CHECKPOINT_MISMATCH",
                            format!(
                                "signs seq {} of partition {}, not this chain's head",
                                c.signed_seq, c.partition
                            ),
                        ));
                    }
                    Some(_) => {
                        if let Some(s) = self.report.partitions.get_mut(&partition) {
                            s.checkpoints += 1;
                        }
                    }
                },
            }
        }
        if let Some(d) = &event.decision {
            if d.source_partition != partition {
                problems.push((
                    "WRONG_PARTITION",
                    format!(
                        "decision for intent partition {} in audit partition {partition}",
                        d.source_partition
                    ),
                ));
            }
            let seen = self.decided.entry(d.source_partition).or_default();
            if let Some(first) = seen.insert(d.source_offset, offset) {
                problems.push((
                    "DUPLICATE_DECISION",
                    format!(
                        "intent {}:{} already decided at audit offset {first}",
                        d.source_partition, d.source_offset
                    ),
                ));
            }
        }
        for (kind, detail) in problems {
            self.problem(partition, offset, kind, detail);
        }
        // Resynchronise on the record as written, so one break is reported once.
        if let Some(s) = self.report.partitions.get_mut(&partition) {
            s.links += 1;
            s.head.next_seq = event.seq + 1;
            s.head.hash = event.hash.clone();
            if let Some(d) = &event.decision {
                s.decisions += 1;
                s.head.max_source_offset = s.head.max_source_offset.max(d.source_offset);
            }
        }
    }

    /// Checks that every intent offset in `offsets` (partition `partition` of the intents topic,
    /// all below the gate's committed offset) has exactly one decision.
    pub fn expect_decided(&mut self, partition: i32, offsets: impl IntoIterator<Item = i64>) {
        let missing: Vec<i64> = {
            let seen = self.decided.get(&partition);
            offsets
                .into_iter()
                .filter(|o| !seen.is_some_and(|s| s.contains_key(o)))
                .collect()
        };
        for o in missing {
            self.problem(
                partition,
                o,
                "MISSING_DECISION",
                format!("intent {partition}:{o} has no decision"),
            );
        }
    }

    /// The report so far.
    pub fn finish(self) -> Report {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::signature::SignKey;
    use crate::wire::audit::{AuditEvent, DecisionRecord, GovernanceRecord};
    use crate::wire::framing::frame;

    fn link(seq: i64, prev: &str, source_offset: i64) -> AuditEvent {
        AuditEvent {
            seq,
            prev_hash: prev.into(),
            hash: String::new(),
            recorded_at: 1,
            gate_id: "g".into(),
            policy_version: "p".into(),
            decision: Some(DecisionRecord {
                source_partition: 0,
                source_offset,
                ..Default::default()
            }),
            governance: None,
        }
        .seal()
        .unwrap()
    }

    fn bytes(e: &AuditEvent) -> Vec<u8> {
        frame(1, &audit::encode(e).unwrap())
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let prev = out
                .last()
                .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
            out.push(link(i, &prev, i));
        }
        out
    }

    fn run(events: &[Vec<u8>], keys: BTreeMap<String, VerifyKey>) -> Report {
        let mut v = Verifier::new(keys, BTreeMap::new());
        for (o, e) in events.iter().enumerate() {
            v.feed(0, o as i64, Some(e));
        }
        v.finish()
    }

    #[test]
    fn a_clean_chain_verifies() {
        let r = run(
            &chain(5).iter().map(bytes).collect::<Vec<_>>(),
            BTreeMap::new(),
        );
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.partitions[&0].links, 5);
    }

    #[test]
    fn tampering_deletion_and_insertion_are_located() {
        let c = chain(5);
        // Tamper with record 2's content but keep its hash.
        let mut tampered = c.clone();
        tampered[2]
            .decision
            .as_mut()
            .unwrap()
            .reasons
            .push("X".into());
        let r = run(
            &tampered.iter().map(bytes).collect::<Vec<_>>(),
            BTreeMap::new(),
        );
        assert_eq!(
            (r.problems[0].offset, r.problems[0].kind.as_str()),
            (2, "HASH_MISMATCH")
        );
        // Delete record 2.
        let mut deleted: Vec<Vec<u8>> = c.iter().map(bytes).collect();
        deleted.remove(2);
        let r = run(&deleted, BTreeMap::new());
        assert_eq!(r.problems[0].offset, 2);
        assert_eq!(r.problems[0].kind, "SEQUENCE_GAP");
        // A foreign record.
        let mut foreign: Vec<Vec<u8>> = c.iter().map(bytes).collect();
        foreign.insert(3, b"hello".to_vec());
        let r = run(&foreign, BTreeMap::new());
        assert_eq!(
            (r.problems[0].offset, r.problems[0].kind.as_str()),
            (3, "FOREIGN_RECORD")
        );
    }

    #[test]
    fn checkpoints_and_completeness() {
        let key = SignKey::ed25519_from_seed(&[5; 32]);
        let pk = VerifyKey::Ed25519(
            ed25519_dalek::VerifyingKey::from_bytes(&key.public_key().unwrap()).unwrap(),
        );
        let mut c = chain(3);
        let cp = Checkpoint::sign("audit1", &key, 0, 2, &c[2].hash);
        let e = AuditEvent {
            seq: 3,
            prev_hash: c[2].hash.clone(),
            hash: String::new(),
            recorded_at: 1,
            gate_id: "g".into(),
            policy_version: "p".into(),
            decision: None,
            governance: Some(GovernanceRecord {
                event_type: CHECKPOINT.into(),
                detail: serde_json::to_string(&cp).unwrap(),
            }),
        }
        .seal()
        .unwrap();
        c.push(e);
        let keys: BTreeMap<String, VerifyKey> = [("audit1".to_string(), pk)].into();
        let mut v = Verifier::new(keys.clone(), BTreeMap::new());
        for (o, e) in c.iter().enumerate() {
            v.feed(0, o as i64, Some(&bytes(e)));
        }
        v.expect_decided(0, 0..4);
        let r = v.finish();
        assert_eq!(r.partitions[&0].checkpoints, 1);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(
            (r.problems[0].offset, r.problems[0].kind.as_str()),
            (3, "MISSING_DECISION")
        );
        // The same checkpoint checked without the key is refused.
        let r = run(&c.iter().map(bytes).collect::<Vec<_>>(), BTreeMap::new());
        assert_eq!(r.problems[0].kind, "CHECKPOINT_UNKNOWN_KEY");
    }
}
