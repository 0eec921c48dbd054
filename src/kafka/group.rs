//! A consumer group's committed offsets, read without joining the group: what `audit verify`
//! checks completeness against and what the bench watches the gate's progress by.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// The committed offsets of one group on some partitions of one topic.
pub struct GroupOffsets {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl GroupOffsets {
    /// Watches `group` on `topic`'s `partitions` (the consumer never subscribes or joins).
    pub fn new(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> KafkaResult<GroupOffsets> {
        let consumer: BaseConsumer = super::security::client_config()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(topic, *p);
        }
        Ok(GroupOffsets {
            consumer,
            partitions: list,
        })
    }

    /// The committed offset of each partition that has one (a partition the group never
    /// committed is absent).
    pub fn read(&self, timeout: Duration) -> KafkaResult<BTreeMap<i32, i64>> {
        let committed = self
            .consumer
            .committed_offsets(self.partitions.clone(), timeout)?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }
}
