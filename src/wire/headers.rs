//! Header names of the wire contract: the producer's signature and the rejection context that
//! the gate adds on `bucket.rejected` (modelled on Kafka Connect's `__connect.errors.*`).

/// Prefix of every header the gate itself writes. Producers may not use it: on the rejected
/// copy their headers under it are renamed with [`FOREIGN_PREFIX`] (docs/wire-contract.md).
pub const GATE_PREFIX: &str = "bucket.";
/// Prefix put in front of a producer header that used [`GATE_PREFIX`], so a DLQ consumer never
/// mistakes the producer's words for the gate's verdict (T2, forged provenance).
pub const FOREIGN_PREFIX: &str = "producer.";

/// True when `name` is under the gate's own prefix (ASCII case ignored: consumers that fold
/// header names must not be fooled either).
pub fn is_gate_owned(name: &str) -> bool {
    name.as_bytes()
        .get(..GATE_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(GATE_PREFIX.as_bytes()))
}

/// A producer header as the rejected copy carries it: unchanged, or renamed under
/// [`FOREIGN_PREFIX`] when it would impersonate the gate.
pub fn as_foreign(name: &str) -> std::borrow::Cow<'_, str> {
    if is_gate_owned(name) {
        std::borrow::Cow::Owned(format!("{FOREIGN_PREFIX}{name}"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Producer signature header: `v1:<integration_id>:<key_id>:<alg>:<base64 sig>`.
pub const SIGNATURE: &str = "bucket-signature";
/// First reason code of the rejection.
pub const ERROR_REASON: &str = "bucket.errors.reason";
/// All reason codes, comma separated, in rule order.
pub const ERROR_REASONS: &str = "bucket.errors.reasons";
/// Human-readable detail of the first reason.
pub const ERROR_DETAIL: &str = "bucket.errors.detail";
/// Threat ids named by the findings, comma separated.
pub const ERROR_THREATS: &str = "bucket.errors.threats";
/// Source topic of the rejected record.
pub const ERROR_TOPIC: &str = "bucket.errors.topic";
/// Source partition of the rejected record.
pub const ERROR_PARTITION: &str = "bucket.errors.partition";
/// Source offset of the rejected record.
pub const ERROR_OFFSET: &str = "bucket.errors.offset";
/// Original record key bytes (the rejected record's own key is the product id or null).
pub const ERROR_ORIGINAL_KEY: &str = "bucket.errors.original.key";
/// Original record timestamp, ms.
pub const ERROR_ORIGINAL_TIMESTAMP: &str = "bucket.errors.original.timestamp";
/// Policy version the decision was made under.
pub const ERROR_POLICY_VERSION: &str = "bucket.errors.policy.version";
/// Intent id when the value decoded.
pub const ERROR_INTENT_ID: &str = "bucket.errors.intent.id";
/// Current artifact version on a version conflict, so the writer can rebase.
pub const ERROR_CURRENT_VERSION: &str = "bucket.errors.current.version";
/// On RATE_LIMITED: milliseconds to wait before the product's next intent conforms.
pub const ERROR_RETRY_AFTER_MS: &str = "bucket.errors.retry.after.ms";
/// The W3C trace context header (`00-<trace id>-<span id>-<flags>`): a producer that traces
/// sets it; the gate carries it (or its own span's) to the accepted record.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor trace state that goes with [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// The trace context headers of a record, in order: what the gate carries to its outputs.
pub fn trace_context(headers: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(k, _)| k == TRACEPARENT || k == TRACESTATE)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trace_context_headers_are_carried() {
        let headers = vec![
            (SIGNATURE.to_string(), b"sig".to_vec()),
            (TRACEPARENT.to_string(), b"00-aa-bb-01".to_vec()),
            ("x".to_string(), b"y".to_vec()),
            (TRACESTATE.to_string(), b"k=v".to_vec()),
        ];
        assert_eq!(
            trace_context(&headers),
            vec![
                (TRACEPARENT.to_string(), b"00-aa-bb-01".to_vec()),
                (TRACESTATE.to_string(), b"k=v".to_vec()),
            ]
        );
        assert!(trace_context(&headers[..1]).is_empty());
    }

    #[test]
    fn only_names_under_the_gate_prefix_are_renamed() {
        assert_eq!(as_foreign(ERROR_REASON), "producer.bucket.errors.reason");
        assert_eq!(
            as_foreign("BUCKET.Errors.reason"),
            "producer.BUCKET.Errors.reason"
        );
        assert_eq!(as_foreign("bucket.intent.id"), "producer.bucket.intent.id");
        // The producer's own signature header and unrelated names stay as they are.
        assert_eq!(as_foreign(SIGNATURE), SIGNATURE);
        assert_eq!(as_foreign("traceparent"), "traceparent");
        assert_eq!(as_foreign("bucket"), "bucket");
        assert_eq!(as_foreign("é"), "é");
    }
}
