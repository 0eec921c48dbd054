//! Reading partitions to their end with read_committed: [`TopicRead`] is the one poll loop
//! every reader of a topic shares (reconcile, `audit verify`, `audit tiles`, `audit tail`), and
//! [`PartitionSource`] reads one partition on it, the way restores read the audit log and the
//! state changelog. The end is the last stable offset when the read reached it; what errors a
//! broker election causes is ridden out as the caller says ([`Elections`]).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use super::EofQuietContext;
use super::errors::{ELECTION_WAIT, is_transient};

/// How long one poll of a read waits for a record.
const POLL: Duration = Duration::from_millis(200);

/// How a read treats the errors a leader election or a broker restart causes
/// ([`is_transient`]); any other error ends the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elections {
    /// Fail on the first one (tools an operator simply runs again).
    Fail,
    /// Ride them out while the read progresses: fail once [`ELECTION_WAIT`] passed without a
    /// record or a partition's end.
    RideWhileProgressing,
    /// Ride them out for as long as the read's timeout allows (restores).
    Ride,
}

/// What a read hands its caller after each poll.
#[derive(Clone, Copy)]
pub enum Seen<'a> {
    /// A committed record.
    Record(&'a BorrowedMessage<'a>),
    /// This partition reached its end (its end when reached; more may come when following).
    End(i32),
    /// The poll brought nothing (or an error that was ridden out).
    Nothing,
}

/// What the caller wants after each [`Seen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Keep reading.
    Continue,
    /// The record's partition is read far enough: pause it and stop waiting for its end.
    PartitionDone,
    /// Stop the whole read now.
    Stop,
}

/// A read of partitions of one topic, each from its own start to its end (or on, following):
/// the one poll loop every reader of a topic shares.
#[derive(Debug, Clone, Copy)]
pub struct TopicRead<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Longest the read may take ([`ReadError::Timeout`] after it); None waits for the ends.
    pub timeout: Option<Duration>,
    /// What a broker election does to the read.
    pub elections: Elections,
    /// Keep reading after every partition's end, until the caller says [`Then::Stop`].
    pub follow: bool,
}

/// The partitions of `topic` as the cluster's metadata lists them.
pub fn partition_ids<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

impl TopicRead<'_> {
    /// Assigns `starts` (partition, first offset) to `consumer` and hands each record, each
    /// partition's end and each empty poll to `each` until every partition reached its end
    /// (unless following) or `each` says stop; returns how many records it handed over.
    pub fn run<C: ConsumerContext, E>(
        &self,
        consumer: &BaseConsumer<C>,
        starts: &[(i32, Offset)],
        each: impl FnMut(Seen<'_>) -> Result<Then, E>,
    ) -> Result<u64, ReadError<E>> {
        self.run_since(Instant::now(), consumer, starts, each)
    }

    /// [`TopicRead::run`] with the timeout counted from `started`.
    fn run_since<C: ConsumerContext, E>(
        &self,
        started: Instant,
        consumer: &BaseConsumer<C>,
        starts: &[(i32, Offset)],
        mut each: impl FnMut(Seen<'_>) -> Result<Then, E>,
    ) -> Result<u64, ReadError<E>> {
        if starts.is_empty() && !self.follow {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, start) in starts {
            tpl.add_partition_offset(self.topic, *p, *start)?;
        }
        consumer.assign(&tpl)?;
        let mut pending: HashSet<i32> = starts.iter().map(|(p, _)| *p).collect();
        let mut records = 0u64;
        let mut progress = Instant::now();
        loop {
            if !self.follow && pending.is_empty() {
                break;
            }
            if let Some(timeout) = self.timeout
                && started.elapsed() > timeout
            {
                return Err(ReadError::Timeout(timeout));
            }
            let then = match consumer.poll(POLL) {
                None => each(Seen::Nothing),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    progress = Instant::now();
                    pending.remove(&p);
                    each(Seen::End(p))
                }
                Some(Err(e)) if self.rides(&e, progress) => {
                    warn!(topic = self.topic, ?pending, error = %e, "cluster not settled; still reading");
                    each(Seen::Nothing)
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(m)) => {
                    progress = Instant::now();
                    records += 1;
                    let then = each(Seen::Record(&m));
                    if let Ok(Then::PartitionDone) = then {
                        pending.remove(&m.partition());
                        let mut one = TopicPartitionList::new();
                        one.add_partition(self.topic, m.partition());
                        consumer.pause(&one)?;
                    }
                    then
                }
            };
            if then.map_err(ReadError::Handler)? == Then::Stop {
                break;
            }
        }
        Ok(records)
    }

    /// True when `e` is ridden out rather than ending the read.
    fn rides(&self, e: &KafkaError, progress: Instant) -> bool {
        is_transient(e)
            && match self.elections {
                Elections::Fail => false,
                Elections::RideWhileProgressing => progress.elapsed() < ELECTION_WAIT,
                Elections::Ride => true,
            }
    }
}

/// Why a read stopped early.
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
        let read = TopicRead {
            topic: self.topic,
            timeout: Some(self.timeout),
            elections: Elections::Ride,
            follow: false,
        };
        read.run_since(started, consumer, &[(self.partition, start)], |seen| {
            Ok(match seen {
                Seen::Record(m) if each(m)?.is_break() => Then::Stop,
                _ => Then::Continue,
            })
        })
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

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn election_errors_are_ridden_out_as_the_read_says() {
        let read = |elections| TopicRead {
            topic: "t",
            timeout: None,
            elections,
            follow: false,
        };
        let leader = KafkaError::MetadataFetch(RDKafkaErrorCode::NotLeaderForPartition);
        let denied = KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed);
        let now = Instant::now();
        for elections in [
            Elections::Fail,
            Elections::RideWhileProgressing,
            Elections::Ride,
        ] {
            assert!(!read(elections).rides(&denied, now), "{elections:?}");
        }
        assert!(!read(Elections::Fail).rides(&leader, now));
        assert!(read(Elections::RideWhileProgressing).rides(&leader, now));
        assert!(read(Elections::Ride).rides(&leader, now));
        if let Some(stalled) = now.checked_sub(ELECTION_WAIT + Duration::from_secs(1)) {
            assert!(!read(Elections::RideWhileProgressing).rides(&leader, stalled));
            assert!(read(Elections::Ride).rides(&leader, stalled));
        }
    }
}
