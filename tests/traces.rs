//! OpenTelemetry traces end to end against the real local stack: a producer's W3C
//! `traceparent` reaches the gate; with `--otlp-endpoint` the gate exports its decision as a
//! child span and the accepted record carries that span's context; the sink exports its durable
//! write as the gate span's child. One trace from the producer to the database row.
//!
//! The collector is an OTLP/HTTP endpoint in this test that decodes what it receives with the
//! OpenTelemetry protocol's own message types (`opentelemetry-proto`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// A span as the collector received it: service, name, ids (hex) and string attributes.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

/// Starts an OTLP/HTTP endpoint on a free port; returns its base URL and what it received.
async fn collector() -> (String, Arc<Mutex<Vec<Received>>>) {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut spans = sink.lock().unwrap();
                for rs in request.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|a| a.key == "service.name")
                        .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                        .unwrap_or_default();
                    for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                        spans.push(Received {
                            service: service.clone(),
                            name: span.name,
                            trace_id: hex::encode(span.trace_id),
                            span_id: hex::encode(span.span_id),
                            parent_span_id: hex::encode(span.parent_span_id),
                            attributes: span
                                .attributes
                                .iter()
                                .map(|a| {
                                    (
                                        a.key.clone(),
                                        text(a.value.as_ref().and_then(|v| v.value.as_ref())),
                                    )
                                })
                                .collect(),
                        });
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// An attribute value as text.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producers_trace_runs_through_the_gate_decision_and_the_sink_write() {
    let (otlp, received) = collector().await;
    let sfx = suffix();
    let topics = create_topics(&sfx, 1).await;
    let db = fresh_database(&sfx).await;
    let group = format!("bucket-gate{sfx}");
    let _gate = spawn_gate_env(
        &sfx,
        &group,
        "g1",
        &[("BUCKET_OTLP_ENDPOINT", otlp.clone())],
    );
    let _sink = spawn(
        &format!("traces-sink{sfx}"),
        &["sink", "--migrate", "--group", &format!("bucket-sink{sfx}")],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
            ("BUCKET_OTLP_ENDPOINT", otlp.clone()),
        ],
    );
    let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
        .await
        .unwrap();

    // The producer's span: trace T, span P.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let producer_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{producer_span}-01");
    let intent = create_intent("ai_assistant", "document", "traced-1");
    let r = signed(&producer, &intent);
    let mut headers: Vec<(&str, &[u8])> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    headers.push(("traceparent", traceparent.as_bytes()));
    headers.push(("tracestate", b"vendor=1"));
    producer
        .send_raw(r.key.as_deref(), r.value.as_deref(), &headers)
        .await
        .unwrap();

    // The accepted record continues trace T under the gate's span.
    let mut accepted = Vec::new();
    wait_until(Duration::from_secs(90), "the accepted record", || {
        accepted = read_committed(&topics.accepted);
        !accepted.is_empty()
    });
    let carried = String::from_utf8(accepted[0].headers["traceparent"].clone()).unwrap();
    let parts: Vec<&str> = carried.split('-').collect();
    assert_eq!(parts.len(), 4, "a W3C traceparent: {carried}");
    assert_eq!(
        parts[1], trace_id,
        "the accepted record stays in the producer's trace"
    );
    let gate_span = parts[2].to_string();
    assert_ne!(gate_span, producer_span, "the gate hands on its own span");
    assert_eq!(accepted[0].headers["tracestate"], b"vendor=1");

    // Both spans reach the collector (the exporters send in batches every few seconds).
    let find = |name: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == name && s.trace_id == trace_id)
            .cloned()
    };
    let mut spans = (None, None);
    for _ in 0..120 {
        spans = (find("bucket.gate.decide"), find("bucket.sink.store"));
        if spans.0.is_some() && spans.1.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (Some(decide), Some(store)) = spans else {
        panic!(
            "spans of trace {trace_id} missing: received {:?}",
            received.lock().unwrap()
        );
    };
    assert_eq!(decide.service, "bucket-gate");
    assert_eq!(
        decide.parent_span_id, producer_span,
        "the decision is the producer's child"
    );
    assert_eq!(
        decide.span_id, gate_span,
        "the record carries the decision span"
    );
    let attribute = |s: &Received, key: &str| {
        s.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        attribute(&decide, "bucket.outcome").as_deref(),
        Some("ACCEPTED")
    );
    assert_eq!(
        attribute(&decide, "bucket.intent_id").as_deref(),
        Some(intent.intent_id.as_str())
    );
    assert_eq!(store.service, "bucket-sink");
    assert_eq!(
        store.parent_span_id, gate_span,
        "the write is the decision's child"
    );
    assert_eq!(
        attribute(&store, "bucket.artifact_id").as_deref(),
        Some("traced-1")
    );
}
