//! `bucket.control`, in one place: operator tools [`publish`] governance events after their
//! action; the gate reads them with [`feed::ControlFeed`] and folds each into audit chain
//! [`CHAIN_PARTITION`] exactly once (docs/audit.md). The record format and folding rules are pure
//! and live with the wire contract ([`crate::wire::control`]).

use std::time::Duration;

pub mod feed;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

pub use crate::wire::control::{
    CHAIN_PARTITION, ControlEvent, EVENT_TYPES, fold_detail, folded_offset,
};

/// A new event stamped with this process's user, host and clock.
pub fn stamped(event_type: &str, source: &str, detail: serde_json::Value) -> ControlEvent {
    ControlEvent::new(event_type, source, actor(), crate::clock::now_ms(), detail)
}

/// `user@host` of this process, best effort.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// Why a control event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The Kafka client could not be created or the record was not acknowledged.
    #[error("publishing to {topic}: {source}")]
    Kafka {
        /// Control topic.
        topic: String,
        /// Underlying error.
        source: rdkafka::error::KafkaError,
    },
    /// Serialising the event failed (a defect).
    #[error("encoding control event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publishes `event` to `topic` and waits for the broker's acknowledgement (acks=all,
/// idempotent), so a tool that returns success has its event durably queued for the audit log.
pub async fn publish(
    client: &ClientConfig,
    topic: &str,
    event: &ControlEvent,
) -> Result<i64, ControlError> {
    let kafka = |source| ControlError::Kafka {
        topic: topic.to_string(),
        source,
    };
    let producer: FutureProducer = client
        .clone()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(kafka)?;
    let value = serde_json::to_vec(event)?;
    let record = FutureRecord::to(topic)
        .partition(0)
        .key(event.event_type.as_str())
        .payload(&value);
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| kafka(e))?;
    Ok(delivery.offset)
}
