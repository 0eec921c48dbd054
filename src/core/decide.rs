//! `decide`: the one place where the gate decides. A pure function of (envelope, state, policy,
//! time); the shell moves its result to Kafka.

use super::intent::ArtifactIntent;
use super::policy::Policy;
use super::reason::ReasonCode;
use super::rules;
use super::state::{ArtifactKey, ArtifactRecord, Effect, PartitionState, ReplayKey};

/// Why the shell could not turn the record value into an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    /// One of the decode reason codes.
    pub reason: ReasonCode,
    /// Human-readable specifics.
    pub detail: String,
}

/// One consumed record as the core sees it.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Record key bytes.
    pub key: Option<&'a [u8]>,
    /// Partition the record was read from.
    pub partition: i32,
    /// Partition count of the intents topic.
    pub partition_count: i32,
    /// The decoded intent, or why decoding failed.
    pub payload: Result<&'a ArtifactIntent, &'a DecodeFailure>,
    /// The exact record value bytes (what the signature covers).
    pub value: &'a [u8],
    /// The `bucket-signature` header value, if present.
    pub signature: Option<&'a [u8]>,
}

/// A rule violation: a reason code and its specifics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable reason code.
    pub reason: ReasonCode,
    /// What exactly was wrong.
    pub detail: String,
}

impl Finding {
    /// Shorthand constructor used by the rules.
    pub fn new(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Finding {
            reason,
            detail: detail.into(),
        }
    }
}

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Routed to `bucket.accepted` and applied to state.
    Accepted,
    /// Routed to `bucket.rejected` with its original bytes.
    Rejected,
}

impl Outcome {
    /// Wire spelling, as in the Avro enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "ACCEPTED",
            Outcome::Rejected => "REJECTED",
        }
    }
}

/// Everything the shell needs to route, audit and update state for one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Accepted or rejected.
    pub outcome: Outcome,
    /// Violations in rule order; empty when accepted.
    pub findings: Vec<Finding>,
    /// Assigned version when accepted; current version on a conflict (so the writer can rebase).
    pub version: Option<i64>,
    /// State change to apply when accepted.
    pub effect: Option<Effect>,
    /// Change in stored bytes for the product.
    pub size_delta: i64,
    /// Server time of the decision, ms since the epoch.
    pub decided_at: i64,
    /// Policy version the decision was made under.
    pub policy_version: String,
    /// Set when the intent was authentic: its id is remembered for replay detection.
    pub replay_key: Option<ReplayKey>,
}

impl Decision {
    /// Reason codes in rule order.
    pub fn reasons(&self) -> Vec<ReasonCode> {
        self.findings.iter().map(|f| f.reason).collect()
    }

    /// Threat ids named by the findings, deduplicated, in order.
    pub fn threats(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for t in self.findings.iter().filter_map(|f| f.reason.threat()) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// Detail of the first finding, or empty.
    pub fn detail(&self) -> &str {
        self.findings.first().map_or("", |f| f.detail.as_str())
    }
}

/// Everything a rule may look at.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The decoded intent.
    pub intent: &'a ArtifactIntent,
    /// The record as consumed.
    pub envelope: &'a Envelope<'a>,
    /// The artifact's current record, if any.
    pub current: Option<&'a ArtifactRecord>,
    /// The partition's state (replay memory).
    pub state: &'a PartitionState,
    /// Active policy.
    pub policy: &'a Policy,
    /// Server time, ms since the epoch.
    pub now_ms: i64,
}

/// Decides one intent. Never fails: every input gets a decision.
pub fn decide(
    envelope: &Envelope<'_>,
    state: &PartitionState,
    policy: &Policy,
    now_ms: i64,
) -> Decision {
    let rejected = |findings: Vec<Finding>, version: Option<i64>, replay_key| Decision {
        outcome: Outcome::Rejected,
        findings,
        version,
        effect: None,
        size_delta: 0,
        decided_at: now_ms,
        policy_version: policy.version.clone(),
        replay_key,
    };
    let intent = match envelope.payload {
        Ok(intent) => intent,
        Err(failure) => {
            return rejected(
                vec![Finding::new(failure.reason, failure.detail.clone())],
                None,
                None,
            );
        }
    };
    let key = ArtifactKey {
        product_id: intent.product_id.clone(),
        artifact_id: intent.artifact_id.clone(),
    };
    let current = state.artifact(&key);
    let ctx = Context {
        intent,
        envelope,
        current,
        state,
        policy,
        now_ms,
    };
    let findings = rules::evaluate(&ctx);
    // Only authentic intents burn their id: a forger must not be able to pre-empt a real one.
    let authentic = !findings
        .iter()
        .any(|f| rules::is_authenticity_failure(f.reason));
    let replay_key = authentic.then(|| (intent.product_id.clone(), intent.intent_id.clone()));
    if !findings.is_empty() {
        let conflict = findings
            .iter()
            .any(|f| f.reason == ReasonCode::VersionConflict);
        return rejected(
            findings,
            current.filter(|_| conflict).map(|c| c.version),
            replay_key,
        );
    }
    let version = current.map_or(1, |c| c.version + 1);
    let deleted = matches!(intent.operation, super::intent::Operation::Delete);
    let size = if deleted { 0 } else { intent.content_len() };
    let previous_size = current.filter(|c| !c.deleted).map_or(0, |c| c.size);
    let record = ArtifactRecord {
        version,
        owner_id: current.map_or_else(|| intent.owner_id.clone(), |c| c.owner_id.clone()),
        artifact_class: current.map_or_else(
            || intent.artifact_class.clone(),
            |c| c.artifact_class.clone(),
        ),
        size,
        deleted,
    };
    Decision {
        outcome: Outcome::Accepted,
        findings: Vec::new(),
        version: Some(version),
        effect: Some(Effect { key, record }),
        size_delta: size as i64 - previous_size as i64,
        decided_at: now_ms,
        policy_version: policy.version.clone(),
        replay_key,
    }
}
