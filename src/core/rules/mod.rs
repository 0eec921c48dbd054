//! The governance rules, one family per file. `evaluate` is the single list saying in what
//! order they run; every rule sees the same context and reports all its findings.

mod content;
mod fields;
mod operation;
mod product;
mod routing;
mod version;

use super::decide::{Context, Finding};

/// A rule family: looks at the context, appends what it finds wrong.
type Rule = fn(&Context<'_>, &mut Vec<Finding>);

/// Rules in evaluation order; this order is the order of reason codes in a decision.
const RULES: [Rule; 6] = [
    fields::check,
    routing::check,
    product::check,
    operation::check,
    version::check,
    content::check,
];

/// Runs every rule and returns the findings in rule order (empty means accept).
pub fn evaluate(ctx: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for rule in RULES {
        rule(ctx, &mut findings);
    }
    findings
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders shared by the rule tests.
    use crate::core::decide::{Decision, Envelope, decide};
    use crate::core::intent::{ArtifactIntent, Operation};
    use crate::core::partitioner::home_partition;
    use crate::core::policy::tests::shipped;
    use crate::core::state::PartitionState;

    /// Partition count used by tests.
    pub const PARTITIONS: i32 = 6;

    /// A valid CREATE for ai_assistant.
    pub fn create() -> ArtifactIntent {
        ArtifactIntent {
            intent_id: "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f".into(),
            product_id: "ai_assistant".into(),
            integration_id: "assistant-backend".into(),
            owner_id: "alice".into(),
            requester_id: "alice".into(),
            artifact_id: "doc-1".into(),
            artifact_class: "document".into(),
            operation: Operation::Create,
            expected_version: None,
            content: Some(b"hello".to_vec()),
            content_type: "text/plain".into(),
            metadata: "{}".into(),
            purpose: "test".into(),
            client_time: 1_700_000_000_000,
        }
    }

    /// Decides `intent` keyed and partitioned correctly against `state`.
    pub fn decide_on(intent: &ArtifactIntent, state: &PartitionState) -> Decision {
        let key = intent.product_id.as_bytes();
        let env = Envelope {
            key: Some(key),
            partition: home_partition(key, PARTITIONS),
            partition_count: PARTITIONS,
            payload: Ok(intent),
        };
        decide(&env, state, &shipped(), 1_700_000_000_000)
    }

    /// Applies an accepted decision's effect.
    pub fn accept(intent: &ArtifactIntent, state: &mut PartitionState) -> i64 {
        let d = decide_on(intent, state);
        assert!(
            d.findings.is_empty(),
            "expected accept, got {:?}",
            d.findings
        );
        if let Some(e) = &d.effect {
            state.apply(e);
        }
        d.version.unwrap_or(-1)
    }

    /// Changes the operation and expected version of an intent.
    pub fn with_op(mut i: ArtifactIntent, op: Operation, expected: Option<i64>) -> ArtifactIntent {
        i.operation = op;
        i.expected_version = expected;
        if op == Operation::Delete {
            i.content = None;
        }
        i
    }
}
