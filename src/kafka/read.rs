//! Reading one partition to its end with read_committed: how restores read the audit log and
//! the state changelog. Broker elections and lost connections are ridden out (bounded by the
//! caller's timeout); the end is the last stable offset when the read reached it.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use super::EofQuietContext;

/// Why a partition read stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// Kafka failed (not transiently).
    #[error("{0}")]
    Kafka(#[from] KafkaError),
    /// The end was not reached within the timeout (an open transaction?).
    #[error("end not reached within {0:?}")]
    Timeout(Duration),
    /// The caller's handler failed.
    #[error("{0}")]
    Handler(E),
}

/// One partition of one topic, and how long reading it may take.
#[derive(Debug, Clone, Copy)]
pub struct PartitionSource<'a> {
    /// Kafka bootstrap servers.
    pub brokers: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Longest one read may take.
    pub timeout: Duration,
}

/// Settings of a reader that assigns partitions itself, never commits, sees only committed
/// records and is told when it reaches a partition's end: every audit and changelog reader.
pub fn committed_reader_config(brokers: &str, group: &str) -> rdkafka::ClientConfig {
    let mut c = super::security::client_config();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "20971520");
    c
}

impl PartitionSource<'_> {
    fn consumer(&self) -> Result<BaseConsumer<EofQuietContext>, KafkaError> {
        committed_reader_config(self.brokers, "bucket-gate-restore")
            // A read to a known end: do not let the broker hold the last (empty) fetch for
            // the default 500 ms before the end is reported.
            .set("fetch.wait.max.ms", "10")
            // Prefetch bounded to 16 MiB (librdkafka's default is 64 MiB): a restore's memory is
            // the restore's working set, not a read-ahead buffer.
            .set("queued.max.messages.kbytes", "16384")
            .create_with_context(EofQuietContext)
    }

    /// (low, high) watermarks of the partition.
    pub fn watermarks(&self) -> Result<(i64, i64), KafkaError> {
        let consumer = self.consumer()?;
        super::errors::through_elections(|| {
            consumer.fetch_watermarks(self.topic, self.partition, Duration::from_secs(10))
        })
    }

    /// Reads the committed records from `start` to the end, handing each to `each` until it
    /// breaks; returns how many it handed over.
    pub fn read<E>(
        &self,
        start: Offset,
        each: impl FnMut(&BorrowedMessage<'_>) -> Result<ControlFlow<()>, E>,
    ) -> Result<u64, ReadError<E>> {
        self.read_with(&self.consumer()?, start, each)
    }

    /// [`PartitionSource::read`] on a consumer already made (assigned anew).
    fn read_with<E>(
        &self,
        consumer: &BaseConsumer<EofQuietContext>,
        start: Offset,
        mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<ControlFlow<()>, E>,
    ) -> Result<u64, ReadError<E>> {
        let started = Instant::now();
        let (low, high) = super::errors::through_elections(|| {
            consumer.fetch_watermarks(self.topic, self.partition, Duration::from_secs(10))
        })?;
        let from = match start {
            Offset::Offset(o) => o,
            _ => low,
        };
        if high <= low || from >= high {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(self.topic, self.partition, start)?;
        consumer.assign(&tpl)?;
        let mut records = 0u64;
        loop {
            if started.elapsed() > self.timeout {
                return Err(ReadError::Timeout(self.timeout));
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                // A lost broker connection: librdkafka carries on with the new leader.
                Some(Err(e)) if super::errors::is_transient(&e) => {
                    warn!(topic = self.topic, partition = self.partition, error = %e, "cluster not settled; still reading");
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(m)) => {
                    records += 1;
                    if each(&m).map_err(ReadError::Handler)?.is_break() {
                        break;
                    }
                }
            }
        }
        Ok(records)
    }

    /// The last record that `pick` accepts, scanning back from the end in growing windows
    /// (256, 4096, … records): a partition's head without reading the partition.
    pub fn last_matching<T, E>(
        &self,
        mut pick: impl FnMut(&BorrowedMessage<'_>) -> Result<Option<T>, E>,
    ) -> Result<Option<T>, ReadError<E>> {
        let consumer = self.consumer()?;
        let (low, high) = super::errors::through_elections(|| {
            consumer.fetch_watermarks(self.topic, self.partition, Duration::from_secs(10))
        })?;
        let mut window = 256i64;
        let mut end = high;
        while end > low {
            let from = end.saturating_sub(window).max(low);
            let mut found = None;
            self.read_with(&consumer, Offset::Offset(from), |m| {
                if m.offset() >= end {
                    return Ok(ControlFlow::Break(()));
                }
                if let Some(t) = pick(m)? {
                    found = Some(t);
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if found.is_some() {
                return Ok(found);
            }
            end = from;
            window = window.saturating_mul(16);
        }
        Ok(None)
    }
}
