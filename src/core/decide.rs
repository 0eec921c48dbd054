//! `decide`: the one place where the gate decides. A pure function of (envelope, state, policy,
//! time); the shell moves its result to Kafka.

use super::events::DecisionEvent;
use super::intent::ArtifactIntent;
use super::policy::Policy;
use super::reason::ReasonCode;
use super::rules;
use super::state::{
    ArtifactKey, ArtifactRecord, Effect, OffenderChange, PartitionState, ReplayKey,
};

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
    /// The record's `bucket-signature` header(s).
    pub signature: SignatureHeaders<'a>,
}

/// The record's `bucket-signature` headers as the authenticity rule needs them: the contract
/// allows at most one (docs/wire-contract.md), so "which one counts" never arises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignatureHeaders<'a> {
    /// No `bucket-signature` header.
    #[default]
    Absent,
    /// Exactly one: its value.
    One(&'a [u8]),
    /// More than one (how many): refused `SIGNATURE_REPEATED`, none of them is verified.
    Repeated(usize),
}

impl<'a> SignatureHeaders<'a> {
    /// Classifies the values of every header named `bucket-signature`, in record order.
    pub fn of(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => SignatureHeaders::Absent,
            (Some(one), None) => SignatureHeaders::One(one),
            (Some(_), Some(_)) => SignatureHeaders::Repeated(2 + values.count()),
        }
    }

    /// The header's value when there is exactly one.
    pub fn only(self) -> Option<&'a [u8]> {
        match self {
            SignatureHeaders::One(v) => Some(v),
            _ => None,
        }
    }
}

impl<'a> From<Option<&'a [u8]>> for SignatureHeaders<'a> {
    fn from(one: Option<&'a [u8]>) -> Self {
        one.map_or(SignatureHeaders::Absent, SignatureHeaders::One)
    }
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
    /// Change in the product's live artifact count (+1 create, -1 delete).
    pub artifact_delta: i64,
    /// New GCRA arrival time of the product, when the intent counted against its rate.
    pub rate_tat: Option<(String, i64)>,
    /// How the integration's offender state changed, when it did.
    pub offender: Option<OffenderChange>,
    /// The rejection counts towards the integration's repeat-offender window.
    pub counted_rejection: bool,
    /// Governance events this decision causes (quota warning, cooling-off start/end).
    pub events: Vec<DecisionEvent>,
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
#[derive(Debug, Clone)]
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
    /// Whether the record's signature was verified ahead of the decision.
    pub signature_check: SignatureCheck,
    /// (product, intent id) as the replay set holds it ([`super::recorded`]): what the replay
    /// rule looks up and what an authentic decision remembers, built once.
    pub replay_key: ReplayKey,
}

/// Whether a record's signature was already verified by the caller (a batch verified ahead of
/// deciding, off the loop thread) or is left to the authenticity rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Not verified yet: the authenticity rule verifies it.
    #[default]
    Pending,
    /// Verified with the key [`crate::core::rules::key_to_verify`] names for this
    /// record's header under the decision's policy: the result.
    Verified(bool),
}

/// The (bytes, live artifacts) change accepting `intent` would make.
pub fn candidate_change(intent: &ArtifactIntent, current: Option<&ArtifactRecord>) -> (i64, i64) {
    use super::intent::Operation;
    let live = current.filter(|c| !c.deleted);
    let previous = live.map_or(0, |c| c.size as i64);
    match intent.operation {
        Operation::Delete => (-previous, if live.is_some() { -1 } else { 0 }),
        Operation::Create => (intent.content_len() as i64, 1),
        Operation::Update => (intent.content_len() as i64 - previous, 0),
    }
}

/// Decides one intent. Never fails: every input gets a decision.
pub fn decide(
    envelope: &Envelope<'_>,
    state: &PartitionState,
    policy: &Policy,
    now_ms: i64,
) -> Decision {
    decide_checked(envelope, state, policy, now_ms, SignatureCheck::Pending)
}

/// [`decide`], with the record's signature possibly verified ahead (same decision either way).
pub fn decide_checked(
    envelope: &Envelope<'_>,
    state: &PartitionState,
    policy: &Policy,
    now_ms: i64,
    signature_check: SignatureCheck,
) -> Decision {
    let base = Decision {
        outcome: Outcome::Rejected,
        findings: Vec::new(),
        version: None,
        effect: None,
        size_delta: 0,
        decided_at: now_ms,
        policy_version: policy.version.clone(),
        replay_key: None,
        artifact_delta: 0,
        rate_tat: None,
        offender: None,
        counted_rejection: false,
        events: Vec::new(),
    };
    let intent = match envelope.payload {
        Ok(intent) => intent,
        Err(failure) => {
            return Decision {
                findings: vec![Finding::new(failure.reason, failure.detail.clone())],
                ..base
            };
        }
    };
    let key = ArtifactKey {
        product_id: intent.product_id.clone(),
        artifact_id: intent.artifact_id.clone(),
    };
    let current = state.artifact(&key);
    // Remembered as recorded in the audit link (a cut id when absurdly long): restore reads it
    // back from there, and the replay set holds bounded ids.
    let ctx = Context {
        intent,
        envelope,
        current,
        state,
        policy,
        now_ms,
        signature_check,
        replay_key: (
            intent.product_id.clone(),
            super::recorded(&intent.intent_id).into_owned(),
        ),
    };
    let findings = rules::evaluate(&ctx);
    let has = |r: ReasonCode| findings.iter().any(|f| f.reason == r);
    // Only authentic intents burn their id: a forger must not be able to pre-empt a real one.
    let authentic = !findings
        .iter()
        .any(|f| rules::is_authenticity_failure(f.reason));
    let replay_key = authentic.then_some(ctx.replay_key);
    // Every intent of a known product counts against its rate, unless it was itself refused
    // for being over the rate.
    let rate_tat = policy
        .products
        .get(&intent.product_id)
        .filter(|_| advances_rate(has))
        .and_then(|p| {
            rules::rate::gcra(
                state.rate_tat(&intent.product_id),
                now_ms,
                p.rate_per_sec,
                p.burst,
            )
            .ok()
        })
        .map(|tat| (intent.product_id.clone(), tat));
    let mut events = Vec::new();
    let counted_rejection = counts_as_rejection(authentic, !findings.is_empty(), has);
    let offender = offender_change(
        state,
        policy,
        &intent.integration_id,
        now_ms,
        counted_rejection,
        &mut events,
    );
    if !findings.is_empty() {
        let conflict = has(ReasonCode::VersionConflict);
        return Decision {
            version: current.filter(|_| conflict).map(|c| c.version),
            findings,
            replay_key,
            rate_tat,
            offender,
            counted_rejection,
            events,
            ..base
        };
    }
    let version = current.map_or(1, |c| c.version + 1);
    let deleted = matches!(intent.operation, super::intent::Operation::Delete);
    let size = if deleted { 0 } else { intent.content_len() };
    let (size_delta, artifact_delta) = candidate_change(intent, current);
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
    if let Some(p) = policy.products.get(&intent.product_id) {
        let before = state.usage(&intent.product_id);
        let after = before.plus(size_delta, artifact_delta);
        let crossed = |b: u64, a: u64, max: u64| {
            let line = (max as f64 * policy.quotas.warning_ratio) as u64;
            b < line && a >= line
        };
        if crossed(before.bytes, after.bytes, p.max_bytes)
            || crossed(before.artifacts, after.artifacts, p.max_artifacts)
        {
            events.push(DecisionEvent::QuotaWarning {
                product: intent.product_id.clone(),
                bytes: after.bytes,
                max_bytes: p.max_bytes,
                artifacts: after.artifacts,
                max_artifacts: p.max_artifacts,
                ratio: policy.quotas.warning_ratio,
            });
        }
    }
    Decision {
        outcome: Outcome::Accepted,
        version: Some(version),
        effect: Some(Effect { key, record }),
        size_delta,
        artifact_delta,
        replay_key,
        rate_tat,
        offender,
        events,
        ..base
    }
}

/// Whether a decision counts toward its integration's cooling-off: an authentic intent that was
/// refused, for anything but its rate or a cooling-off already running. `refused_for` says
/// whether the decision carries a reason. One rule for `decide` and for the fold of audit links
/// that do not record it (version 1).
pub fn counts_as_rejection(
    authentic: bool,
    rejected: bool,
    refused_for: impl Fn(ReasonCode) -> bool,
) -> bool {
    authentic
        && rejected
        && !refused_for(ReasonCode::RateLimited)
        && !refused_for(ReasonCode::CoolingOff)
}

/// Whether a decided intent of a known product advances the product's rate (GCRA arrival
/// time): every one that was not itself refused for its rate. Shared with the version 1 fold.
pub fn advances_rate(refused_for: impl Fn(ReasonCode) -> bool) -> bool {
    !refused_for(ReasonCode::RateLimited)
}

/// How the integration's offender state changes, if it does: an ended cooling-off is cleared,
/// a counted rejection is added (the window's rejections at or before `now - window` leave it)
/// and may start a cooling-off, which empties the window. Also used to rebuild the state from
/// version 1 links. Reads the window without copying it: only the change is built.
pub fn offender_change(
    state: &PartitionState,
    policy: &Policy,
    integration: &str,
    now_ms: i64,
    counted_rejection: bool,
    events: &mut Vec<DecisionEvent>,
) -> Option<OffenderChange> {
    let o = &policy.offenders;
    let current = state.offender(integration);
    let cooling_before = current.and_then(|s| s.cooling_until);
    let cooling_ended = cooling_before.is_some_and(|until| until <= now_ms);
    let mut cooling_until = cooling_before.filter(|_| !cooling_ended);
    if cooling_ended {
        events.push(DecisionEvent::CoolingOffEnded {
            integration: integration.to_string(),
        });
    }
    let mut dropped = 0usize;
    let mut added = None;
    if counted_rejection && cooling_until.is_none() {
        let window: &[i64] = &[];
        let (a, b) = current.map_or((window, window), |s| s.rejections.as_slices());
        let cutoff = now_ms - o.window_ms;
        // The rejection is appended, then the oldest at or before the cutoff leave, the new
        // one included when the window is empty of time.
        let held = a.len() + b.len();
        let leaving = a
            .iter()
            .chain(b)
            .chain(std::iter::once(&now_ms))
            .take_while(|t| **t <= cutoff)
            .count();
        let kept = held + 1 - leaving;
        if kept as u64 >= u64::from(o.threshold) {
            dropped = held;
            cooling_until = Some(now_ms + o.cool_off_ms);
            events.push(DecisionEvent::CoolingOffStarted {
                integration: integration.to_string(),
                until: now_ms + o.cool_off_ms,
                threshold: o.threshold,
                window_ms: o.window_ms,
            });
        } else {
            dropped = leaving.min(held);
            added = (leaving <= held).then_some(now_ms);
        }
    }
    let changed = dropped > 0 || added.is_some() || cooling_until != cooling_before;
    changed.then(|| OffenderChange {
        integration: integration.to_string(),
        dropped: u32::try_from(dropped).unwrap_or(u32::MAX),
        added,
        cooling_until,
    })
}
