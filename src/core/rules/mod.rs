//! The governance rules, one family per file. `evaluate` is the single list saying in what
//! order they run; every rule sees the same context and reports all its findings.

mod authenticity;
mod content;
mod fields;
mod metadata;
mod offender;
mod operation;
mod product;
mod provenance;
mod quota;
pub mod rate;
mod routing;
pub mod secrets;
mod version;

pub use authenticity::is_failure as is_authenticity_failure;
pub use authenticity::key_to_verify;

use super::decide::{Context, Finding};

/// A rule family: looks at the context, appends what it finds wrong.
type Rule = fn(&Context<'_>, &mut Vec<Finding>);

/// Rules in evaluation order; this order is the order of reason codes in a decision.
const RULES: [Rule; 13] = [
    fields::check,
    authenticity::check,
    offender::check,
    rate::check,
    routing::check,
    product::check,
    operation::check,
    version::check,
    content::check,
    metadata::check,
    provenance::check,
    secrets::check,
    quota::check,
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
    //! Builders shared by the rule tests: intents signed with the demo keys in deploy/demo/keys.
    use crate::core::decide::{Decision, Envelope, decide};
    use crate::core::intent::{ArtifactIntent, Operation};
    use crate::core::partitioner::home_partition;
    use crate::core::policy::tests::shipped;
    use crate::core::signature::SignKey;
    use crate::core::state::PartitionState;

    /// Partition count used by tests.
    pub const PARTITIONS: i32 = 6;
    /// Server time used by tests.
    pub const NOW: i64 = 1_700_000_000_000;
    /// Value bytes signed in tests.
    pub const VALUE: &[u8] = b"record value bytes";

    fn demo_key(integration: &str, key_id: &str, alg: &str) -> SignKey {
        use base64::Engine;
        let ext = if alg == "ed25519" { "ed25519" } else { "hmac" };
        let path = format!(
            "{}/deploy/demo/keys/{integration}.{key_id}.{ext}",
            env!("CARGO_MANIFEST_DIR")
        );
        match std::fs::read_to_string(&path) {
            Ok(text) if ext == "ed25519" => {
                let seed = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .unwrap();
                SignKey::ed25519_from_seed(&seed.try_into().unwrap())
            }
            Ok(text) => SignKey::Hmac(text.trim().as_bytes().to_vec()),
            Err(_) => SignKey::ed25519_from_seed(&[9; 32]),
        }
    }

    /// Header signing `value` as `integration` with its demo key for `alg`.
    pub fn sign_as(integration: &str, alg: &str, value: &[u8]) -> String {
        let key_id = if alg == "ed25519" { "ed1" } else { "hm1" };
        demo_key(integration, key_id, alg).header(integration, key_id, value)
    }

    /// Header signing `value` with the ed25519 demo key `key_id` of `integration`.
    pub fn sign_with_key_id(integration: &str, key_id: &str, value: &[u8]) -> String {
        demo_key(integration, key_id, "ed25519").header(integration, key_id, value)
    }

    /// A valid CREATE for ai_assistant.
    pub fn create() -> ArtifactIntent {
        ArtifactIntent {
            intent_id: "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f".into(),
            product_id: "ai_assistant".into(),
            integration_id: "ai_assistant-backend".into(),
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
            client_time: NOW,
        }
    }

    /// Decides `intent` keyed, partitioned and signed correctly against `state`.
    pub fn decide_on(intent: &ArtifactIntent, state: &PartitionState) -> Decision {
        let key = intent.product_id.as_bytes();
        let header = sign_as(&intent.integration_id, "ed25519", VALUE);
        let env = Envelope {
            key: Some(key),
            partition: home_partition(key, PARTITIONS),
            partition_count: PARTITIONS,
            payload: Ok(intent),
            value: VALUE,
            signature: Some(header.as_bytes()).into(),
        };
        decide(&env, state, &shipped(), NOW)
    }

    /// Decides and applies an accepted decision; returns the version.
    pub fn accept(intent: &ArtifactIntent, state: &mut PartitionState) -> i64 {
        let d = decide_on(intent, state);
        assert!(
            d.findings.is_empty(),
            "expected accept, got {:?}",
            d.findings
        );
        state.record(&d, 1000);
        d.version.unwrap_or(-1)
    }

    /// Changes the operation and expected version of an intent (and gives it a new id).
    pub fn with_op(mut i: ArtifactIntent, op: Operation, expected: Option<i64>) -> ArtifactIntent {
        i.operation = op;
        i.expected_version = expected;
        i.intent_id = uuid::Uuid::new_v4().to_string();
        if op == Operation::Delete {
            i.content = None;
        }
        i
    }
}
