//! The audit verifier's logic, free of I/O: feed it every record of `bucket.audit` in partition
//! order, then the intent offsets that must have decisions; it reports each problem with the
//! exact partition and offset. `bucket audit verify` is the Kafka shell around it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::core::signature::VerifyKey;
use crate::wire::audit::checkpoint::{CHECKPOINT, Checkpoint};
use crate::wire::audit::{AuditReader, GENESIS_HASH};

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
    /// Next `bucket.control` offset expected folded into this chain (control chain only).
    #[serde(default)]
    pub control_next: i64,
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
    /// Control records folded into the chain, and those not folded yet (the gate's backlog).
    #[serde(default)]
    pub control: ControlSummary,
    /// Policy loads whose approvals were re-checked (`audit::approvals`).
    #[serde(default)]
    pub approvals: super::approvals::ApprovalSummary,
}

/// Completeness of `bucket.control` folding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ControlSummary {
    /// Control records found folded exactly once.
    pub folded: u64,
    /// Control records after the last folded one (not a failure: the gate has yet to fold them).
    pub pending: u64,
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
    /// Writer schemas of the links, by frame schema id.
    reader: AuditReader,
    report: Report,
    /// Intent offset → audit offset of its decision, per partition.
    decided: BTreeMap<i32, HashMap<i64, i64>>,
    /// Control offset → (audit partition, audit offset, control record SHA-256) of its fold.
    folded: BTreeMap<i64, (i32, i64, String)>,
    /// Control records below this were verified before (resumed from a trusted head).
    control_floor: i64,
    /// Policy approvals claimed by POLICY_LOADED links, re-checked in `finish`.
    approvals: super::approvals::ApprovalAudit,
    /// Per partition verified from its first link: its Merkle tree so far, against which the
    /// checkpoints' transparency-log notes are checked (unknown for resumed partitions).
    trees: HashMap<i32, crate::tlog::Frontier>,
    /// Partitions resumed from a trusted head (their trees start unknown).
    resumed: std::collections::BTreeSet<i32>,
}

impl Verifier {
    /// A verifier trusting the given gate audit keys, reading links with `reader`; `resume`
    /// holds trusted heads.
    pub fn new(
        keys: BTreeMap<String, VerifyKey>,
        reader: AuditReader,
        resume: BTreeMap<i32, PartitionHead>,
    ) -> Self {
        let control_floor = resume
            .get(&crate::wire::control::CHAIN_PARTITION)
            .map_or(0, |h| h.control_next);
        let mut report = Report::default();
        let resumed = resume.keys().copied().collect();
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
            reader,
            report,
            decided: BTreeMap::new(),
            folded: BTreeMap::new(),
            control_floor,
            approvals: Default::default(),
            trees: HashMap::new(),
            resumed,
        }
    }

    /// Re-checks policy approvals against `pin`, the operator's approvers of start policies.
    pub fn with_approvers(mut self, pin: Option<crate::core::approvals::ApproverSet>) -> Self {
        let resumed = !self.report.partitions.is_empty();
        self.approvals = super::approvals::ApprovalAudit::new(pin, resumed);
        self
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
                    control_next: 0,
                },
                ..PartitionSummary::default()
            });
        summary.head.next_offset = offset + 1;
        let expected_seq = summary.head.next_seq;
        let expected_prev = summary.head.hash.clone();
        let link = match self.reader.read(value) {
            Ok(link) => link,
            Err(e) => {
                return self.problem(partition, offset, "FOREIGN_RECORD", e.to_string());
            }
        };
        let hash_ok = link.hash_ok();
        let event = link.event;
        let mut problems = Vec::new();
        if !hash_ok {
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
        if let Some(g) = &event.governance {
            self.approvals
                .observe(partition, offset, &g.event_type, &g.detail);
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
                    Some(k) => {
                        if let (Some(note), Some(tree)) = (&c.note, self.trees.get(&partition))
                            && let Err((kind, detail)) = check_note(note, k, partition, tree)
                        {
                            problems.push((kind, detail));
                        }
                        if let Some(s) = self.report.partitions.get_mut(&partition) {
                            s.checkpoints += 1;
                        }
                    }
                },
            }
        }
        if !self.resumed.contains(&partition) {
            self.trees
                .entry(partition)
                .or_default()
                .append_bytes(value.unwrap_or_default());
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
        let folded = event
            .governance
            .as_ref()
            .and_then(|g| crate::wire::control::folded_record(&g.detail));
        if let Some((at, sha)) = folded.clone() {
            if partition != crate::wire::control::CHAIN_PARTITION {
                problems.push((
                    "CONTROL_WRONG_CHAIN",
                    format!("control offset {at} folded into audit partition {partition}"),
                ));
            }
            if let Some((p0, o0, _)) = self.folded.insert(at, (partition, offset, sha)) {
                problems.push((
                    "DUPLICATE_CONTROL_EVENT",
                    format!("control offset {at} already folded at audit {p0}:{o0}"),
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
            if let Some((at, _)) = folded {
                s.head.control_next = s.head.control_next.max(at + 1);
            }
        }
    }

    /// Checks the control topic against the folds seen: every control record `(offset,
    /// SHA-256 of its value)` up to the last folded one is folded, with the same bytes.
    pub fn expect_control(&mut self, records: impl IntoIterator<Item = (i64, String)>) {
        let cp = crate::wire::control::CHAIN_PARTITION;
        let last = self.folded.keys().next_back().copied();
        let floor = self.control_floor;
        for (offset, sha) in records {
            if offset < floor {
                continue;
            }
            match self.folded.get(&offset).cloned() {
                Some((p, at, folded_sha)) if folded_sha != sha => self.problem(
                    p,
                    at,
                    "CONTROL_MISMATCH",
                    format!("control record {offset} differs from the bytes the gate folded"),
                ),
                Some(_) => self.report.control.folded += 1,
                None if last.is_some_and(|l| offset < l) => self.problem(
                    cp,
                    offset,
                    "MISSING_CONTROL_EVENT",
                    format!("control record {offset} was never folded into the audit chain"),
                ),
                None => self.report.control.pending += 1,
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
    pub fn finish(mut self) -> Report {
        let (problems, summary) = self.approvals.finish();
        for (partition, offset, kind, detail) in problems {
            self.report.problems.push(Problem {
                partition,
                offset,
                kind: kind.to_string(),
                detail,
            });
        }
        self.report.approvals = summary;
        self.report
    }
}

/// Checks a checkpoint's transparency-log note: signed by the gate key `key` under the key name
/// of the deployment its origin names, for this partition's log, over exactly `tree` (the links
/// up to the checkpointed one).
fn check_note(
    note: &str,
    key: &VerifyKey,
    partition: i32,
    tree: &crate::tlog::Frontier,
) -> Result<(), (&'static str, String)> {
    use crate::tlog::checkpoint::{TreeHead, key_name};
    let invalid = |e: String| ("CHECKPOINT_NOTE_INVALID", e);
    let VerifyKey::Ed25519(pk) = key else {
        return Err(invalid("the note's key is not an Ed25519 key".into()));
    };
    let body = note.split("\n\n").next().unwrap_or_default();
    let claimed = TreeHead::parse(&format!("{body}\n")).map_err(|e| invalid(e.to_string()))?;
    let suffix = format!("/bucket.audit/{partition}");
    let Some(deployment) = claimed.origin.strip_suffix(&suffix) else {
        return Err((
            "CHECKPOINT_NOTE_MISMATCH",
            format!(
                "origin {:?} is not partition {partition}'s log",
                claimed.origin
            ),
        ));
    };
    let verifier = crate::tlog::NoteVerifier::from_ed25519(&key_name(deployment), &pk.to_bytes())
        .map_err(|e| invalid(e.to_string()))?;
    let text = crate::tlog::note::open(note, &[verifier]).map_err(|e| invalid(e.to_string()))?;
    let head = TreeHead::parse(&text).map_err(|e| invalid(e.to_string()))?;
    if head.size != tree.size() || head.root != tree.root() {
        return Err((
            "CHECKPOINT_NOTE_MISMATCH",
            format!(
                "note commits to a tree of {} links that is not this chain's ({} links)",
                head.size,
                tree.size()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::signature::SignKey;
    use crate::wire::audit::{self, AuditEvent, DecisionRecord, GovernanceRecord};
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

    /// Schema id 1 is version 1, id 2 the latest.
    fn reader() -> AuditReader {
        AuditReader::with_ids([(1, 1), (2, audit::LATEST_VERSION)])
    }

    #[test]
    fn a_chain_that_changes_schema_version_verifies_and_tampering_still_shows() {
        // Links 0..3 written as version 1, 3..6 as the latest, each hashed over its own bytes.
        let mut framed = Vec::new();
        let mut prev = GENESIS_HASH.to_string();
        for i in 0..6 {
            let version = if i < 3 { 1 } else { audit::LATEST_VERSION };
            let mut e = link(i, &prev, i);
            e.hash.clear();
            let sealed = e.seal_as(version).unwrap();
            prev = sealed.event.hash.clone();
            framed.push(frame(if i < 3 { 1 } else { 2 }, &sealed.body));
        }
        assert!(run(&framed, BTreeMap::new()).ok());
        let last = framed.len() - 1;
        let n = framed[last].len();
        framed[last][n - 1] ^= 1;
        let report = run(&framed, BTreeMap::new());
        assert!(!report.ok());
        assert_eq!(report.problems[0].offset, last as i64);
    }

    fn bytes(e: &AuditEvent) -> Vec<u8> {
        frame(2, &audit::encode(e).unwrap())
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
        let mut v = Verifier::new(keys, reader(), BTreeMap::new());
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
        let mut v = Verifier::new(keys.clone(), reader(), BTreeMap::new());
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

    /// A chain of 3 decisions and a checkpoint whose note commits to `tree` (as `deployment`).
    fn noted_chain(
        key: &SignKey,
        deployment: &str,
        tree: impl Fn(&[AuditEvent]) -> crate::tlog::Frontier,
    ) -> Vec<Vec<u8>> {
        let c = chain(3);
        let mut cp = Checkpoint::sign("audit1", key, 0, 2, &c[2].hash);
        cp.note =
            Some(crate::tlog::checkpoint::signed_note(deployment, key, 0, &tree(&c)).unwrap());
        let detail = serde_json::to_value(&cp).unwrap();
        let mut links: Vec<Vec<u8>> = c.iter().map(bytes).collect();
        links.push(bytes(&governance(3, &c[2].hash, CHECKPOINT, detail)));
        links
    }

    #[test]
    fn checkpoint_notes_must_commit_to_the_chain_as_stored() {
        let key = SignKey::ed25519_from_seed(&[5; 32]);
        let pk = VerifyKey::Ed25519(
            ed25519_dalek::VerifyingKey::from_bytes(&key.public_key().unwrap()).unwrap(),
        );
        let keys: BTreeMap<String, VerifyKey> = [("audit1".to_string(), pk)].into();
        let check = |links: &[Vec<u8>]| {
            let mut v = Verifier::new(keys.clone(), reader(), BTreeMap::new());
            for (o, l) in links.iter().enumerate() {
                v.feed(0, o as i64, Some(l));
            }
            v.finish()
                .problems
                .into_iter()
                .map(|p| p.kind)
                .filter(|k| k.starts_with("CHECKPOINT"))
                .collect::<Vec<_>>()
        };
        let honest = |c: &[AuditEvent]| {
            let mut t = crate::tlog::Frontier::new();
            for e in c {
                t.append_bytes(&bytes(e));
            }
            t
        };
        assert!(check(&noted_chain(&key, "bucket.test", honest)).is_empty());
        // A note over other bytes (one link changed before signing) is caught.
        let forged = |c: &[AuditEvent]| {
            let mut t = honest(&c[..2]);
            t.append_bytes(b"another third link");
            t
        };
        assert_eq!(
            check(&noted_chain(&key, "bucket.test", forged)),
            ["CHECKPOINT_NOTE_MISMATCH"]
        );
        // A note signed by another key, with the chain's own signature intact, is caught.
        let mut links = noted_chain(&key, "bucket.test", honest);
        let other = SignKey::ed25519_from_seed(&[6; 32]);
        let mut e = reader().decode_framed(Some(&links[3])).unwrap();
        let g = e.governance.as_mut().unwrap();
        let mut cp: Checkpoint = serde_json::from_str(&g.detail).unwrap();
        let tree = honest(&chain(3));
        cp.note =
            Some(crate::tlog::checkpoint::signed_note("bucket.test", &other, 0, &tree).unwrap());
        g.detail = serde_json::to_string(&cp).unwrap();
        e.hash.clear();
        links[3] = bytes(&e.seal().unwrap());
        assert_eq!(check(&links), ["CHECKPOINT_NOTE_INVALID"]);
    }

    fn governance(seq: i64, prev: &str, event_type: &str, detail: serde_json::Value) -> AuditEvent {
        AuditEvent {
            seq,
            prev_hash: prev.into(),
            hash: String::new(),
            recorded_at: 1,
            gate_id: "g".into(),
            policy_version: "p".into(),
            decision: None,
            governance: Some(GovernanceRecord {
                event_type: event_type.into(),
                detail: detail.to_string(),
            }),
        }
        .seal()
        .unwrap()
    }

    /// Chain 0 folding control offsets `folds` (with value hashes `sha(o)`).
    fn folding(folds: &[i64]) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for (i, o) in folds.iter().enumerate() {
            let prev = out
                .last()
                .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
            let detail = serde_json::json!({"control_offset": o, "control_sha256": sha(*o)});
            out.push(governance(i as i64, &prev, "SCHEMAS_APPLIED", detail));
        }
        out
    }

    fn sha(o: i64) -> String {
        format!("sha-{o}")
    }

    fn control_report(folds: &[i64], topic: &[(i64, String)]) -> Report {
        let mut v = Verifier::new(BTreeMap::new(), reader(), BTreeMap::new());
        for (o, e) in folding(folds).iter().enumerate() {
            v.feed(0, o as i64, Some(&bytes(e)));
        }
        v.expect_control(topic.iter().cloned());
        v.finish()
    }

    #[test]
    fn control_records_folded_once_each_verify_and_the_tail_is_pending() {
        let topic: Vec<(i64, String)> = (0..5).map(|o| (o, sha(o))).collect();
        let r = control_report(&[0, 1, 2], &topic);
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.control.folded, r.control.pending), (3, 2));
    }

    #[test]
    fn a_skipped_duplicated_or_altered_control_record_is_located() {
        let topic: Vec<(i64, String)> = (0..4).map(|o| (o, sha(o))).collect();
        let r = control_report(&[0, 2, 3], &topic);
        assert_eq!(
            (r.problems[0].offset, r.problems[0].kind.as_str()),
            (1, "MISSING_CONTROL_EVENT")
        );
        let r = control_report(&[0, 1, 1, 2, 3], &topic);
        assert_eq!(
            (r.problems[0].offset, r.problems[0].kind.as_str()),
            (2, "DUPLICATE_CONTROL_EVENT"),
            "located at the audit offset of the second fold"
        );
        let mut altered = topic.clone();
        altered[2].1 = "other".into();
        let r = control_report(&[0, 1, 2, 3], &altered);
        assert_eq!(
            (r.problems[0].offset, r.problems[0].kind.as_str()),
            (2, "CONTROL_MISMATCH")
        );
    }
}
