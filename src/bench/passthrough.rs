//! The baseline: a transactional passthrough copier with the gate's topology and client settings
//! (`gate::clients`) but no decoding, rules or audit chain. Per input record it writes the value
//! unchanged to the outcome topic and a 12-byte audit record (source partition and offset) to
//! the audit partition with the same number, then commits on the gate's schedule and through the
//! gate's own commit path (`gate::txn`, `gate::clients::commit_within`): begin → produce → send
//! offsets with the group metadata → commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use crate::gate::TopicNames;
use crate::gate::clients::{self, COMMIT_DEADLINE, TXN_TIMEOUT};
use crate::gate::txn::OpenTxn;

const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the copier needs.
#[derive(Debug, Clone)]
pub struct PassthroughOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group (fresh per run).
    pub group_id: String,
    /// Instance id (forms the transactional id with the group).
    pub instance_id: String,
    /// Input and output topics (`accepted` is the outcome topic, `rejected` is unused).
    pub topics: TopicNames,
    /// Longest a transaction stays open.
    pub commit_interval: Duration,
    /// Most records per transaction.
    pub max_batch: usize,
}

/// Audit value of the copier: source partition (i32 BE) then source offset (i64 BE).
pub fn audit_value(partition: i32, offset: i64) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&partition.to_be_bytes());
    v[4..].copy_from_slice(&offset.to_be_bytes());
    v
}

/// Reads back a copier audit value.
pub fn parse_audit_value(v: &[u8]) -> Option<(i32, i64)> {
    let p = i32::from_be_bytes(v.get(..4)?.try_into().ok()?);
    let o = i64::from_be_bytes(v.get(4..12)?.try_into().ok()?);
    Some((p, o))
}

/// Copies until `shutdown` is cancelled, then commits and returns the number of records copied.
/// Blocking: run it on its own thread, like `gate::run`.
pub fn run(opts: PassthroughOptions, shutdown: CancellationToken) -> Result<u64, BenchError> {
    let producer: Arc<ThreadedProducer<DefaultProducerContext>> = Arc::new(
        clients::producer_config(
            &opts.brokers,
            &format!("{}-{}", opts.group_id, opts.instance_id),
        )
        .create()?,
    );
    producer.init_transactions(OP_TIMEOUT)?;
    let consumer: BaseConsumer = clients::consumer_config(
        &opts.brokers,
        &opts.group_id,
        &format!("bucket-bench-copier-{}", opts.instance_id),
    )
    .create()?;
    consumer.subscribe(&[&opts.topics.intents])?;
    let mut txn: Option<OpenTxn> = None;
    let mut copied = 0u64;
    loop {
        if shutdown.is_cancelled() {
            commit(&opts, &consumer, &producer, &mut txn)?;
            consumer.unsubscribe();
            return Ok(copied);
        }
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "copier consumer error"),
            Some(Ok(m)) => {
                if txn.is_none() {
                    producer.begin_transaction()?;
                    txn = Some(OpenTxn::new(Instant::now()));
                }
                copy(&opts.topics, &producer, &m)?;
                copied += 1;
                if let Some(t) = txn.as_mut() {
                    t.decided(m.partition(), m.offset());
                }
            }
        }
        if let Some(t) = &txn
            && t.is_due(opts.max_batch, opts.commit_interval)
        {
            commit(&opts, &consumer, &producer, &mut txn)?;
        }
    }
}

fn copy(
    topics: &TopicNames,
    producer: &ThreadedProducer<DefaultProducerContext>,
    m: &BorrowedMessage<'_>,
) -> Result<(), BenchError> {
    let audit = audit_value(m.partition(), m.offset());
    let ts = m.timestamp().to_millis();
    let mut outcome: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topics.accepted);
    let mut link: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topics.audit)
        .partition(m.partition())
        .payload(&audit[..]);
    if let Some(k) = m.key() {
        outcome = outcome.key(k);
        link = link.key(k);
    }
    if let Some(v) = m.payload() {
        outcome = outcome.payload(v);
    }
    if let Some(ts) = ts {
        link = link.timestamp(ts);
    }
    send(producer, outcome)?;
    send(producer, link)
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), BenchError> {
    Ok(crate::kafka::produce::send_waiting(
        producer,
        record,
        Duration::from_millis(2),
    )?)
}

/// Commits the open transaction on the gate's own path: the same offset bookkeeping
/// ([`OpenTxn`]) and the same bounded commit ([`clients::commit_within`]), so the baseline
/// cannot drift from the gate.
fn commit(
    opts: &PassthroughOptions,
    consumer: &BaseConsumer,
    producer: &Arc<ThreadedProducer<DefaultProducerContext>>,
    txn: &mut Option<OpenTxn>,
) -> Result<(), BenchError> {
    let Some(t) = txn.take() else {
        return Ok(());
    };
    let mut offsets = TopicPartitionList::new();
    for (p, next) in t.commit_offsets(|_| None) {
        offsets.add_partition_offset(&opts.topics.intents, p, Offset::Offset(next))?;
    }
    let cgm = consumer
        .group_metadata()
        .ok_or_else(|| BenchError::Incomplete("copier consumer has no group metadata".into()))?;
    let started = Instant::now();
    let Some(result) = clients::commit_within(producer, offsets, cgm, COMMIT_DEADLINE) else {
        let _ = producer.abort_transaction(TXN_TIMEOUT);
        return Err(BenchError::Incomplete(format!(
            "copier commit did not return within {COMMIT_DEADLINE:?}"
        )));
    };
    tracing::debug!(
        records = t.intents(),
        commit_ms = started.elapsed().as_millis() as u64,
        "copier transaction committed"
    );
    if let Err(e) = result {
        // A benchmark does not recover: abort so nothing half-done is left open, and report.
        let _ = producer.abort_transaction(TXN_TIMEOUT);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_value_round_trips() {
        assert_eq!(
            parse_audit_value(&audit_value(5, 1 << 40)),
            Some((5, 1 << 40))
        );
        assert_eq!(parse_audit_value(&[0; 3]), None);
    }
}
