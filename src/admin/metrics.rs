//! Prometheus metrics (`prometheus-client`, OpenMetrics text). The names are a contract shared
//! with alert rules and docs (docs/admin.md): change them only together. Label sets are bounded:
//! `product` is a product of the active policy or `other`, `reason` a reason code or `none`,
//! `partition` an assigned partition.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{AdminState, Role};

/// Content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `bucket_gate_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// Product of the active policy, or `other`.
    pub product: String,
    /// `accepted` or `rejected`.
    pub outcome: &'static str,
    /// First reason code of a rejection, or `none`.
    pub reason: &'static str,
}

/// A `product` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProductLabel {
    /// Product of the active policy, or `other`.
    pub product: String,
}

/// An `event_type` label: a governance event type of docs/audit.md (a fixed, small set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabel {
    /// `POLICY_LOADED`, `POLICY_REFUSED`, `CHECKPOINT`, ...
    pub event_type: String,
}

/// A `partition` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// Partition number.
    pub partition: i32,
}

/// The `version` label of `bucket_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// Registers `bucket_build_info{version} 1`.
fn build_info(registry: &mut Registry) {
    let info = Family::<VersionLabel, Gauge>::default();
    info.get_or_create(&VersionLabel {
        version: env!("CARGO_PKG_VERSION"),
    })
    .set(1);
    registry.register(
        "bucket_build_info",
        "Build of this process (always 1)",
        info,
    );
}

/// Histogram buckets for latencies from 50 µs to ~13 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.00005, 2.0, 19)
}

/// The gate's metrics; every field is an atomic handle, cheap to clone and update.
#[derive(Clone, Default)]
pub struct GateMetrics {
    /// `bucket_gate_decisions_total{product,outcome,reason}`.
    pub decisions: Family<DecisionLabels, Counter>,
    /// `bucket_gate_decision_duration_seconds`.
    pub decision_duration: HistogramHandle,
    /// `bucket_gate_rate_limited_total{product}`.
    pub rate_limited: Family<ProductLabel, Counter>,
    /// `bucket_gate_cooling_off_integrations`.
    pub cooling_off: Gauge,
    /// `bucket_gate_quota_used_bytes{product}`.
    pub quota_used: Family<ProductLabel, Gauge>,
    /// `bucket_gate_quota_limit_bytes{product}`.
    pub quota_limit: Family<ProductLabel, Gauge>,
    /// `bucket_gate_consumer_lag{partition}`.
    pub lag: Family<PartitionLabel, Gauge>,
    /// `bucket_gate_transaction_commit_duration_seconds`.
    pub commit_duration: HistogramHandle,
    /// `bucket_gate_transactions_aborted_total`.
    pub aborted: Counter,
    /// `bucket_gate_assigned_partitions`.
    pub assigned: Gauge,
    /// `bucket_gate_registry_up`.
    pub registry_up: Gauge,
    /// `bucket_gate_redis_up`.
    pub redis_up: Gauge,
    /// `bucket_gate_redis_enabled`: tells "Redis off on purpose" (`--redis-url none`) from
    /// "Redis down", so the down alert fires only for the second.
    pub redis_enabled: Gauge,
    /// `bucket_gate_governance_events_total{event_type}`: alerts on POLICY_REFUSED and on
    /// checkpoints that stop being signed.
    pub governance: Family<EventTypeLabel, Counter>,
}

/// A latency histogram with the admin buckets (Default gives them).
#[derive(Clone, Debug)]
pub struct HistogramHandle(pub Histogram);

impl Default for HistogramHandle {
    fn default() -> Self {
        HistogramHandle(Histogram::new(latency_buckets()))
    }
}

impl GateMetrics {
    /// A registry holding every gate metric and the build info.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "bucket_gate_decisions",
            "Intents decided, by product, outcome and first reason code",
            self.decisions.clone(),
        );
        r.register(
            "bucket_gate_decision_duration_seconds",
            "Time from consuming an intent to its outputs being queued in the transaction",
            self.decision_duration.0.clone(),
        );
        r.register(
            "bucket_gate_rate_limited",
            "Intents refused with RATE_LIMITED, by product",
            self.rate_limited.clone(),
        );
        r.register(
            "bucket_gate_cooling_off_integrations",
            "Integrations currently cooling off (COOLING_OFF)",
            self.cooling_off.clone(),
        );
        r.register(
            "bucket_gate_quota_used_bytes",
            "Stored bytes of live versions, by product homed on this instance",
            self.quota_used.clone(),
        );
        r.register(
            "bucket_gate_quota_limit_bytes",
            "Stored-bytes quota, by product of the active policy",
            self.quota_limit.clone(),
        );
        r.register(
            "bucket_gate_consumer_lag",
            "Records of bucket.intents not yet consumed, by assigned partition",
            self.lag.clone(),
        );
        r.register(
            "bucket_gate_transaction_commit_duration_seconds",
            "Duration of transaction commits (drain, offsets, commit)",
            self.commit_duration.0.clone(),
        );
        r.register(
            "bucket_gate_transactions_aborted",
            "Transactions aborted (and their partitions rewound)",
            self.aborted.clone(),
        );
        r.register(
            "bucket_gate_assigned_partitions",
            "Partitions of bucket.intents assigned to this instance",
            self.assigned.clone(),
        );
        r.register(
            "bucket_gate_registry_up",
            "1 when the schema registry answered the last probe",
            self.registry_up.clone(),
        );
        r.register(
            "bucket_gate_redis_up",
            "1 when the last Redis usage exchange succeeded (0: down or disabled)",
            self.redis_up.clone(),
        );
        r.register(
            "bucket_gate_redis_enabled",
            "1 when a Redis URL is configured, 0 with --redis-url none (sharing off on purpose)",
            self.redis_enabled.clone(),
        );
        r.register(
            "bucket_gate_governance_events",
            "Governance events this instance appended to the audit chains, by type",
            self.governance.clone(),
        );
        build_info(&mut r);
        r
    }
}

/// The sink's metrics.
#[derive(Clone)]
pub struct SinkMetrics {
    /// `bucket_sink_artifacts_written_total`.
    pub written: Counter,
    /// `bucket_sink_batch_size`.
    pub batch_size: Histogram,
    /// `bucket_sink_write_duration_seconds`.
    pub write_duration: HistogramHandle,
    /// `bucket_sink_consumer_lag{partition}`.
    pub lag: Family<PartitionLabel, Gauge>,
    /// `bucket_sink_versions_quarantined_total`: accepted versions the store could not keep.
    pub versions_quarantined: Counter,
    /// `bucket_sink_undecodable_total`: records of the accepted topic that did not decode.
    pub undecodable: Counter,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        SinkMetrics {
            written: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            write_duration: HistogramHandle::default(),
            lag: Family::default(),
            versions_quarantined: Counter::default(),
            undecodable: Counter::default(),
        }
    }
}

impl SinkMetrics {
    /// A registry holding every sink metric and the build info.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "bucket_sink_artifacts_written",
            "Artifact versions newly stored (replays not counted)",
            self.written.clone(),
        );
        r.register(
            "bucket_sink_batch_size",
            "Records per durable batch",
            self.batch_size.clone(),
        );
        r.register(
            "bucket_sink_write_duration_seconds",
            "Time to make one batch durable, retries included",
            self.write_duration.0.clone(),
        );
        r.register(
            "bucket_sink_consumer_lag",
            "Records of the accepted topic not yet consumed, by assigned partition",
            self.lag.clone(),
        );
        r.register(
            "bucket_sink_versions_quarantined",
            "Accepted versions quarantined instead of stored (conflict or refused row): accepted \
             but not stored, an incident",
            self.versions_quarantined.clone(),
        );
        r.register(
            "bucket_sink_undecodable",
            "Records of the accepted topic that did not decode, quarantined with their bytes",
            self.undecodable.clone(),
        );
        build_info(&mut r);
        r
    }
}

/// Sets a per-partition gauge family to exactly `lags`, dropping partitions no longer held.
pub fn set_lags(family: &Family<PartitionLabel, Gauge>, old: &[i32], lags: &[(i32, i64)]) {
    for p in old {
        if !lags.iter().any(|(q, _)| q == p) {
            family.remove(&PartitionLabel { partition: *p });
        }
    }
    for (p, lag) in lags {
        family
            .get_or_create(&PartitionLabel { partition: *p })
            .set(*lag);
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AdminState>) -> Response {
    let registry = match &state.role {
        Role::Gate(g) => g.registry(),
        Role::Sink(s) => s.registry(),
    };
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_the_contract_names() {
        let m = GateMetrics::default();
        m.decisions
            .get_or_create(&DecisionLabels {
                product: "ai_assistant".into(),
                outcome: "rejected",
                reason: "KEY_MISMATCH",
            })
            .inc();
        m.decision_duration.0.observe(0.001);
        m.rate_limited
            .get_or_create(&ProductLabel {
                product: "gurukul".into(),
            })
            .inc();
        m.governance
            .get_or_create(&EventTypeLabel {
                event_type: "POLICY_REFUSED".into(),
            })
            .inc();
        set_lags(&m.lag, &[], &[(0, 3), (1, 0)]);
        set_lags(&m.lag, &[0, 1], &[(1, 5)]);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry()).unwrap();
        for want in [
            r#"bucket_gate_decisions_total{product="ai_assistant",outcome="rejected",reason="KEY_MISMATCH"} 1"#,
            "bucket_gate_decision_duration_seconds_count 1",
            r#"bucket_gate_rate_limited_total{product="gurukul"} 1"#,
            "bucket_gate_cooling_off_integrations 0",
            "bucket_gate_transaction_commit_duration_seconds_bucket",
            "bucket_gate_transactions_aborted_total 0",
            "bucket_gate_assigned_partitions 0",
            "bucket_gate_registry_up 0",
            "bucket_gate_redis_up 0",
            "bucket_gate_redis_enabled 0",
            r#"bucket_gate_governance_events_total{event_type="POLICY_REFUSED"} 1"#,
            r#"bucket_gate_consumer_lag{partition="1"} 5"#,
            r#"bucket_build_info{version=""#,
        ] {
            assert!(out.contains(want), "missing {want} in\n{out}");
        }
        assert!(!out.contains(r#"bucket_gate_consumer_lag{partition="0"}"#));
        let s = SinkMetrics::default();
        s.written.inc_by(3);
        s.versions_quarantined.inc();
        s.batch_size.observe(3.0);
        set_lags(&s.lag, &[], &[(2, 7)]);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &s.registry()).unwrap();
        for want in [
            "bucket_sink_artifacts_written_total 3",
            "bucket_sink_versions_quarantined_total 1",
            "bucket_sink_undecodable_total 0",
            "bucket_sink_batch_size_count 1",
            "bucket_sink_write_duration_seconds_count 0",
            r#"bucket_sink_consumer_lag{partition="2"} 7"#,
        ] {
            assert!(out.contains(want), "missing {want} in\n{out}");
        }
    }
}
