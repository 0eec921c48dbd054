//! Kafka client settings of the gate's transactional loop, in one place so that the benchmark's
//! passthrough copier (`bench::passthrough`) runs with exactly the same ones.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};

/// Longest a transaction may stay open on the broker.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Transactional producer settings (`transactional.id` = `<group>-<instance>`).
pub fn producer_config(brokers: &str, transactional_id: &str) -> ClientConfig {
    let mut c = crate::kafka_security::client_config();
    c.set("bootstrap.servers", brokers)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set(
            "transaction.timeout.ms",
            TXN_TIMEOUT.as_millis().to_string(),
        )
        .set("message.max.bytes", "20971520")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("retry.backoff.ms", "20")
        .set("compression.type", "lz4");
    c
}

/// Group consumer settings: manual offsets inside transactions, read_committed input.
pub fn consumer_config(brokers: &str, group_id: &str, client_id: &str) -> ClientConfig {
    let mut c = crate::kafka_security::client_config();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "600000")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "20971520");
    c
}

/// Waits until every record produced so far is acknowledged, so that `commit_transaction` finds
/// nothing left to flush. Call it right before `send_offsets_to_transaction`.
///
/// Why: rust-rdkafka's `flush` (which `commit_transaction` calls first) waits for delivery events
/// with `poll(min(remaining, 100 ms))`, but on a `ThreadedProducer` the background thread takes
/// those events, so every commit with records still in flight paid a flat 100 ms (measured:
/// commit 101 ms at p50, docs/scale-readiness.md). Here `flush(0)` only asks librdkafka to send
/// now (linger ignored) and reports whether anything is still outstanding.
pub fn drain<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> KafkaResult<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.flush(Duration::ZERO) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}
