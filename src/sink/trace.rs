//! The sink's durable write of an accepted version as an OpenTelemetry span (with
//! `--otlp-endpoint`): a child of the trace context the accepted record carries (the gate's
//! decision span), from the moment the record was read until its batch was durable.

use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::store::BatchReport;
use crate::kafka::trace::{RecordSpan, enabled};
use crate::wire::accepted::AcceptedArtifact;
use crate::wire::headers::trace_context;

/// What a write span needs of one record, kept from its decoding to its batch's durability.
#[derive(Debug)]
pub(crate) struct Pending {
    headers: Vec<(String, Vec<u8>)>,
    read_at: SystemTime,
    attributes: Vec<KeyValue>,
}

/// The record's trace context and identity, or None while span export is off.
pub(crate) fn pending(m: &BorrowedMessage<'_>, artifact: &AcceptedArtifact) -> Option<Pending> {
    if !enabled() {
        return None;
    }
    let attributes = vec![
        KeyValue::new("bucket.product_id", artifact.product_id.clone()),
        KeyValue::new("bucket.artifact_id", artifact.artifact_id.clone()),
        KeyValue::new("bucket.version", artifact.version),
    ];
    let headers: Vec<(String, Vec<u8>)> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let mut attributes = attributes;
    attributes.extend([
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.destination.name", m.topic().to_string()),
        KeyValue::new("messaging.kafka.partition", i64::from(m.partition())),
        KeyValue::new("messaging.kafka.offset", m.offset()),
    ]);
    Some(Pending {
        headers: trace_context(&headers),
        read_at: SystemTime::now(),
        attributes,
    })
}

/// Ends one span per record of a batch that is now durable, with the batch's counts (a record
/// cannot tell alone whether it was new or a replay).
pub(crate) fn written(pending: &[Pending], report: &BatchReport) {
    for p in pending {
        if let Some(span) = RecordSpan::start(
            "bucket.sink.store",
            SpanKind::Consumer,
            &p.headers,
            p.read_at,
            p.attributes.clone(),
        ) {
            span.set_attribute(KeyValue::new(
                "bucket.sink.batch_inserted",
                report.inserted as i64,
            ));
            span.set_attribute(KeyValue::new(
                "bucket.sink.batch_replayed",
                report.replayed as i64,
            ));
            span.set_attribute(KeyValue::new(
                "bucket.sink.batch_quarantined",
                report.quarantined as i64,
            ));
            span.end();
        }
    }
}
