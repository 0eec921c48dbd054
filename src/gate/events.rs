//! Every governance link the gate writes, as one enum: the shell's own events (a gate taking over
//! or leaving a chain, policy changes, checkpoints, folded operator events) and the events a
//! decision causes. Each knows its wire name (`core::events`) and its JSON detail, so the loop
//! never writes an event type as a string literal.

use serde_json::{Value, json};

use crate::core::events::{self, DecisionEvent};
use crate::wire::audit::checkpoint::{CHECKPOINT, Checkpoint};

/// A governance link of an audit chain.
#[derive(Debug, Clone, PartialEq)]
pub enum GovernanceEvent {
    /// This instance took over the partition's chain after restoring it from the audit log.
    GateStarted {
        /// Gate instance id.
        gate_id: String,
        /// Binary version.
        gate_version: &'static str,
        /// Partition.
        partition: i32,
        /// Links in the restored chain.
        restored_links: i64,
        /// Links this restore read from the audit log (the tail after a local checkpoint
        /// when `warm`).
        replayed_links: u64,
        /// The local state store's checkpoint was used.
        warm: bool,
        /// Where the state came from: "store" (warm), "changelog" (cold, loaded from the state
        /// changelog), "audit" (the whole audit log folded) or "memory" (no store).
        restored_from: &'static str,
        /// Artifacts the restored state holds.
        artifacts: u64,
        /// Highest intent offset with a decision (-1 for none).
        last_decided_offset: i64,
        /// How long the restore took, ms.
        restore_ms: u64,
    },
    /// This instance stopped cleanly.
    GateStopped {
        /// Gate instance id.
        gate_id: String,
    },
    /// The chain's next decision is made under another policy than its last one.
    PolicyApplied {
        /// Version before.
        from: String,
        /// Version now.
        to: String,
        /// Line diff, when both texts are known.
        diff: Option<Vec<String>>,
        /// Products in the new policy.
        products: usize,
        /// Integrations in the new policy.
        integrations: usize,
    },
    /// A reloaded policy is in force.
    PolicyLoaded {
        /// Version before.
        from: String,
        /// Version now.
        to: String,
        /// Line diff of the file.
        diff: Vec<String>,
        /// Approval evidence (`approval`, `start_approval` keys), merged into the detail.
        approval: Option<Value>,
    },
    /// A reloaded policy was refused; the previous one stays.
    PolicyRefused {
        /// Version still in force.
        kept: String,
        /// Why the file was refused.
        error: String,
        /// Approval evidence (`approval` key), merged into the detail.
        approval: Option<Value>,
    },
    /// A signed checkpoint of the chain.
    Checkpoint(Checkpoint),
    /// An operator event from `bucket.control`, folded into the chain.
    Control {
        /// Its event type (one of `wire::control::EVENT_TYPES` or `CONTROL_UNREADABLE`).
        event_type: String,
        /// The folded detail.
        detail: Value,
    },
    /// An event a decision caused (cooling-off, quota warning).
    Decision(DecisionEvent),
}

impl GovernanceEvent {
    /// The event's name on the wire.
    pub fn event_type(&self) -> &str {
        match self {
            GovernanceEvent::GateStarted { .. } => events::GATE_STARTED,
            GovernanceEvent::GateStopped { .. } => events::GATE_STOPPED,
            GovernanceEvent::PolicyApplied { .. } => events::POLICY_APPLIED,
            GovernanceEvent::PolicyLoaded { .. } => events::POLICY_LOADED,
            GovernanceEvent::PolicyRefused { .. } => events::POLICY_REFUSED,
            GovernanceEvent::Checkpoint(_) => CHECKPOINT,
            GovernanceEvent::Control { event_type, .. } => event_type,
            GovernanceEvent::Decision(d) => d.event_type(),
        }
    }

    /// The event's detail as written in the audit link.
    pub fn detail(&self) -> Value {
        match self {
            GovernanceEvent::GateStarted {
                gate_id,
                gate_version,
                partition,
                restored_links,
                replayed_links,
                warm,
                restored_from,
                artifacts,
                last_decided_offset,
                restore_ms,
            } => json!({
                "gate_id": gate_id, "gate_version": gate_version, "partition": partition,
                "restored_links": restored_links, "replayed_links": replayed_links,
                "warm": warm, "restored_from": restored_from, "artifacts": artifacts,
                "last_decided_offset": last_decided_offset, "restore_ms": restore_ms,
            }),
            GovernanceEvent::GateStopped { gate_id } => json!({"gate_id": gate_id}),
            GovernanceEvent::PolicyApplied {
                from,
                to,
                diff,
                products,
                integrations,
            } => json!({
                "from": from, "to": to, "diff": diff,
                "products": products, "integrations": integrations,
            }),
            GovernanceEvent::PolicyLoaded {
                from,
                to,
                diff,
                approval,
            } => with_approval(json!({"from": from, "to": to, "diff": diff}), approval),
            GovernanceEvent::PolicyRefused {
                kept,
                error,
                approval,
            } => with_approval(json!({"kept": kept, "error": error}), approval),
            GovernanceEvent::Checkpoint(cp) => serde_json::to_value(cp).unwrap_or_default(),
            GovernanceEvent::Control { detail, .. } => detail.clone(),
            GovernanceEvent::Decision(d) => d.detail(),
        }
    }
}

/// `detail` with the keys of the approval evidence object added (policy approvals, ADR 0010).
fn with_approval(mut detail: Value, approval: &Option<Value>) -> Value {
    if let (Value::Object(d), Some(Value::Object(a))) = (&mut detail, approval) {
        d.extend(a.clone());
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_details_are_the_wire_contract() {
        let stopped = GovernanceEvent::GateStopped {
            gate_id: "g1".into(),
        };
        assert_eq!(stopped.event_type(), "GATE_STOPPED");
        assert_eq!(stopped.detail(), json!({"gate_id": "g1"}));
        let refused = GovernanceEvent::PolicyRefused {
            kept: "v1".into(),
            error: "bad".into(),
            approval: None,
        };
        assert_eq!(refused.event_type(), "POLICY_REFUSED");
        assert_eq!(refused.detail(), json!({"kept": "v1", "error": "bad"}));
        let loaded = GovernanceEvent::PolicyLoaded {
            from: "a".into(),
            to: "b".into(),
            diff: vec![],
            approval: Some(json!({"approval": {"enforced": false}})),
        };
        assert_eq!(loaded.detail()["approval"]["enforced"], false);
        assert_eq!(loaded.detail()["to"], "b");
        let applied = GovernanceEvent::PolicyApplied {
            from: "a".into(),
            to: "b".into(),
            diff: None,
            products: 5,
            integrations: 6,
        };
        assert_eq!(applied.detail()["diff"], Value::Null);
        let control = GovernanceEvent::Control {
            event_type: "TOPICS_CREATED".into(),
            detail: json!({"x": 1}),
        };
        assert_eq!(control.event_type(), "TOPICS_CREATED");
        assert_eq!(control.detail(), json!({"x": 1}));
    }
}
