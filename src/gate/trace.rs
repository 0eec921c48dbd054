//! The gate's decision as an OpenTelemetry span (with `--otlp-endpoint`): a child of the trace
//! context the intent's headers carry, attributed with what was decided, and handed on in the
//! accepted (or rejected) record's `traceparent` so the sink's write joins the same trace.

use std::time::{Instant, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

use crate::core::decide::Decision;
use crate::core::intent::ArtifactIntent;
use crate::kafka::trace::RecordSpan;

use super::consumed::Consumed;
use super::records::Outputs;

/// Records the decision on `c` (started at `started`) as a span and puts its context in the
/// outputs' accepted or rejected record; does nothing while span export is off.
pub fn decision_span(
    c: &Consumed,
    intent: Option<&ArtifactIntent>,
    decision: &Decision,
    started: Instant,
    outputs: &mut Outputs,
) {
    if !crate::kafka::trace::enabled() {
        return;
    }
    let start = SystemTime::now()
        .checked_sub(started.elapsed())
        .unwrap_or_else(SystemTime::now);
    let mut attributes = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.kafka.partition", i64::from(c.partition)),
        KeyValue::new("messaging.kafka.offset", c.offset),
        KeyValue::new("bucket.outcome", decision.outcome.as_str()),
        KeyValue::new("bucket.policy_version", decision.policy_version.clone()),
    ];
    let reasons = decision.reasons();
    if !reasons.is_empty() {
        let codes: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        attributes.push(KeyValue::new("bucket.reasons", codes.join(",")));
    }
    if let Some(i) = intent {
        attributes.extend([
            KeyValue::new("bucket.product_id", i.product_id.clone()),
            KeyValue::new("bucket.artifact_id", i.artifact_id.clone()),
            KeyValue::new("bucket.intent_id", i.intent_id.clone()),
        ]);
    }
    if let Some(version) = decision.version {
        attributes.push(KeyValue::new("bucket.version", version));
    }
    let Some(span) = RecordSpan::start(
        "bucket.gate.decide",
        SpanKind::Consumer,
        &c.headers,
        start,
        attributes,
    ) else {
        return;
    };
    // The accepted or rejected record comes first; the audit link keeps no trace headers.
    if let Some(first) = outputs.records.first_mut() {
        span.inject(&mut first.headers);
    }
    span.end();
}
