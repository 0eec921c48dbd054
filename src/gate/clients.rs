//! Kafka client settings of the gate's transactional loop, in one place so that the benchmark's
//! passthrough copier (`bench::passthrough`) runs with exactly the same ones.

use std::time::Duration;

use rdkafka::ClientConfig;

/// Longest a transaction may stay open on the broker.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Transactional producer settings (`transactional.id` = `<group>-<instance>`).
pub fn producer_config(brokers: &str, transactional_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
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
    let mut c = ClientConfig::new();
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
