//! Sink: **how accepted bytes reach storage.** Consumes `bucket.accepted` with read_committed
//! isolation, writes each batch to PostgreSQL in one transaction (idempotent: a replay is a
//! no-op), and only after the database commit commits the consumer offsets synchronously.
//!
//! Ordering of one batch:
//! 1. collect up to `batch_max` records or until `batch_linger` after the first one;
//! 2. decode each; a record that does not decode goes to `sink_undecodable` (not lost, does not
//!    stall its partition);
//! 3. write versions and quarantined records in ONE database transaction, retrying with backoff
//!    while the database is unavailable (never skipping, never committing past);
//! 4. commit `last processed offset + 1` per still-assigned partition, `CommitMode::Sync`.
//!
//! A crash or rebalance between 3 and 4 re-delivers the batch; the idempotent insert makes that
//! safe. On shutdown the current batch is flushed and committed, then the group is left.

pub mod audit_index;
pub mod purge;
pub mod reconcile;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use store::{
    Accepted, Backend, BackendStore, BatchReport, FsStore, PgSink, Store, StoreError,
    StoredVersion, Undecodable, VersionStore,
};

use crate::wire::accepted::decode_framed;

/// Default topic the sink reads (the gate's accepted output).
pub const DEFAULT_TOPIC: &str = "bucket.accepted";

/// Consumer fetch limits, raised together so a 16 MiB artifact (plus framing) always fits.
const MAX_PARTITION_FETCH_BYTES: &str = "20971520";
const FETCH_MAX_BYTES: &str = "52428800";

/// A batch is written once its record values reach this many bytes, whatever `batch_max` says,
/// so a burst of 16 MiB artifacts cannot hold gigabytes in memory.
const BATCH_MAX_BYTES: usize = 64 * 1024 * 1024;

/// First and last delay between attempts to write a batch while the database is unavailable.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(200);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(30);

/// How to run the sink: where to read, where to write, how to batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// Kafka bootstrap servers, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Consumer group whose committed offsets mark what is durably stored.
    pub group_id: String,
    /// Topic to read accepted artifacts from (default `bucket.accepted`).
    pub topic: String,
    /// PostgreSQL URL; in production the `bucket_sink` role, which may only SELECT and INSERT.
    pub postgres_url: String,
    /// Most records written in one database transaction (at least 1).
    pub batch_max: usize,
    /// Longest wait after a batch's first record before writing it (end-to-end latency bound).
    pub batch_linger: Duration,
    /// Metrics and status for the admin server (Default: disabled).
    pub telemetry: crate::admin::SinkTelemetry,
}

impl SinkOptions {
    /// Options with the default topic, 500 records per batch and a 100 ms linger.
    pub fn new(
        brokers: impl Into<String>,
        group_id: impl Into<String>,
        postgres_url: impl Into<String>,
    ) -> Self {
        SinkOptions {
            brokers: brokers.into(),
            group_id: group_id.into(),
            topic: DEFAULT_TOPIC.to_string(),
            postgres_url: postgres_url.into(),
            batch_max: 500,
            batch_linger: Duration::from_millis(100),
            telemetry: Default::default(),
        }
    }

    /// Refuses options the sink cannot run with, before anything connects.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.postgres_url.trim().is_empty() {
            return Err(SinkError::Config("postgres_url must not be empty".into()));
        }
        self.validate_kafka()
    }

    /// The Kafka side of [`SinkOptions::validate`] (what every backend needs).
    fn validate_kafka(&self) -> Result<(), SinkError> {
        let empty = [
            ("brokers", &self.brokers),
            ("group_id", &self.group_id),
            ("topic", &self.topic),
        ];
        if let Some((name, _)) = empty.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(SinkError::Config(format!("{name} must not be empty")));
        }
        if self.batch_max == 0 {
            return Err(SinkError::Config("batch_max must be at least 1".into()));
        }
        Ok(())
    }
}

/// Why the sink stopped, classified by where the fault is and whether a restart can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The options or the database schema are wrong: fix the configuration, retrying won't help.
    #[error("sink configuration: {0}")]
    Config(String),
    /// Kafka refused or failed (client creation, subscription, fatal consume, final commit).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The database failed in a way the sink does not retry (start-up checks).
    #[error("database: {0}")]
    Database(#[from] StoreError),
    /// Shutdown arrived while a batch could not be made durable; its offsets were not committed,
    /// so the records will be re-delivered to the next sink.
    #[error("shut down before a batch of {records} records was durable; it will be re-delivered")]
    Interrupted {
        /// Records in the batch that was not written.
        records: usize,
    },
    /// A blocking helper task panicked or was cancelled (a bug).
    #[error("internal task failed: {0}")]
    Task(String),
}

impl SinkError {
    /// True when restarting the sink can help (outages), false for configuration mistakes.
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Config(_) => false,
            SinkError::Kafka(e) => !matches!(e, KafkaError::ClientConfig(..)),
            SinkError::Database(e) => !matches!(e, StoreError::Config(_)),
            SinkError::Interrupted { .. } | SinkError::Task(_) => true,
        }
    }
}

/// Runs the sink into PostgreSQL until `shutdown` is cancelled: consume, store durably, then
/// commit offsets.
pub async fn run(opts: SinkOptions, shutdown: CancellationToken) -> Result<(), SinkError> {
    opts.validate()?;
    let backend = Backend::Pg {
        url: opts.postgres_url.clone(),
    };
    let Some(store) = backend.connect(&shutdown).await? else {
        tracing::info!("sink shut down before the database was reachable");
        return Ok(());
    };
    run_with(store, opts, shutdown).await
}

/// Runs the sink into any [`VersionStore`] (`opts.postgres_url` is ignored) until `shutdown`.
pub async fn run_with<S: VersionStore>(
    mut store: S,
    opts: SinkOptions,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    opts.validate_kafka()?;
    let consumer: Arc<StreamConsumer> = Arc::new(consumer_config(&opts).create()?);
    consumer.subscribe(&[opts.topic.as_str()])?;
    opts.telemetry.attach(&consumer);
    tracing::info!(topic = %opts.topic, group = %opts.group_id, "sink consuming");

    let result = consume(&consumer, &mut store, &opts, &shutdown).await;
    leave_group(consumer).await;
    result
}

/// The librdkafka settings the sink's guarantees depend on.
fn consumer_config(opts: &SinkOptions) -> ClientConfig {
    let mut config = crate::kafka_security::client_config();
    config
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group_id)
        .set("client.id", "bucket-sink")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // As the gate: a killed sink's partitions move after 10 s, not librdkafka's 45 s
        // (docs/reliability.md measured 87 s of sink recovery after kill -9 with the default).
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", MAX_PARTITION_FETCH_BYTES)
        .set("fetch.max.bytes", FETCH_MAX_BYTES);
    config
}

/// The batch being collected: decoded versions, quarantined records, next offsets to commit.
#[derive(Debug, Default)]
struct Batch {
    accepted: Vec<Accepted>,
    undecodable: Vec<Undecodable>,
    next_offsets: BTreeMap<(String, i32), i64>,
    bytes: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.accepted.len() + self.undecodable.len()
    }

    fn push(&mut self, m: &BorrowedMessage<'_>) {
        let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
        self.bytes += m.payload_len();
        match decode_framed(m.payload()) {
            Ok(artifact) => {
                tracing::trace!(partition, offset, product = %artifact.product_id,
                    artifact = %artifact.artifact_id, version = artifact.version, "decoded");
                self.accepted.push(Accepted {
                    topic: topic.clone(),
                    partition,
                    offset,
                    artifact,
                });
            }
            Err(e) => {
                tracing::warn!(partition, offset, error = %e,
                    "undecodable record on accepted topic; quarantining");
                self.undecodable.push(Undecodable {
                    topic: topic.clone(),
                    partition,
                    offset,
                    raw: m.payload().map(<[u8]>::to_vec),
                    error: e.to_string(),
                });
            }
        }
        let next = self.next_offsets.entry((topic, partition)).or_insert(0);
        *next = (*next).max(offset + 1);
    }
}

/// The consume → store → commit loop.
async fn consume<S: VersionStore>(
    consumer: &Arc<StreamConsumer>,
    store: &mut S,
    opts: &SinkOptions,
    shutdown: &CancellationToken,
) -> Result<(), SinkError> {
    // Offsets durable in the database but not yet committed to Kafka (a failed commit is
    // retried with the next batch's).
    let mut pending: BTreeMap<(String, i32), i64> = BTreeMap::new();
    loop {
        let (batch, stop) = collect(consumer, opts, shutdown).await?;
        if batch.len() > 0 {
            let started = Instant::now();
            let report = write_durably(store, &batch, shutdown, &opts.telemetry).await?;
            opts.telemetry
                .batch_written(batch.len(), report.outcome(), started.elapsed());
            if report.versions_quarantined > 0 {
                tracing::error!(
                    versions = report.versions_quarantined,
                    "accepted versions quarantined instead of stored (sink_undecodable); \
                     see docs/runbook.md#bucketsinkversionquarantined"
                );
            }
            tracing::debug!(
                inserted = report.inserted,
                replayed = report.replayed,
                quarantined = report.quarantined,
                "batch durable"
            );
            for (tp, next) in batch.next_offsets {
                let e = pending.entry(tp).or_insert(next);
                *e = (*e).max(next);
            }
        }
        if !pending.is_empty() {
            match commit(consumer, &pending).await {
                Ok(()) => pending.clear(),
                Err(e) if stop => return Err(e),
                Err(e) => tracing::warn!(error = %e,
                    "offset commit failed; records stay stored and will be re-committed or replayed"),
            }
        }
        if stop {
            tracing::info!("sink shutting down after flushing its last batch");
            return Ok(());
        }
    }
}

/// Collects one batch; returns it and whether shutdown was requested.
async fn collect(
    consumer: &StreamConsumer,
    opts: &SinkOptions,
    shutdown: &CancellationToken,
) -> Result<(Batch, bool), SinkError> {
    let mut batch = Batch::default();
    let mut deadline: Option<Instant> = None;
    while batch.len() < opts.batch_max && batch.bytes < BATCH_MAX_BYTES {
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
                    batch.push(&m);
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

/// Writes the batch, retrying with backoff (and reconnecting) until the database takes it.
/// Gives up only when shutdown is requested, without committing anything.
async fn write_durably<S: VersionStore>(
    store: &mut S,
    batch: &Batch,
    shutdown: &CancellationToken,
    telemetry: &crate::admin::SinkTelemetry,
) -> Result<BatchReport, SinkError> {
    let mut delay = RETRY_FIRST;
    let mut attempt: u32 = 1;
    loop {
        let result = if attempt > 1 {
            match store.recover().await {
                Ok(()) => store.write_batch(&batch.accepted, &batch.undecodable).await,
                Err(e) => Err(e),
            }
        } else {
            store.write_batch(&batch.accepted, &batch.undecodable).await
        };
        match result {
            Ok(report) => return Ok(report),
            Err(error) => {
                telemetry.write_failed(&error.to_string());
                tracing::warn!(%error, attempt, records = batch.len(),
                retry_in_ms = delay.as_millis() as u64,
                "database write failed; retrying the batch, offsets not committed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                return Err(SinkError::Interrupted { records: batch.len() });
            }
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

/// Unsubscribes and closes the consumer off the async threads (closing blocks while the group
/// is left).
async fn leave_group(consumer: Arc<StreamConsumer>) {
    let closed = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
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
    fn options_refuse_mistakes() {
        let ok = SinkOptions::new("b:9092", "g", "postgres://x@y/z");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.topic, DEFAULT_TOPIC);
        let mut zero = ok.clone();
        zero.batch_max = 0;
        assert!(matches!(zero.validate(), Err(SinkError::Config(_))));
        let mut empty = ok;
        empty.group_id = " ".into();
        assert!(matches!(empty.validate(), Err(SinkError::Config(_))));
    }

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
