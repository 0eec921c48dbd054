//! Synthetic audit histories for `bucket bench state`: valid version 2 chains on one
//! partition (sealed links, typed facts), so restore can be timed against history length
//! without running the gate for hours. The mix is creates, updates, deletes and 20 %
//! rejections over a set of products; every decision is authenticated (its intent id enters
//! the replay window).

use rdkafka::producer::ThreadedProducer;

use super::BenchError;
use super::kafka::{Deliveries, flush, producer};
use super::workload::BenchRecord;
use crate::wire::audit::{AuditEvent, DecisionRecord, GENESIS_HASH, StateFacts};
use crate::wire::framing;

/// What a written history holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// Decision links written.
    pub decisions: u64,
    /// Accepted decisions.
    pub accepted: u64,
    /// Artifacts live (created, not deleted) at the end.
    pub live_artifacts: u64,
    /// Artifacts ever created.
    pub created: u64,
}

/// A generator of one partition's chain; `append` continues where the last call stopped.
pub struct HistoryWriter {
    products: u32,
    rng: u64,
    seq: i64,
    hash: String,
    now_ms: i64,
    next_artifact: u32,
    /// Live artifacts: (artifact number, version, size); product = number % products.
    live: Vec<(u32, i64, i64)>,
    history: History,
}

impl HistoryWriter {
    /// A writer of a new chain over `products` products.
    pub fn new(products: u32, seed: u64) -> HistoryWriter {
        HistoryWriter {
            products: products.max(1),
            rng: seed | 1,
            seq: 0,
            hash: GENESIS_HASH.to_string(),
            now_ms: 1_700_000_000_000,
            next_artifact: 0,
            live: Vec::new(),
            history: History::default(),
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The next link of the chain (sealed under the latest version) and its product key.
    pub fn link(&mut self) -> Result<(Vec<u8>, Vec<u8>), BenchError> {
        let roll = self.next() % 100;
        let intent_id = uuid::Uuid::from_u64_pair(self.next(), self.next()).to_string();
        self.now_ms += 1;
        let mut d = DecisionRecord {
            source_partition: 0,
            source_offset: self.seq,
            value_sha256: "00".repeat(32),
            intent_id: Some(intent_id),
            integration_id: Some("bench-backend".into()),
            requester_id: Some("bench".into()),
            authenticated: true,
            ..DecisionRecord::default()
        };
        let mut facts = StateFacts {
            rate_tat_us: Some(self.now_ms * 1000),
            ..StateFacts::default()
        };
        let pick = if self.live.is_empty() {
            0
        } else {
            (self.next() % self.live.len() as u64) as usize
        };
        let size = 1024 + (self.next() % 1024) as i64;
        let (number, operation) = match roll {
            0..20 => {
                d.reasons = vec!["VERSION_CONFLICT".into()];
                d.detail = "expected version is stale".into();
                facts.counted_rejection = false;
                (self.next_artifact.saturating_sub(1), "UPDATE")
            }
            20..30 if !self.live.is_empty() => {
                let (n, v, s) = self.live.swap_remove(pick);
                d.accepted = true;
                d.version = Some(v + 1);
                d.deleted = true;
                d.size_delta = -s;
                facts.artifact_delta = -1;
                (n, "DELETE")
            }
            30..50 if !self.live.is_empty() => {
                let entry = &mut self.live[pick];
                entry.1 += 1;
                d.accepted = true;
                d.version = Some(entry.1);
                d.content_size = size;
                d.size_delta = size - entry.2;
                entry.2 = size;
                (entry.0, "UPDATE")
            }
            _ => {
                let n = self.next_artifact;
                self.next_artifact += 1;
                self.live.push((n, 1, size));
                self.history.created += 1;
                d.accepted = true;
                d.version = Some(1);
                d.content_size = size;
                d.size_delta = size;
                facts.artifact_delta = 1;
                (n, "CREATE")
            }
        };
        let product = format!("product_{:03}", number % self.products);
        d.product_id = Some(product.clone());
        d.artifact_id = Some(format!("artifact-{number:010}"));
        d.operation = Some(operation.into());
        d.owner_id = Some("bench".into());
        d.artifact_class = Some("document".into());
        d.facts = Some(facts);
        self.history.decisions += 1;
        self.history.accepted += u64::from(d.accepted);
        let sealed = AuditEvent {
            seq: self.seq,
            prev_hash: self.hash.clone(),
            hash: String::new(),
            recorded_at: self.now_ms,
            gate_id: "bench-history".into(),
            policy_version: "bench".into(),
            decision: Some(d),
            governance: None,
        }
        .seal_as(crate::wire::audit::LATEST_VERSION)
        .map_err(|e| BenchError::Options(format!("sealing a history link: {e}")))?;
        self.seq += 1;
        self.hash = sealed.event.hash;
        Ok((product.into_bytes(), sealed.body))
    }

    /// A governance link continuing the chain (e.g. a `CHECKPOINT` carrying a note), sealed
    /// under the latest version: its seq and body.
    pub fn governance_link(
        &mut self,
        event_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(i64, Vec<u8>), BenchError> {
        self.now_ms += 1;
        let seq = self.seq;
        let sealed = AuditEvent {
            seq,
            prev_hash: self.hash.clone(),
            hash: String::new(),
            recorded_at: self.now_ms,
            gate_id: "bench-history".into(),
            policy_version: "bench".into(),
            decision: None,
            governance: Some(crate::wire::audit::GovernanceRecord {
                event_type: event_type.into(),
                detail: detail.to_string(),
            }),
        }
        .seal_as(crate::wire::audit::LATEST_VERSION)
        .map_err(|e| BenchError::Options(format!("sealing a history link: {e}")))?;
        self.seq += 1;
        self.hash = sealed.event.hash;
        Ok((seq, sealed.body))
    }

    /// The seq the next link gets.
    pub fn next_seq(&self) -> i64 {
        self.seq
    }

    /// Appends `n` decisions to partition 0 of `topic`, framed with `schema_id`.
    pub fn append(
        &mut self,
        brokers: &str,
        topic: &str,
        schema_id: u32,
        n: u64,
        progress: &indicatif::ProgressBar,
    ) -> Result<History, BenchError> {
        self.append_paced(brokers, topic, schema_id, n, None, progress)
    }

    /// [`Self::append`] at no more than `per_second` links a second (`None`: as fast as the
    /// client goes), e.g. the pace of a gate at full speed.
    pub fn append_paced(
        &mut self,
        brokers: &str,
        topic: &str,
        schema_id: u32,
        n: u64,
        per_second: Option<f64>,
        progress: &indicatif::ProgressBar,
    ) -> Result<History, BenchError> {
        let p: ThreadedProducer<Deliveries> = producer(brokers, false)?;
        let start = std::time::Instant::now();
        for i in 0..n {
            if let Some(rate) = per_second.filter(|r| *r > 0.0) {
                let due = start + std::time::Duration::from_secs_f64(i as f64 / rate);
                let now = std::time::Instant::now();
                if due > now + std::time::Duration::from_millis(1) {
                    std::thread::sleep(due - now);
                }
            }
            let (key, body) = self.link()?;
            let record = BenchRecord {
                key,
                value: framing::frame(schema_id, &body),
                signature: None,
            };
            super::kafka::send_to_partition(&p, topic, 0, &record)?;
            progress.inc(1);
        }
        flush(&p)?;
        self.history.live_artifacts = self.live.len() as u64;
        Ok(self.history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::audit::AuditReader;

    #[test]
    fn a_history_is_a_valid_chain_with_the_declared_mix() {
        let mut w = HistoryWriter::new(10, 7);
        let reader = AuditReader::with_ids([(9, crate::wire::audit::LATEST_VERSION)]);
        let mut prev = GENESIS_HASH.to_string();
        let mut task = crate::gate::task::Task::default();
        let policy = crate::core::Policy::parse_with(
            &super::super::workload::policy_text(10, false),
            &super::super::workload::BenchSecrets,
        );
        for i in 0..5000 {
            let (_, body) = w.link().unwrap();
            let link = reader.read(Some(&framing::frame(9, &body))).unwrap();
            assert!(link.hash_ok());
            assert_eq!((link.event.seq, &link.event.prev_hash), (i, &prev));
            prev = link.event.hash.clone();
            if let Ok(p) = &policy {
                task.fold(&link.event, p);
            }
        }
        let h = w.history;
        let rejected = h.decisions - h.accepted;
        assert!((800..1200).contains(&rejected), "{h:?}");
        if policy.is_ok() {
            let live: u64 = task
                .state
                .usage_by_product()
                .values()
                .map(|u| u.artifacts)
                .sum();
            assert_eq!(live, w.live.len() as u64);
        }
    }
}
