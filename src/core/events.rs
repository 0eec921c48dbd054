//! Governance events: the audit links that are not decisions. Their names are part of the audit
//! wire contract (`docs/audit.md`), so they are written once, here, and every writer and reader
//! uses these constants. The events a decision itself causes are a typed enum.

use serde_json::json;

/// A gate instance took over a partition's chain (restored from the audit log).
pub const GATE_STARTED: &str = "GATE_STARTED";
/// A gate instance stopped cleanly and committed.
pub const GATE_STOPPED: &str = "GATE_STOPPED";
/// A reloaded policy was loaded (the line diff is in the detail).
pub const POLICY_LOADED: &str = "POLICY_LOADED";
/// A reloaded policy was refused; the previous one stays in force.
pub const POLICY_REFUSED: &str = "POLICY_REFUSED";
/// A chain written under one policy continues under another (first decision after a reload).
pub const POLICY_APPLIED: &str = "POLICY_APPLIED";
/// An integration reached the rejection threshold and cools off.
pub const COOLING_OFF_STARTED: &str = "COOLING_OFF_STARTED";
/// An integration's cooling-off ended.
pub const COOLING_OFF_ENDED: &str = "COOLING_OFF_ENDED";
/// A product's usage crossed the quota warning ratio.
pub const QUOTA_WARNING: &str = "QUOTA_WARNING";
/// The gate signed the chain head before this link (`wire::audit::checkpoint`).
pub const CHECKPOINT: &str = "CHECKPOINT";

/// A governance event a decision causes; the shell writes each as its own link of the chain,
/// right after the decision's.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionEvent {
    /// The integration's cooling-off is over: its intents are decided normally again.
    CoolingOffEnded {
        /// Integration id.
        integration: String,
    },
    /// The integration had `threshold` counted rejections within `window_ms`: its intents are
    /// refused with COOLING_OFF until `until` (ms since the epoch).
    CoolingOffStarted {
        /// Integration id.
        integration: String,
        /// End of the cooling-off, ms.
        until: i64,
        /// Rejections that started it.
        threshold: u32,
        /// Window the rejections were counted in, ms.
        window_ms: i64,
    },
    /// The product's usage crossed `ratio` of its byte or artifact quota (the capacity alert).
    QuotaWarning {
        /// Product id.
        product: String,
        /// Bytes in use after the decision.
        bytes: u64,
        /// Byte quota.
        max_bytes: u64,
        /// Live artifacts after the decision.
        artifacts: u64,
        /// Artifact quota.
        max_artifacts: u64,
        /// Warning ratio of the policy.
        ratio: f64,
    },
}

/// Decisions compare with `Eq`; the one float, the policy's warning ratio, is validated to a
/// number in (0, 1] when the policy loads, so it is never NaN.
impl Eq for DecisionEvent {}

impl DecisionEvent {
    /// The event's name on the wire.
    pub fn event_type(&self) -> &'static str {
        match self {
            DecisionEvent::CoolingOffEnded { .. } => COOLING_OFF_ENDED,
            DecisionEvent::CoolingOffStarted { .. } => COOLING_OFF_STARTED,
            DecisionEvent::QuotaWarning { .. } => QUOTA_WARNING,
        }
    }

    /// The event's detail as written in the audit link.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            DecisionEvent::CoolingOffEnded { integration } => json!({"integration": integration}),
            DecisionEvent::CoolingOffStarted {
                integration,
                until,
                threshold,
                window_ms,
            } => json!({
                "integration": integration, "until": until,
                "threshold": threshold, "window_ms": window_ms,
            }),
            DecisionEvent::QuotaWarning {
                product,
                bytes,
                max_bytes,
                artifacts,
                max_artifacts,
                ratio,
            } => json!({
                "product": product, "bytes": bytes, "max_bytes": max_bytes,
                "artifacts": artifacts, "max_artifacts": max_artifacts, "ratio": ratio,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_keep_their_wire_shape() {
        let e = DecisionEvent::CoolingOffStarted {
            integration: "i".into(),
            until: 5,
            threshold: 3,
            window_ms: 60_000,
        };
        assert_eq!(e.event_type(), "COOLING_OFF_STARTED");
        assert_eq!(
            e.detail(),
            json!({"integration": "i", "until": 5, "threshold": 3, "window_ms": 60_000})
        );
        let q = DecisionEvent::QuotaWarning {
            product: "p".into(),
            bytes: 9,
            max_bytes: 10,
            artifacts: 1,
            max_artifacts: 2,
            ratio: 0.9,
        };
        assert_eq!(q.event_type(), QUOTA_WARNING);
        assert_eq!(q.detail()["max_bytes"], 10);
    }
}
