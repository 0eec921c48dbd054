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
mod consume;
pub mod content;
pub mod observe;
pub mod purge;
pub mod reconcile;
pub mod store;
mod trace;

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tokio_util::sync::CancellationToken;

pub use observe::{BatchOutcome, SinkObserver};
pub use store::{
    Accepted, Backend, BackendStore, BatchReport, FsStore, PgSink, Storage, Store, StoreError,
    StoredVersion, Undecodable, VersionStore,
};

use crate::wire::accepted::decode_framed;
use consume::{BatchWriter, LogLines};

/// Default topic the sink reads (the gate's accepted output).
pub const DEFAULT_TOPIC: &str = "bucket.accepted";

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
    /// What the sink reports to (the admin server's telemetry implements
    /// [`observe::SinkObserver`]; Default: nothing).
    pub telemetry: observe::Observer,
    /// This instance's id (`--instance-id`): its static group member id when set (a restart
    /// within the session timeout gets the same partitions back at once), and its client id.
    pub instance_id: Option<String>,
    /// How long the group waits for a silent member before moving its partitions.
    pub session_timeout: Duration,
    /// The object store content goes to (`--content-store`); None keeps it in PostgreSQL.
    pub objects: Option<store::ObjectStoreConfig>,
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
            instance_id: None,
            session_timeout: crate::kafka::membership::DEFAULT_SESSION_TIMEOUT,
            objects: None,
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
    let storage = store::PgStorage {
        url: opts.postgres_url.clone(),
        objects: opts.objects.clone(),
    };
    let Some(store) = storage.open(&shutdown).await? else {
        tracing::info!("sink shut down before the database was reachable");
        return Ok(());
    };
    run_with(store, opts, shutdown).await
}

/// Runs the sink into any [`VersionStore`] (`opts.postgres_url` is ignored) until `shutdown`.
pub async fn run_with<S: VersionStore>(
    store: S,
    opts: SinkOptions,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    opts.validate_kafka()?;
    consume::drive(ArtifactWriter(store), &opts, &shutdown).await
}

/// The decoded records of one batch of the accepted topic.
#[derive(Debug, Default)]
pub(crate) struct Artifacts {
    accepted: Vec<Accepted>,
    undecodable: Vec<Undecodable>,
    /// Write spans to end once the batch is durable (empty while span export is off).
    traced: Vec<trace::Pending>,
}

/// The artifact sink's side of the loop: accepted records into a [`VersionStore`].
struct ArtifactWriter<S>(S);

impl<S: VersionStore> BatchWriter for ArtifactWriter<S> {
    type Batch = Artifacts;
    type Report = BatchReport;
    const LOG: LogLines = LogLines {
        consuming: "sink consuming",
        write_failed: "database write failed; retrying the batch, offsets not committed",
        commit_failed: "offset commit failed; records stay stored and will be re-committed or \
                        replayed",
        stopping: "sink shutting down after flushing its last batch",
    };
    const MAX_BATCH_BYTES: usize = BATCH_MAX_BYTES;

    fn decode(&self, batch: &mut Artifacts, m: &BorrowedMessage<'_>) {
        let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
        match decode_framed(m.payload()) {
            Ok(artifact) => {
                tracing::trace!(partition, offset, product = %artifact.product_id,
                    artifact = %artifact.artifact_id, version = artifact.version, "decoded");
                if let Some(p) = trace::pending(m, &artifact) {
                    batch.traced.push(p);
                }
                batch.accepted.push(Accepted {
                    topic,
                    partition,
                    offset,
                    artifact,
                });
            }
            Err(e) => {
                tracing::warn!(partition, offset, error = %e,
                    "undecodable record on accepted topic; quarantining");
                batch.undecodable.push(Undecodable {
                    topic,
                    partition,
                    offset,
                    raw: m.payload().map(<[u8]>::to_vec),
                    error: e.to_string(),
                });
            }
        }
    }

    fn len(batch: &Artifacts) -> usize {
        batch.accepted.len() + batch.undecodable.len()
    }

    async fn write(&mut self, batch: &Artifacts) -> Result<BatchReport, StoreError> {
        self.0
            .write_batch(&batch.accepted, &batch.undecodable)
            .await
    }

    async fn recover(&mut self) -> Result<(), StoreError> {
        self.0.recover().await
    }

    fn written(&self, batch: &Artifacts, report: &BatchReport, took: Duration, opts: &SinkOptions) {
        opts.telemetry
            .batch_written(Self::len(batch), report.outcome(), took);
        trace::written(&batch.traced, report);
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
}
