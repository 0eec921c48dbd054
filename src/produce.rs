//! Producer side of the wire contract, for demos, tests and shell users: Avro via the registry,
//! keyed by product id, partitioned like the Java client (murmur2) so products land on their
//! home partition.

use std::time::Duration;

use base64::Engine;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

use crate::core::{ArtifactIntent, Operation};
use crate::kafka::registry::{Registry, RegistryError};
use crate::wire::schemas::APPROVED;
use crate::wire::{WireError, framing, intent};

/// Why producing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// Kafka refused or timed out.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Registry trouble.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Encoding failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// An input line is not a valid intent description.
    #[error("input line {line}: {problem}")]
    Input {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        problem: String,
    },
}

/// Signs intent values with integration key files from a directory (see [`crate::ops::keys`]).
pub struct Signer {
    dir: std::path::PathBuf,
    prefer_hmac: bool,
    cache: std::collections::HashMap<String, Option<(String, crate::core::signature::SignKey)>>,
}

impl Signer {
    /// A signer over `dir`, preferring Ed25519 keys unless `prefer_hmac`.
    pub fn new(dir: impl Into<std::path::PathBuf>, prefer_hmac: bool) -> Signer {
        Signer {
            dir: dir.into(),
            prefer_hmac,
            cache: std::collections::HashMap::new(),
        }
    }

    /// The `bucket-signature` header for `value` as `integration`, if a key file exists.
    pub fn header(
        &mut self,
        integration: &str,
        value: &[u8],
    ) -> Result<Option<String>, crate::ops::keys::KeyError> {
        if !self.cache.contains_key(integration) {
            let key = crate::ops::keys::load(&self.dir, integration, self.prefer_hmac)?;
            self.cache.insert(integration.to_string(), key);
        }
        Ok(self
            .cache
            .get(integration)
            .and_then(Option::as_ref)
            .map(|(key_id, key)| key.header(integration, key_id, value)))
    }
}

/// Produces intents (or raw records) to the intents topic.
pub struct IntentProducer {
    producer: FutureProducer,
    topic: String,
    schema_id: u32,
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl IntentProducer {
    /// Connects and registers the approved intent schema (idempotent) to learn its id.
    pub async fn connect(
        brokers: &str,
        registry: &Registry,
        topic: &str,
    ) -> Result<IntentProducer, ProduceError> {
        let schema_id = registry.register(&APPROVED.intent).await?;
        let producer: FutureProducer =
            crate::kafka::produce::intent_producer_config(brokers).create()?;
        Ok(IntentProducer {
            producer,
            topic: topic.to_string(),
            schema_id,
        })
    }

    /// Schema id used for intents.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// Encodes an intent, frames it with the registry id and produces it keyed by product id.
    pub fn encode(&self, i: &ArtifactIntent) -> Result<Vec<u8>, ProduceError> {
        Ok(framing::frame(self.schema_id, &intent::encode(i)?))
    }

    /// Produces one intent.
    pub async fn send(&self, i: &ArtifactIntent) -> Result<Delivered, ProduceError> {
        let value = self.encode(i)?;
        self.send_raw(Some(i.product_id.as_bytes()), Some(&value), &[])
            .await
    }

    /// Produces arbitrary bytes (bad-input demos and tests).
    pub async fn send_raw(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<Delivered, ProduceError> {
        self.send_raw_to(None, key, value, headers).await
    }

    /// Produces arbitrary bytes to an explicit partition (or the partitioner's choice).
    pub async fn send_raw_to(
        &self,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<Delivered, ProduceError> {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(h);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        Ok(Delivered {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

/// One line of `bucket produce` input: an intent with friendly defaults, or a raw record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentLine {
    /// Intent id; a random UUID when absent.
    pub intent_id: Option<String>,
    /// Product id (required unless raw).
    #[serde(default)]
    pub product_id: String,
    /// Integration id.
    #[serde(default)]
    pub integration_id: Option<String>,
    /// Owner id.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Requester id (defaults to the owner).
    #[serde(default)]
    pub requester_id: Option<String>,
    /// Artifact id.
    #[serde(default)]
    pub artifact_id: String,
    /// Artifact class.
    #[serde(default)]
    pub artifact_class: String,
    /// CREATE, UPDATE or DELETE (default CREATE).
    #[serde(default)]
    pub operation: Option<String>,
    /// Expected version for UPDATE/DELETE.
    pub expected_version: Option<i64>,
    /// Content as UTF-8 text.
    pub content: Option<String>,
    /// Content as base64 (wins over `content`).
    pub content_base64: Option<String>,
    /// Content of this many bytes (0x61 repeated), for size tests.
    pub content_size: Option<usize>,
    /// MIME type.
    pub content_type: Option<String>,
    /// Metadata JSON object (any JSON value is serialised to text).
    pub metadata: Option<serde_json::Value>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Client time, ms; now when absent.
    pub client_time: Option<i64>,
    /// Raw record: value as hex, produced as is (bad-input demos).
    pub raw_value_hex: Option<String>,
    /// Record key override (defaults to product_id).
    pub key: Option<String>,
    /// Signature: "auto" (default: sign if a key file exists), "none", or "corrupt" (sign, then
    /// flip a bit of the signature; for demos of forged intents).
    pub sign: Option<String>,
}

/// A line turned into something to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// A proper intent.
    Intent {
        /// Record key.
        key: String,
        /// The intent.
        intent: Box<ArtifactIntent>,
        /// How to sign: "auto", "none" or "corrupt".
        sign: String,
    },
    /// Raw bytes.
    Raw {
        /// Record key.
        key: Option<String>,
        /// Value bytes.
        value: Vec<u8>,
    },
}

/// Current wall-clock time in ms: the clock producers stamp `client_time` with.
pub use crate::clock::now_ms;

impl IntentLine {
    /// Turns the line into an intent or a raw record.
    pub fn plan(self, line: usize) -> Result<Planned, ProduceError> {
        let bad = |problem: String| ProduceError::Input { line, problem };
        if let Some(hex_value) = self.raw_value_hex {
            let value = hex::decode(hex_value.trim()).map_err(|e| bad(e.to_string()))?;
            let key = self.key.or(Some(self.product_id)).filter(|k| !k.is_empty());
            return Ok(Planned::Raw { key, value });
        }
        let operation = match self.operation.as_deref() {
            None => Operation::Create,
            Some(op) => Operation::parse(op).ok_or_else(|| bad(format!("operation {op:?}")))?,
        };
        let content = if let Some(b64) = self.content_base64 {
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else if let Some(n) = self.content_size {
            Some(vec![b'a'; n])
        } else {
            self.content.map(String::into_bytes)
        };
        let owner = self.owner_id.unwrap_or_else(|| "demo-owner".into());
        let intent = ArtifactIntent {
            intent_id: self
                .intent_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            integration_id: self
                .integration_id
                .unwrap_or_else(|| format!("{}-backend", self.product_id)),
            requester_id: self.requester_id.unwrap_or_else(|| owner.clone()),
            owner_id: owner,
            product_id: self.product_id,
            artifact_id: self.artifact_id,
            artifact_class: self.artifact_class,
            operation,
            expected_version: self.expected_version,
            content,
            content_type: self
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            metadata: self
                .metadata
                .map_or_else(|| "{}".to_string(), |m| m.to_string()),
            purpose: self.purpose.unwrap_or_default(),
            client_time: self.client_time.unwrap_or_else(now_ms),
        };
        Ok(Planned::Intent {
            key: self.key.unwrap_or_else(|| intent.product_id.clone()),
            intent: Box::new(intent),
            sign: self.sign.unwrap_or_else(|| "auto".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_defaults_and_raw() {
        let l: IntentLine = serde_json::from_str(
            r#"{"product_id":"gurukul","artifact_id":"a","artifact_class":"document","content":"hi"}"#,
        )
        .unwrap();
        match l.plan(1).unwrap() {
            Planned::Intent { key, intent, .. } => {
                assert_eq!(key, "gurukul");
                assert_eq!(intent.content.as_deref(), Some(&b"hi"[..]));
                assert_eq!(intent.operation, Operation::Create);
                assert!(uuid::Uuid::parse_str(&intent.intent_id).is_ok());
            }
            other => panic!("{other:?}"),
        }
        let raw: IntentLine =
            serde_json::from_str(r#"{"raw_value_hex":"deadbeef","key":"k"}"#).unwrap();
        assert_eq!(
            raw.plan(2).unwrap(),
            Planned::Raw {
                key: Some("k".into()),
                value: vec![0xde, 0xad, 0xbe, 0xef]
            }
        );
        let typo: Result<IntentLine, _> = serde_json::from_str(r#"{"prodcut_id":"x"}"#);
        assert!(typo.is_err());
    }
}
