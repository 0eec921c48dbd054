//! The one consume → batch → write durably → commit offsets loop, shared by the artifact sink
//! ([`super::run_with`]) and the audit indexer ([`super::audit_index`]). What differs between
//! them (how a record is decoded into the batch, how a batch is written) is a [`BatchWriter`];
//! the exactly-once-ish rules live here, once:
//!
//! 1. collect up to `batch_max` records, or until `batch_linger` after the first one, or until
//!    [`BatchWriter::MAX_BATCH_BYTES`] of values;
//! 2. write the batch, retrying with backoff (200 ms → 30 s, [`BatchWriter::recover`] before
//!    each retry) while the store is unavailable, never skipping and never committing past it;
//! 3. only then commit `last offset + 1` per still-assigned partition, synchronously; a failed
//!    commit is retried with the next batch's offsets (the records are already stored);
//! 4. on shutdown the batch being collected is flushed and committed, then the group is left.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{RETRY_FIRST, RETRY_MAX, SinkError, SinkOptions, StoreError};

/// Consumer fetch limits, raised together so a 16 MiB artifact (plus framing) always fits.
const MAX_PARTITION_FETCH_BYTES: &str = "20971520";
const FETCH_MAX_BYTES: &str = "52428800";

/// The log lines that tell one loop from the other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLines {
    /// Once subscribed.
    pub consuming: &'static str,
    /// A write failed and is retried.
    pub write_failed: &'static str,
    /// An offset commit failed and is retried with the next batch.
    pub commit_failed: &'static str,
    /// The last batch is flushed and shutdown proceeds.
    pub stopping: &'static str,
}

/// What one loop does with its records: decode them into a batch, write a batch durably.
pub(crate) trait BatchWriter: Send {
    /// The decoded records of one batch.
    type Batch: Default + Send + Sync;
    /// What a durable write reports.
    type Report: Send;
    /// This loop's log lines.
    const LOG: LogLines;
    /// Record-value bytes after which a batch is written whatever its length.
    const MAX_BATCH_BYTES: usize;

    /// Adds one record to the batch (a record that does not decode is kept for quarantine).
    fn decode(&self, batch: &mut Self::Batch, m: &BorrowedMessage<'_>);

    /// Records in the batch.
    fn len(batch: &Self::Batch) -> usize;

    /// Stores the batch in one durable, idempotent step; Ok means offsets may be committed.
    fn write(
        &mut self,
        batch: &Self::Batch,
    ) -> impl Future<Output = Result<Self::Report, StoreError>> + Send;

    /// Called before retrying a failed write (e.g. reconnect).
    fn recover(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The batch is durable: report it (metrics, logs).
    fn written(
        &self,
        batch: &Self::Batch,
        report: &Self::Report,
        took: Duration,
        opts: &SinkOptions,
    );
}

/// Subscribes to `opts.topic` and runs the loop with `writer` until `shutdown`, then leaves
/// the group.
pub(crate) async fn drive<W: BatchWriter>(
    mut writer: W,
    opts: &SinkOptions,
    shutdown: &CancellationToken,
) -> Result<(), SinkError> {
    loop {
        let consumer: Arc<StreamConsumer> = Arc::new(consumer_config(opts).create()?);
        consumer.subscribe(&[opts.topic.as_str()])?;
        opts.telemetry.attached(&consumer);
        tracing::info!(topic = %opts.topic, group = %opts.group_id, "{}", W::LOG.consuming);
        let result = consume(&consumer, &mut writer, opts, shutdown).await;
        // A static member fenced (librdkafka also raises this when its own session timed out,
        // for example across a broker outage) joins again with a new consumer. Nothing is lost:
        // offsets are committed only after a durable write, and writes are idempotent.
        let fenced = matches!(
            result,
            Err(SinkError::Kafka(KafkaError::MessageConsumptionFatal(_)))
        ) && consumer
            .client()
            .fatal_error()
            .is_some_and(|(code, _)| crate::kafka::membership::is_fencing(code));
        if fenced && !shutdown.is_cancelled() {
            tracing::warn!(
                instance = opts.instance_id.as_deref().unwrap_or_default(),
                "static member fenced (its session timed out, or another process uses this \
                 instance id); joining the group again"
            );
            drop(consumer);
            tokio::time::sleep(RETRY_FIRST).await;
            continue;
        }
        leave_group(consumer, opts.instance_id.is_none()).await;
        return result;
    }
}

/// The librdkafka settings the loop's guarantees depend on.
pub(crate) fn consumer_config(opts: &SinkOptions) -> ClientConfig {
    let mut config = crate::kafka::security::client_config();
    config
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group_id)
        .set(
            "client.id",
            match &opts.instance_id {
                Some(id) => format!("bucket-sink-{id}"),
                None => "bucket-sink".to_string(),
            },
        )
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", MAX_PARTITION_FETCH_BYTES)
        .set("fetch.max.bytes", FETCH_MAX_BYTES);
    // As the gate: a killed sink's partitions move after the session timeout (10 s by default,
    // not librdkafka's 45 s: docs/reliability.md measured 87 s of sink recovery with that), or
    // come back at once when it restarts as the same static member.
    crate::kafka::membership::apply(
        &mut config,
        opts.instance_id.as_deref(),
        opts.session_timeout,
    );
    config
}

/// The batch being collected: the writer's records, next offsets to commit, value bytes.
struct Batch<B> {
    records: B,
    next_offsets: BTreeMap<(String, i32), i64>,
    bytes: usize,
}

/// The consume → store → commit loop.
async fn consume<W: BatchWriter>(
    consumer: &Arc<StreamConsumer>,
    writer: &mut W,
    opts: &SinkOptions,
    shutdown: &CancellationToken,
) -> Result<(), SinkError> {
    // Offsets durable in storage but not yet committed to Kafka (a failed commit is retried
    // with the next batch's).
    let mut pending: BTreeMap<(String, i32), i64> = BTreeMap::new();
    loop {
        let (batch, stop) = collect(consumer, &*writer, opts, shutdown).await?;
        if W::len(&batch.records) > 0 {
            let started = Instant::now();
            let report = write_durably(writer, &batch.records, shutdown, opts).await?;
            writer.written(&batch.records, &report, started.elapsed(), opts);
            for (tp, next) in batch.next_offsets {
                let e = pending.entry(tp).or_insert(next);
                *e = (*e).max(next);
            }
        }
        if !pending.is_empty() {
            match commit(consumer, &pending).await {
                Ok(()) => pending.clear(),
                Err(e) if stop => return Err(e),
                Err(error) => tracing::warn!(%error, "{}", W::LOG.commit_failed),
            }
        }
        if stop {
            tracing::info!("{}", W::LOG.stopping);
            return Ok(());
        }
    }
}

/// Collects one batch; returns it and whether shutdown was requested.
async fn collect<W: BatchWriter>(
    consumer: &StreamConsumer,
    writer: &W,
    opts: &SinkOptions,
    shutdown: &CancellationToken,
) -> Result<(Batch<W::Batch>, bool), SinkError> {
    let mut batch = Batch {
        records: W::Batch::default(),
        next_offsets: BTreeMap::new(),
        bytes: 0,
    };
    let mut deadline: Option<Instant> = None;
    while W::len(&batch.records) < opts.batch_max && batch.bytes < W::MAX_BATCH_BYTES {
        let linger = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok((batch, true)),
            _ = linger => break,
            received = consumer.recv() => match received {
                Ok(m) => {
                    batch.bytes += m.payload_len();
                    writer.decode(&mut batch.records, &m);
                    let next = batch
                        .next_offsets
                        .entry((m.topic().to_string(), m.partition()))
                        .or_insert(0);
                    *next = (*next).max(m.offset() + 1);
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + opts.batch_linger);
                    }
                }
                Err(e @ KafkaError::MessageConsumptionFatal(_)) => return Err(e.into()),
                Err(error) => tracing::warn!(%error, "kafka consume error; continuing"),
            },
        }
    }
    Ok((batch, false))
}

/// Writes the batch, retrying with backoff (and recovering) until the store takes it. Gives up
/// only when shutdown is requested, without committing anything.
async fn write_durably<W: BatchWriter>(
    writer: &mut W,
    batch: &W::Batch,
    shutdown: &CancellationToken,
    opts: &SinkOptions,
) -> Result<W::Report, SinkError> {
    let records = W::len(batch);
    let mut delay = RETRY_FIRST;
    let mut attempt: u32 = 1;
    loop {
        let result = if attempt > 1 {
            match writer.recover().await {
                Ok(()) => writer.write(batch).await,
                Err(e) => Err(e),
            }
        } else {
            writer.write(batch).await
        };
        match result {
            Ok(report) => return Ok(report),
            Err(error) => {
                opts.telemetry.write_failed(&error.to_string());
                tracing::warn!(%error, attempt, records,
                    retry_in_ms = delay.as_millis() as u64, "{}", W::LOG.write_failed);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(SinkError::Interrupted { records }),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
        attempt = attempt.saturating_add(1);
    }
}

/// Commits `next` offsets synchronously for the partitions still assigned to this consumer;
/// offsets of revoked partitions are dropped (their records are re-delivered to the new owner,
/// and the idempotent write makes that safe).
async fn commit(
    consumer: &Arc<StreamConsumer>,
    next: &BTreeMap<(String, i32), i64>,
) -> Result<(), SinkError> {
    let consumer = Arc::clone(consumer);
    let next = next.clone();
    tokio::task::spawn_blocking(move || -> Result<(), SinkError> {
        let assigned = consumer.assignment()?;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &next {
            if assigned.find_partition(topic, *partition).is_none() {
                tracing::info!(
                    partition = *partition,
                    offset = *offset,
                    "partition no longer assigned; not committing its offset"
                );
                continue;
            }
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        consumer.commit(&tpl, CommitMode::Sync)?;
        for ((_, partition), offset) in &next {
            tracing::debug!(partition = *partition, offset = *offset, "offset committed");
        }
        Ok(())
    })
    .await
    .map_err(|e| SinkError::Task(e.to_string()))?
}

/// Closes the consumer off the async threads (closing blocks while the group is left). A
/// dynamic member unsubscribes first, which leaves the group at once; a static member does not
/// (an unsubscribe would send LeaveGroup), so a restart within the session timeout gets the
/// same partitions back without a rebalance.
async fn leave_group(consumer: Arc<StreamConsumer>, leave: bool) {
    let closed = tokio::task::spawn_blocking(move || {
        if leave {
            consumer.unsubscribe();
        }
        drop(consumer);
    })
    .await;
    if let Err(error) = closed {
        tracing::warn!(%error, "closing the kafka consumer failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_config_carries_the_guarantees() {
        let c = consumer_config(&SinkOptions::new("b:9092", "g", "postgres://x@y/z"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        let partition_fetch: u64 = c
            .get("max.partition.fetch.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(partition_fetch >= 16 * 1024 * 1024 + 1024);
    }
}
