//! The gate's records at its Kafka edge: a consumed `bucket.intents` record taken out of
//! rdkafka's message into owned bytes ([`Consumed::from_message`]), and an output record
//! ([`super::records::OutRecord`], built by the pure `records` module) handed to rdkafka
//! ([`base_record`]).

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::consumed::Consumed;
use super::records::OutRecord;

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
