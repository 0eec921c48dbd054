//! The bench's own Kafka plumbing: throwaway topics, a fast pre-fill producer, an open-loop
//! producer at a fixed rate, and progress read from a group's committed offsets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

use super::BenchError;
use super::workload::BenchRecord;
use crate::gate::TopicNames;
use crate::kafka::group::GroupOffsets;
use crate::ops::topics;
use crate::wire::headers;

const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the four gate topics named by `names` with `partitions` partitions each.
pub async fn create_topics(
    brokers: &str,
    profile: &str,
    names: &TopicNames,
    partitions: i32,
    input_too: bool,
) -> Result<(), BenchError> {
    let mut specs = topics::parse(topics::DEFAULT_DECLARATION, Some(profile))?;
    specs.retain_mut(|s| {
        s.partitions = partitions;
        let name = match s.name.as_str() {
            "bucket.intents" if input_too => &names.intents,
            "bucket.accepted" => &names.accepted,
            "bucket.rejected" => &names.rejected,
            "bucket.audit" => &names.audit,
            "bucket.state-changelog" => &names.changelog,
            _ => return false,
        };
        s.name = name.clone();
        true
    });
    topics::apply(brokers, &specs).await?;
    Ok(())
}

/// Deletes the bench's topics (best effort: a failure is reported, not fatal).
pub async fn delete_topics(brokers: &str, names: &[String]) -> Result<(), BenchError> {
    if names.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = crate::kafka::security::client_config()
        .set("bootstrap.servers", brokers)
        .create()?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    admin
        .delete_topics(
            &refs,
            &AdminOptions::new().operation_timeout(Some(OP_TIMEOUT)),
        )
        .await?;
    Ok(())
}

/// Counts deliveries and keeps, when asked, where each record landed and its timestamp.
#[derive(Default)]
pub struct Deliveries {
    /// Records acknowledged by the broker.
    pub ok: AtomicU64,
    /// Records that failed for good.
    pub failed: AtomicU64,
    /// (partition, offset) → record timestamp in ms, when tracking.
    pub landed: Option<Mutex<HashMap<(i32, i64), i64>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(landed) = &self.landed
                    && let Ok(mut l) = landed.lock()
                {
                    l.insert(
                        (m.partition(), m.offset()),
                        m.timestamp().to_millis().unwrap_or(0),
                    );
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Producer of bench intents (murmur2 like the Java client, idempotent, acks=all).
pub fn producer(brokers: &str, track: bool) -> Result<ThreadedProducer<Deliveries>, BenchError> {
    let ctx = Deliveries {
        landed: track.then(|| Mutex::new(HashMap::new())),
        ..Deliveries::default()
    };
    Ok(crate::kafka::produce::intent_producer_config(brokers)
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(ctx)?)
}

/// Produces one record, waiting while the local queue is full.
pub fn send(
    producer: &ThreadedProducer<Deliveries>,
    topic: &str,
    r: &BenchRecord,
    timestamp_ms: Option<i64>,
) -> Result<(), BenchError> {
    let mut h = OwnedHeaders::new();
    if let Some(sig) = &r.signature {
        h = h.insert(Header {
            key: headers::SIGNATURE,
            value: Some(sig.as_slice()),
        });
    }
    let mut record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic)
        .key(r.key.as_slice())
        .payload(r.value.as_slice())
        .headers(h);
    if let Some(ts) = timestamp_ms {
        record = record.timestamp(ts);
    }
    send_waiting(producer, record)
}

/// Produces one record to an explicit partition (no headers), waiting while the queue is full.
pub fn send_to_partition(
    producer: &ThreadedProducer<Deliveries>,
    topic: &str,
    partition: i32,
    r: &BenchRecord,
) -> Result<(), BenchError> {
    let record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic)
        .partition(partition)
        .key(r.key.as_slice())
        .payload(r.value.as_slice());
    send_waiting(producer, record)
}

/// Produces one of the gate's output records, waiting while the queue is full.
pub fn send_out_record(
    producer: &ThreadedProducer<Deliveries>,
    r: &crate::gate::records::OutRecord,
) -> Result<(), BenchError> {
    send_waiting(producer, crate::gate::kafka_records::base_record(r))
}

/// Sends one record, waiting while the local queue is full.
fn send_waiting(
    producer: &ThreadedProducer<Deliveries>,
    record: BaseRecord<'_, [u8], [u8], ()>,
) -> Result<(), BenchError> {
    Ok(crate::kafka::produce::send_waiting(
        producer,
        record,
        Duration::from_millis(1),
    )?)
}

/// Waits for every queued record; fails if any was not delivered.
pub fn flush(producer: &ThreadedProducer<Deliveries>) -> Result<u64, BenchError> {
    producer.flush(Duration::from_secs(120))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(BenchError::Incomplete(format!(
            "{failed} bench records were not delivered"
        )));
    }
    Ok(ctx.ok.load(Ordering::Relaxed))
}

/// End offsets of every partition of `topic`.
pub fn end_offsets(brokers: &str, topic: &str) -> Result<HashMap<i32, i64>, BenchError> {
    let consumer: BaseConsumer = crate::kafka::security::client_config()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), OP_TIMEOUT)?;
    let parts: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut out = HashMap::new();
    for p in parts {
        let (_, high) = consumer.fetch_watermarks(topic, p, OP_TIMEOUT)?;
        out.insert(p, high);
    }
    Ok(out)
}

/// Reads a group's committed offsets without joining it.
pub struct Progress {
    group: GroupOffsets,
}

impl Progress {
    /// Watches `group` on `topic`'s `partitions`.
    pub fn new(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Progress, BenchError> {
        Ok(Progress {
            group: GroupOffsets::new(brokers, group, topic, partitions)?,
        })
    }

    /// Committed offsets by partition (absent until the first commit).
    pub fn committed(&self) -> HashMap<i32, i64> {
        (self.group.read(Duration::from_secs(5)))
            .map(|c| c.into_iter().collect())
            .unwrap_or_default()
    }

    /// Records decided so far given the start offsets of the run.
    pub fn done(&self, start: &HashMap<i32, i64>) -> u64 {
        self.committed()
            .iter()
            .map(|(p, o)| (o - start.get(p).copied().unwrap_or(0)).max(0) as u64)
            .sum()
    }
}

/// Waits until `f` is true, checking every `every`; false on timeout.
pub fn wait_for(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(every);
    }
    f()
}
