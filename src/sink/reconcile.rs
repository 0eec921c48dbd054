//! `bucket sink reconcile`: reads `bucket.accepted` read_committed from the beginning to its
//! current end and compares it with what storage holds, version by version and byte by byte
//! (SHA-256 of the stored content against SHA-256 of the record's content). The comparison is
//! the pure [`diff`]; reading either side is I/O around it.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::store::StoreError;
pub use super::store::{Fingerprint, StorageSide, VersionKey};
use crate::kafka::EofQuietContext;
use crate::kafka::read::{
    Elections, ReadError, Seen, Then, TopicRead, committed_reader_config, partition_ids,
};
use crate::wire::accepted::decode_framed;

/// The accepted topic as read.
#[derive(Debug, Default, Clone)]
pub struct TopicSide {
    /// Decoded versions.
    pub versions: BTreeMap<VersionKey, Fingerprint>,
    /// `(partition, offset)` of records that did not decode.
    pub undecodable: BTreeSet<(i32, i64)>,
    /// Records read.
    pub records: usize,
}

/// One difference between the topic and storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// On the topic, not in storage (and not purged).
    MissingInStorage {
        /// Product.
        product: String,
        /// Artifact.
        artifact: String,
        /// Version.
        version: i64,
    },
    /// In storage, not on the topic.
    ExtraInStorage {
        /// Product.
        product: String,
        /// Artifact.
        artifact: String,
        /// Version.
        version: i64,
    },
    /// Same key, different content bytes or a different intent.
    Mismatch {
        /// Product.
        product: String,
        /// Artifact.
        artifact: String,
        /// Version.
        version: i64,
        /// What the topic says.
        topic_sha256: String,
        /// What storage holds.
        stored_sha256: String,
        /// True when the intent ids differ too.
        intent_differs: bool,
    },
    /// An undecodable record that storage did not quarantine.
    UndecodableNotQuarantined {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
}

/// The result of a reconciliation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    /// Records read from the topic.
    pub topic_records: usize,
    /// Versions on the topic.
    pub topic_versions: usize,
    /// Versions in storage.
    pub stored_versions: usize,
    /// Topic versions whose absence is explained by a purge.
    pub purged: usize,
    /// Topic versions quarantined instead of stored (conflicts, refused rows).
    pub quarantined: usize,
    /// Every difference.
    pub differences: Vec<Difference>,
}

/// Compares the two sides (pure).
pub fn diff(topic: &TopicSide, storage: &StorageSide) -> ReconcileReport {
    let mut r = ReconcileReport {
        topic_records: topic.records,
        topic_versions: topic.versions.len(),
        stored_versions: storage.versions.len(),
        ..Default::default()
    };
    for (key, want) in &topic.versions {
        let (product, artifact, version) = (key.0.clone(), key.1.clone(), key.2);
        match storage.versions.get(key) {
            Some(have) if have == want => {}
            Some(have) => r.differences.push(Difference::Mismatch {
                product,
                artifact,
                version,
                topic_sha256: want.content_sha256.clone(),
                stored_sha256: have.content_sha256.clone(),
                intent_differs: have.intent_id != want.intent_id,
            }),
            None if storage.purged.contains(key) => r.purged += 1,
            None => r.differences.push(Difference::MissingInStorage {
                product,
                artifact,
                version,
            }),
        }
    }
    for key in storage.versions.keys() {
        if !topic.versions.contains_key(key) {
            r.differences.push(Difference::ExtraInStorage {
                product: key.0.clone(),
                artifact: key.1.clone(),
                version: key.2,
            });
        }
    }
    for &(partition, offset) in &topic.undecodable {
        if storage.quarantined.contains(&(partition, offset)) {
            r.quarantined += 1;
        } else {
            r.differences
                .push(Difference::UndecodableNotQuarantined { partition, offset });
        }
    }
    r
}

/// Why reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the topic failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Reading storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The topic could not be read to its end in time.
    #[error("{0}")]
    Topic(String),
}

fn sha_hex(content: Option<&[u8]>) -> String {
    content.map_or(String::new(), |c| hex::encode(Sha256::digest(c)))
}

/// Reads `topic` (read_committed) from the beginning to its current end (blocking).
pub fn read_topic(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<TopicSide, ReconcileError> {
    let consumer: BaseConsumer<EofQuietContext> =
        committed_reader_config(brokers, "bucket-reconcile")
            .create_with_context(EofQuietContext)?;
    let partitions = partition_ids(&consumer, topic)?;
    if partitions.is_empty() {
        return Err(ReconcileError::Topic(format!(
            "topic {topic} has no partitions"
        )));
    }
    let starts: Vec<(i32, Offset)> = partitions
        .into_iter()
        .map(|p| (p, Offset::Beginning))
        .collect();
    let mut side = TopicSide::default();
    let read = TopicRead {
        topic,
        timeout: Some(timeout),
        elections: Elections::Fail,
        follow: false,
    };
    let each = |seen: Seen<'_>| {
        if let Seen::Record(m) = seen {
            side.records += 1;
            match decode_framed(m.payload()) {
                Ok(a) => {
                    let fp = Fingerprint {
                        intent_id: a.intent_id.clone(),
                        content_sha256: sha_hex(a.content.as_deref()),
                    };
                    side.versions
                        .insert((a.product_id, a.artifact_id, a.version), fp);
                }
                Err(_) => {
                    side.undecodable.insert((m.partition(), m.offset()));
                }
            }
        }
        Ok::<_, Infallible>(Then::Continue)
    };
    read.run(&consumer, &starts, each).map_err(|e| match e {
        ReadError::Kafka(e) => ReconcileError::Kafka(e),
        ReadError::Timeout(_) => ReconcileError::Topic(format!(
            "did not reach the end of {topic} within {timeout:?}"
        )),
        ReadError::Handler(never) => match never {},
    })?;
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(intent: &str, sha: &str) -> Fingerprint {
        Fingerprint {
            intent_id: intent.into(),
            content_sha256: sha.into(),
        }
    }

    fn key(a: &str, v: i64) -> VersionKey {
        ("p".into(), a.into(), v)
    }

    #[test]
    fn every_kind_of_difference_is_reported_and_purges_explain_absences() {
        let mut topic = TopicSide::default();
        topic.versions.insert(key("same", 1), fp("i1", "aa"));
        topic.versions.insert(key("missing", 1), fp("i2", "bb"));
        topic.versions.insert(key("purged", 1), fp("i3", "cc"));
        topic.versions.insert(key("changed", 1), fp("i4", "dd"));
        topic.undecodable.insert((0, 9));
        topic.undecodable.insert((0, 10));
        let mut storage = StorageSide::default();
        storage.versions.insert(key("same", 1), fp("i1", "aa"));
        storage.versions.insert(key("changed", 1), fp("i4", "ee"));
        storage.versions.insert(key("extra", 1), fp("i5", "ff"));
        storage.purged.insert(key("purged", 1));
        storage.quarantined.insert((0, 9));
        let r = diff(&topic, &storage);
        assert_eq!(r.purged, 1);
        assert_eq!(r.quarantined, 1);
        assert_eq!(r.differences.len(), 4, "{:?}", r.differences);
        assert!(r.differences.contains(&Difference::MissingInStorage {
            product: "p".into(),
            artifact: "missing".into(),
            version: 1
        }));
        assert!(r.differences.contains(&Difference::ExtraInStorage {
            product: "p".into(),
            artifact: "extra".into(),
            version: 1
        }));
        assert!(
            r.differences
                .contains(&Difference::UndecodableNotQuarantined {
                    partition: 0,
                    offset: 10
                })
        );
    }

    #[test]
    fn equal_sides_have_no_difference() {
        let mut topic = TopicSide::default();
        topic.versions.insert(key("a", 1), fp("i", "x"));
        let storage = StorageSide {
            versions: topic.versions.clone(),
            ..Default::default()
        };
        assert!(diff(&topic, &storage).differences.is_empty());
    }
}
