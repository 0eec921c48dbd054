//! A consumed `bucket.intents` record as the gate's pure parts see it: owned bytes, no Kafka
//! client types (the edge that fills it from rdkafka is `kafka_records`).

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
