//! The gate's records at its Kafka edge: a consumed `bucket.intents` record taken out of
//! rdkafka's message into owned bytes ([`Consumed`]), and an output record
//! ([`super::records::OutRecord`], built by the pure `records` module) handed to rdkafka
//! ([`base_record`]).

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::records::OutRecord;
use crate::core::SignatureHeaders;
use crate::wire::headers;

/// A consumed `bucket.intents` record, owned.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Partition read from.
    pub partition: i32,
    /// Offset read at.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes, exactly as produced.
    pub value: Option<Vec<u8>>,
    /// Record timestamp, ms.
    pub timestamp: Option<i64>,
    /// Producer headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Consumed {
    /// The `bucket-signature` headers (name matched exactly, as Kafka header names are).
    pub fn signatures(&self) -> SignatureHeaders<'_> {
        SignatureHeaders::of(
            self.headers
                .iter()
                .filter(|(k, _)| k == headers::SIGNATURE)
                .map(|(_, v)| v.as_slice()),
        )
    }

    /// The `bucket-signature` header when there is exactly one (several are refused
    /// `SIGNATURE_REPEATED`, and none of them is verified).
    pub fn signature_header(&self) -> Option<&[u8]> {
        self.signatures().only()
    }

    /// The value bytes (empty for a null value).
    pub fn value_bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }
}

impl Consumed {
    /// The record of a polled message, its bytes copied out.
    pub fn from_message(m: &BorrowedMessage<'_>) -> Consumed {
        Consumed {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp: m.timestamp().to_millis(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// `record` as rdkafka sends it (borrowing its bytes).
pub fn base_record(record: &OutRecord) -> BaseRecord<'_, [u8], [u8]> {
    let mut out = BaseRecord::to(&record.topic);
    if !record.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        out = out.headers(headers);
    }
    if let Some(k) = &record.key {
        out = out.key(k.as_slice());
    }
    if let Some(v) = &record.value {
        out = out.payload(v.as_slice());
    }
    if let Some(p) = record.partition {
        out = out.partition(p);
    }
    out
}
