//! What every producer of the project shares: the settings of an intent producer (the Java
//! client's partitioner, idempotence, `acks=all`) and the send that waits while librdkafka's
//! local queue is full instead of failing the record.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// Client settings of a producer of `bucket.intents` records to `brokers`: murmur2 like the
/// Java client (so every client library homes a key on the same partition), idempotent,
/// `acks=all`, lz4, records up to 20 MiB; security from the environment
/// ([`super::security::client_config`]).
pub fn intent_producer_config(brokers: &str) -> ClientConfig {
    let mut config = super::security::client_config();
    config
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.max.bytes", "20971520")
        .set("compression.type", "lz4");
    config
}

/// Hands `record` to `producer`, waiting `pause` at a time while the local queue is full (the
/// broker is behind): back-pressure, not an error. Any other refusal is returned.
pub fn send_waiting<'a, C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'a, [u8], [u8], C::DeliveryOpaque>,
    pause: Duration,
) -> KafkaResult<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(pause);
            }
            Err((e, _)) => return Err(e),
        }
    }
}
