//! Reads `bucket.control` for the chain that folds it (see [`crate::control`]). No consumer
//! group: where to read from is the chain's own record of the last folded control offset, so a
//! restored task repositions the feed and nothing is folded twice or skipped.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::warn;

/// One control record: offset and value bytes.
pub type ControlRecord = (i64, Option<Vec<u8>>);

/// A manually assigned, read_committed reader of the control topic's partition 0.
pub struct ControlFeed {
    consumer: BaseConsumer<crate::kafka::EofQuietContext>,
    topic: String,
    /// Offset the next delivered record will have; None when not assigned.
    next: Option<i64>,
    last_warning: Option<Instant>,
}

impl ControlFeed {
    /// A feed on `topic`; reads nothing until [`ControlFeed::read_from`] is called.
    pub fn new(brokers: &str, topic: &str) -> Result<Self, KafkaError> {
        let consumer = crate::kafka::security::client_config()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bucket-gate-control")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .create_with_context(crate::kafka::EofQuietContext)?;
        Ok(ControlFeed {
            consumer,
            topic: topic.to_string(),
            next: None,
            last_warning: None,
        })
    }

    /// Returns up to `max` records from `from` on (repositioning when the chain's next control
    /// offset is not where the feed stands). Errors are logged and read as "nothing yet": a
    /// missing or unavailable control topic never stops decisions.
    pub fn read_from(&mut self, from: i64, max: usize) -> Vec<ControlRecord> {
        if self.next != Some(from) {
            let mut tpl = TopicPartitionList::new();
            let assigned = tpl
                .add_partition_offset(
                    &self.topic,
                    crate::control::CHAIN_PARTITION,
                    Offset::Offset(from),
                )
                .and_then(|()| self.consumer.assign(&tpl));
            if let Err(e) = assigned {
                self.warn(&e);
                return Vec::new();
            }
            self.next = Some(from);
        }
        let mut out = Vec::new();
        while out.len() < max {
            match self.consumer.poll(Duration::ZERO) {
                None | Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    self.warn(&e);
                    break;
                }
                Some(Ok(m)) => {
                    self.next = Some(m.offset() + 1);
                    if m.offset() >= from {
                        out.push((m.offset(), m.payload().map(<[u8]>::to_vec)));
                    }
                }
            }
        }
        out
    }

    /// Stops reading (the chain partition was revoked).
    pub fn release(&mut self) {
        if self.next.take().is_some()
            && let Err(e) = self.consumer.unassign()
        {
            self.warn(&e);
        }
    }

    fn warn(&mut self, e: &KafkaError) {
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            warn!(topic = %self.topic, error = %e, "control topic unreadable; governance events from tools wait");
            self.last_warning = Some(Instant::now());
        }
    }
}
