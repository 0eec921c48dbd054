//! The exactly-once path, written once: the session's transactional producer and its open
//! transaction ([`OpenTxn`], the offset bookkeeping). Begin, send, commit with the consumed
//! offsets and the group metadata (KIP-447), abort: every transaction of the gate, the decision
//! batches and the changelog copies alike, goes through these four steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::error;

use crate::gate::clients::{self, AuditDeliveries, COMMIT_DEADLINE, TXN_TIMEOUT};
use crate::gate::records::OutRecord;
use crate::gate::txn::OpenTxn;
use crate::gate::{GateError, kafka_records};
use crate::kafka::produce::send_waiting;

/// Longest wait after a commit for the delivery reports of its audit links (they are
/// acknowledged already; only the callbacks may lag). A partition still missing one gets no
/// store checkpoint this time: its changes are kept and written with the next commit.
const DELIVERY_REPORTS_WAIT: Duration = Duration::from_secs(2);

/// Why a commit did not happen, as the session must act on it.
#[derive(Debug)]
pub enum CommitFailure {
    /// Abortable (ILLEGAL_GENERATION, a coordinator that lost the transaction): abort, roll
    /// the touched tasks back and rewind their partitions.
    MustAbort(KafkaError),
    /// Fatal (fenced, or any other failure): the session ends; the next one re-initialises
    /// the transactional id, which aborts what was open.
    Fatal(KafkaError),
    /// The commit did not return within [`COMMIT_DEADLINE`]: abandoned like a fatal error.
    Stuck,
}

impl From<CommitFailure> for GateError {
    fn from(f: CommitFailure) -> GateError {
        match f {
            CommitFailure::MustAbort(e) | CommitFailure::Fatal(e) => e.into(),
            CommitFailure::Stuck => GateError::CommitStuck(COMMIT_DEADLINE),
        }
    }
}

/// The transactional producer and the transaction it has open.
pub struct ExactlyOnce {
    producer: Arc<ThreadedProducer<AuditDeliveries>>,
    intents_topic: String,
    audit_topic: String,
    txn: Option<OpenTxn>,
}

impl ExactlyOnce {
    /// The path over `producer` (transactions initialised), committing offsets of
    /// `intents_topic` and counting deliveries to `audit_topic`.
    pub fn new(
        producer: ThreadedProducer<AuditDeliveries>,
        intents_topic: &str,
        audit_topic: &str,
    ) -> ExactlyOnce {
        ExactlyOnce {
            producer: Arc::new(producer),
            intents_topic: intents_topic.to_string(),
            audit_topic: audit_topic.to_string(),
            txn: None,
        }
    }

    /// The producer (its fatal error tells whether another process took the instance id).
    pub fn producer(&self) -> &ThreadedProducer<AuditDeliveries> {
        &self.producer
    }

    /// The open transaction, if any.
    pub fn txn(&self) -> Option<&OpenTxn> {
        self.txn.as_ref()
    }

    /// The open transaction, begun now if none is open.
    pub fn open(&mut self) -> Result<&mut OpenTxn, GateError> {
        if self.txn.is_none() {
            self.producer.begin_transaction()?;
        }
        Ok(self.txn.get_or_insert_with(|| OpenTxn::new(Instant::now())))
    }

    /// Hands one record to the producer inside the open transaction, waiting while its queue
    /// is full.
    pub fn send(&self, r: &OutRecord) -> Result<(), GateError> {
        let record = kafka_records::base_record(r);
        send_waiting(&self.producer, record, Duration::from_millis(2))?;
        if let Some(p) = r.partition.filter(|_| r.topic == self.audit_topic) {
            self.producer.context().sent(p);
        }
        Ok(())
    }

    /// Commits the open transaction with the consumed `offsets` of the intents topic (next to
    /// read, per partition) under the group `cgm`. On success, returns the offset of each audit
    /// partition's last delivered link (those whose reports all arrived). An abortable failure
    /// keeps the transaction for [`ExactlyOnce::abort`]; any other ends it here.
    pub fn commit(
        &mut self,
        offsets: &[(i32, i64)],
        cgm: ConsumerGroupMetadata,
    ) -> Result<std::collections::HashMap<i32, i64>, CommitFailure> {
        let result = self.commit_offsets(offsets, cgm);
        match &result {
            Ok(()) | Err(CommitFailure::Fatal(_) | CommitFailure::Stuck) => self.txn = None,
            Err(CommitFailure::MustAbort(_)) => {}
        }
        result.map(|()| self.producer.context().settled(DELIVERY_REPORTS_WAIT))
    }

    /// One transaction of its own (no transaction may be open): `records`, then the commit of
    /// `offsets` (unchanged group offsets that fence a zombie). Any failure ends the session.
    pub fn commit_alone(
        &self,
        records: &[OutRecord],
        offsets: &[(i32, i64)],
        cgm: ConsumerGroupMetadata,
    ) -> Result<(), GateError> {
        self.producer.begin_transaction()?;
        for r in records {
            self.send(r)?;
        }
        Ok(self.commit_offsets(offsets, cgm)?)
    }

    /// Aborts the open transaction and forgets what it sent; returns it (its bookkeeping says
    /// what to rewind), or None when none was open.
    pub fn abort(&mut self) -> Result<Option<OpenTxn>, GateError> {
        let Some(txn) = self.txn.take() else {
            return Ok(None);
        };
        self.producer.abort_transaction(TXN_TIMEOUT)?;
        self.producer.context().reset();
        Ok(Some(txn))
    }

    fn commit_offsets(
        &self,
        offsets: &[(i32, i64)],
        cgm: ConsumerGroupMetadata,
    ) -> Result<(), CommitFailure> {
        let mut list = TopicPartitionList::new();
        for (p, at) in offsets {
            list.add_partition_offset(&self.intents_topic, *p, Offset::Offset(*at))
                .map_err(CommitFailure::Fatal)?;
        }
        match clients::commit_within(&self.producer, list, cgm, COMMIT_DEADLINE) {
            Some(Ok(())) => Ok(()),
            Some(Err(KafkaError::Transaction(e))) if e.txn_requires_abort() => {
                Err(CommitFailure::MustAbort(KafkaError::Transaction(e)))
            }
            Some(Err(e)) => Err(CommitFailure::Fatal(e)),
            None => {
                error!(
                    deadline_ms = COMMIT_DEADLINE.as_millis() as u64,
                    "transaction commit did not return in time: abandoning this session; the next one re-initialises the transactional id, which aborts the transaction"
                );
                Err(CommitFailure::Stuck)
            }
        }
    }
}
