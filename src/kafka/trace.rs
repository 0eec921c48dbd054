//! W3C trace context through Kafka records, and the OpenTelemetry spans of their processing.
//!
//! A producer that traces puts `traceparent` (and optionally `tracestate`) in an intent's
//! headers. The gate carries them to the accepted record whether or not it exports anything,
//! so a trace survives the gate; with `--otlp-endpoint` it also records its decision as a span
//! (child of the producer's) and the accepted record carries that span's context instead, and
//! the sink records its durable write as a child of the gate's span. Off by default: until
//! [`enable`] runs, [`RecordSpan::start`] returns None and costs one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Set once a tracer provider exports spans.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The instrumentation scope every span of the binary is recorded under.
const SCOPE: &str = "bhiv-bucket";

/// Marks span export as on (after the process installed a global tracer provider).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// True when spans are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Record headers read as a text map (the first value of a name; non-UTF-8 values skipped).
struct HeaderReader<'a>(&'a [(String, Vec<u8>)]);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Record headers written as a text map: a name is replaced, not repeated.
struct HeaderWriter<'a>(&'a mut Vec<(String, Vec<u8>)>);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value.into_bytes()));
    }
}

/// One record's processing as a span, child of the trace context its headers carry (a new
/// trace when they carry none or an invalid one).
pub struct RecordSpan {
    cx: Context,
}

impl RecordSpan {
    /// Starts `name` at `start` for a record with `headers`; None while export is off.
    pub fn start(
        name: &'static str,
        kind: SpanKind,
        headers: &[(String, Vec<u8>)],
        start: SystemTime,
        attributes: Vec<KeyValue>,
    ) -> Option<RecordSpan> {
        if !enabled() {
            return None;
        }
        let parent = TraceContextPropagator::new().extract(&HeaderReader(headers));
        let tracer = opentelemetry::global::tracer(SCOPE);
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        Some(RecordSpan {
            cx: parent.with_span(span),
        })
    }

    /// Adds an attribute known only after the start (the outcome, for one).
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Writes this span's context into `headers` (replacing `traceparent` and `tracestate`),
    /// so the next hop continues the trace under this span.
    pub fn inject(&self, headers: &mut Vec<(String, Vec<u8>)>) {
        TraceContextPropagator::new().inject_context(&self.cx, &mut HeaderWriter(headers));
    }

    /// Ends the span now; the exporter sends it in its next batch.
    pub fn end(self) {
        self.cx.span().end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::headers::TRACEPARENT;

    #[test]
    fn the_writer_replaces_a_header_instead_of_repeating_it() {
        let mut headers = vec![
            (TRACEPARENT.to_string(), b"old".to_vec()),
            ("bucket.intent.id".to_string(), b"i".to_vec()),
        ];
        HeaderWriter(&mut headers).set(TRACEPARENT, "new".into());
        assert_eq!(
            headers,
            vec![
                ("bucket.intent.id".to_string(), b"i".to_vec()),
                (TRACEPARENT.to_string(), b"new".to_vec()),
            ]
        );
        assert_eq!(HeaderReader(&headers).get(TRACEPARENT), Some("new"));
        assert_eq!(HeaderReader(&headers).get("missing"), None);
    }

    #[test]
    fn no_span_while_export_is_off() {
        // ENABLED is process-wide and no unit test turns it on.
        assert!(
            RecordSpan::start("t", SpanKind::Internal, &[], SystemTime::now(), Vec::new())
                .is_none()
        );
    }
}
