//! `bucket audit tail`: follows the audit log with filters, human or JSON-lines output.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};
use serde_json::json;

use crate::kafka::EofQuietContext;
use crate::kafka::read::{
    Elections, ReadError, Seen, Then, TopicRead, committed_reader_config, partition_ids,
};
use crate::wire::WireError;
use crate::wire::audit::{AuditEvent, AuditReader};

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct TailOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Audit topic.
    pub topic: String,
    /// Start from the beginning (else only new events).
    pub from_beginning: bool,
    /// Stop when every partition's end is reached.
    pub until_end: bool,
    /// JSON lines instead of human lines.
    pub json: bool,
    /// Only this product.
    pub product: Option<String>,
    /// Only this artifact id.
    pub artifact: Option<String>,
    /// Only this integration.
    pub integration: Option<String>,
    /// Only ACCEPTED or REJECTED.
    pub outcome: Option<String>,
    /// Only decisions carrying this reason code.
    pub reason: Option<String>,
    /// Print counts by outcome and reason at the end.
    pub summary: bool,
}

/// Tail failures.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Writing output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

fn matches(o: &TailOptions, e: &AuditEvent) -> bool {
    let Some(d) = &e.decision else {
        return o.product.is_none()
            && o.artifact.is_none()
            && o.integration.is_none()
            && o.outcome.is_none()
            && o.reason.is_none();
    };
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    let outcome = if d.accepted { "ACCEPTED" } else { "REJECTED" };
    eq(&o.product, &d.product_id)
        && eq(&o.artifact, &d.artifact_id)
        && eq(&o.integration, &d.integration_id)
        && o.outcome
            .as_ref()
            .is_none_or(|w| w.eq_ignore_ascii_case(outcome))
        && o.reason.as_ref().is_none_or(|r| d.reasons.contains(r))
}

/// One event as a JSON object (stable field names for tools).
pub fn to_json(partition: i32, offset: i64, e: &AuditEvent) -> serde_json::Value {
    let mut v = json!({
        "partition": partition, "offset": offset, "seq": e.seq, "hash": e.hash,
        "prev_hash": e.prev_hash, "recorded_at": e.recorded_at, "gate_id": e.gate_id,
        "policy_version": e.policy_version,
    });
    if let Some(d) = &e.decision {
        v["decision"] = json!({
            "source_partition": d.source_partition, "source_offset": d.source_offset,
            "outcome": if d.accepted { "ACCEPTED" } else { "REJECTED" },
            "reasons": d.reasons, "threats": d.threats, "detail": d.detail,
            "intent_id": d.intent_id, "product_id": d.product_id,
            "integration_id": d.integration_id, "artifact_id": d.artifact_id,
            "artifact_class": d.artifact_class, "operation": d.operation,
            "version": d.version, "deleted": d.deleted, "size_delta": d.size_delta,
        });
        if let Some(f) = &d.facts {
            v["decision"]["facts"] = json!({
                "artifact_delta": f.artifact_delta, "counted_rejection": f.counted_rejection,
                "rate_tat_us": f.rate_tat_us,
                "offender": f.offender.as_ref().map(|o| json!({
                    "integration_id": o.integration_id, "rejections_ms": o.rejections_ms,
                    "cooling_until_ms": o.cooling_until_ms,
                })),
                "offender_change": f.offender_change.as_ref().map(|o| json!({
                    "integration_id": o.integration_id, "dropped": o.dropped,
                    "added_ms": o.added_ms, "cooling_until_ms": o.cooling_until_ms,
                })),
            });
        }
    }
    if let Some(g) = &e.governance {
        v["governance"] = json!({"event_type": g.event_type, "detail": g.detail});
    }
    v
}

fn human(partition: i32, offset: i64, e: &AuditEvent) -> String {
    match (&e.decision, &e.governance) {
        (Some(d), _) => format!(
            "p{partition}@{offset} seq={} intent={}:{} {} {} {}/{} v{} {}{}",
            e.seq,
            d.source_partition,
            d.source_offset,
            if d.accepted { "ACCEPTED" } else { "REJECTED" },
            d.operation.as_deref().unwrap_or("-"),
            d.product_id.as_deref().unwrap_or("-"),
            d.artifact_id.as_deref().unwrap_or("-"),
            d.version.map_or("-".to_string(), |v| v.to_string()),
            d.reasons.join(","),
            if d.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.detail)
            }
        ),
        (None, Some(g)) => format!(
            "p{partition}@{offset} seq={} GOVERNANCE {} {}",
            e.seq, g.event_type, g.detail
        ),
        (None, None) => format!("p{partition}@{offset} seq={} (empty event)", e.seq),
    }
}

/// Follows the audit topic, writing matching events to `out`. Links are decoded with their
/// writer's schema; on a schema id `reader` does not know, `relearn` is asked for a fresh
/// reader once per id (a gate upgraded meanwhile registers its version before writing it).
pub fn tail(
    o: &TailOptions,
    mut reader: AuditReader,
    relearn: &mut dyn FnMut() -> Option<AuditReader>,
    out: &mut dyn Write,
) -> Result<(), TailError> {
    let mut asked: HashSet<u32> = HashSet::new();
    let consumer: BaseConsumer<EofQuietContext> =
        committed_reader_config(&o.brokers, "bucket-audit-tail")
            .create_with_context(EofQuietContext)?;
    let start = if o.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let starts: Vec<(i32, Offset)> = partition_ids(&consumer, &o.topic)?
        .into_iter()
        .map(|p| (p, start))
        .collect();
    let read = TopicRead {
        topic: &o.topic,
        timeout: None,
        elections: Elections::Fail,
        follow: !o.until_end,
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let each = |seen: Seen<'_>| {
        let Seen::Record(m) = seen else {
            return Ok::<_, std::io::Error>(Then::Continue);
        };
        let (p, off) = (m.partition(), m.offset());
        let mut decoded = reader.decode_framed(m.payload());
        if let Err(WireError::UnknownWriterSchema(id)) = decoded
            && asked.insert(id)
            && let Some(fresh) = relearn()
        {
            reader = fresh;
            decoded = reader.decode_framed(m.payload());
        }
        match decoded {
            Ok(e) if matches(o, &e) => {
                if let Some(d) = &e.decision {
                    let outcome = if d.accepted { "ACCEPTED" } else { "REJECTED" };
                    *counts.entry(outcome.to_string()).or_default() += 1;
                    for r in &d.reasons {
                        *counts.entry(format!("  {r}")).or_default() += 1;
                    }
                }
                if o.json {
                    writeln!(out, "{}", to_json(p, off, &e))?;
                } else {
                    writeln!(out, "{}", human(p, off, &e))?;
                }
            }
            Ok(_) => {}
            Err(err) => writeln!(out, "p{p}@{off} UNDECODABLE audit record: {err}")?,
        }
        Ok(Then::Continue)
    };
    read.run(&consumer, &starts, each).map_err(|e| match e {
        ReadError::Kafka(e) => TailError::Kafka(e),
        // Without a timeout the read waits for every end; Kafka's own word for giving up.
        ReadError::Timeout(_) => {
            TailError::Kafka(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut))
        }
        ReadError::Handler(e) => TailError::Io(e),
    })?;
    if o.summary {
        writeln!(out, "summary:")?;
        for (k, v) in counts {
            writeln!(out, "  {k}: {v}")?;
        }
    }
    Ok(())
}
