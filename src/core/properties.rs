//! Property tests of the decision core against a simple model (docs/origins.md#decisions, issue 3):
//!
//! - `decide` is deterministic: the same inputs give the same decision.
//! - Over random sequences of intents (operations, versions, owners, classes, products,
//!   signature variants, replays, oversize content) the gate's decisions agree with a model of
//!   the rules; in particular no accepted intent has a bad or missing signature, a revoked key,
//!   an immutable-class UPDATE/DELETE, a non-owner DELETE, a stale `expected_version` or content
//!   over its product's limit, and the accepted versions of every artifact are exactly 1..=n.
//!
//! Uses the shipped policy (`deploy/policy.toml`) and the demo keys in `deploy/demo/keys`.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use proptest::prelude::*;

use super::decide::{Decision, Envelope, Outcome, SignatureCheck, decide_checked, offender_change};
use super::events::DecisionEvent;
use super::intent::{ArtifactIntent, Operation};
use super::partitioner::home_partition;
use super::policy::tests::shipped;
use super::policy::{Offenders, Policy};
use super::reason::ReasonCode;
use super::rules::key_to_verify;
use super::rules::test_support::{NOW, PARTITIONS, sign_as, sign_with_key_id};
use super::signature::verify_all;
use super::state::{OffenderState, PartitionState};

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(shipped)
}

const PRODUCTS: [&str; 3] = ["ai_assistant", "gurukul", "enforcement_engine"];
const CLASSES: [&str; 5] = [
    "document",
    "transcript",
    "config",
    "model_checkpoint",
    "audit_entry",
];
const OWNERS: [&str; 2] = ["alice", "bob"];

/// How the record is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    /// Ed25519 with the integration's active demo key.
    Ed25519,
    /// HMAC-SHA256 with the integration's demo secret.
    Hmac,
    /// Ed25519 with a revoked key (`old`; unknown for integrations without one).
    RevokedKey,
    /// Well-formed header whose signature bytes are random.
    Garbage,
    /// A valid signature over other bytes than the value.
    OtherBytes,
    /// No header.
    Missing,
}

impl Sig {
    fn valid(self) -> bool {
        matches!(self, Sig::Ed25519 | Sig::Hmac)
    }
}

/// Content size relative to the product's limit.
#[derive(Debug, Clone, Copy)]
enum Size {
    None,
    Small,
    AtLimit,
    OverLimit,
}

/// One generated step: an intent and how it travels.
#[derive(Debug, Clone)]
struct Step {
    product: usize,
    artifact: u8,
    class: usize,
    op: Operation,
    /// Offset added to the model's current version (0 = fresh); None = no expected_version.
    expected: Option<i64>,
    owner: usize,
    requester: usize,
    size: Size,
    sig: Sig,
    /// Reuse the intent id of an earlier step (replay attempt).
    replay_of: Option<prop::sample::Index>,
    garbage: [u8; 8],
}

fn step() -> impl Strategy<Value = Step> {
    (
        (0..PRODUCTS.len(), 0u8..3, 0..CLASSES.len()),
        prop_oneof![
            3 => Just(Operation::Create),
            3 => Just(Operation::Update),
            2 => Just(Operation::Delete)
        ],
        prop_oneof![6 => Just(Some(0i64)), 1 => Just(None), 2 => (-2i64..=2).prop_map(Some)],
        (0..OWNERS.len(), 0..OWNERS.len()),
        prop_oneof![
            1 => Just(Size::None),
            12 => Just(Size::Small),
            1 => Just(Size::AtLimit),
            1 => Just(Size::OverLimit)
        ],
        prop_oneof![
            6 => Just(Sig::Ed25519),
            4 => Just(Sig::Hmac),
            1 => Just(Sig::RevokedKey),
            1 => Just(Sig::Garbage),
            1 => Just(Sig::OtherBytes),
            1 => Just(Sig::Missing)
        ],
        prop::option::weighted(0.1, any::<prop::sample::Index>()),
        any::<[u8; 8]>(),
    )
        .prop_map(
            |(
                (product, artifact, class),
                op,
                expected,
                (owner, requester),
                size,
                sig,
                replay_of,
                garbage,
            )| Step {
                product,
                artifact,
                class,
                op,
                expected,
                owner,
                requester,
                size,
                sig,
                replay_of,
                garbage,
            },
        )
}

/// The model's view of one artifact.
#[derive(Debug, Clone)]
struct Model {
    version: i64,
    owner: String,
    class: String,
    deleted: bool,
}

/// Builds the intent, value bytes and header of a step against the model.
fn materialise(
    s: &Step,
    n: usize,
    models: &BTreeMap<(String, String), Model>,
    ids: &[String],
) -> (ArtifactIntent, Vec<u8>, Option<String>) {
    let product = PRODUCTS[s.product];
    let artifact_id = format!("a{}", s.artifact);
    let current = models.get(&(product.to_string(), artifact_id.clone()));
    let limit = policy().products[product].max_content_bytes as usize;
    let content = match s.size {
        Size::None => None,
        Size::Small => Some(format!("content {n}").into_bytes()),
        Size::AtLimit => Some(vec![b'x'; limit]),
        Size::OverLimit => Some(vec![b'x'; limit + 1]),
    };
    let intent_id = match s.replay_of {
        Some(ix) if !ids.is_empty() => ids[ix.index(ids.len())].clone(),
        _ => uuid::Builder::from_random_bytes(
            [s.garbage, (n as u64).to_be_bytes()]
                .concat()
                .try_into()
                .unwrap_or([0; 16]),
        )
        .into_uuid()
        .to_string(),
    };
    let expected_version = s
        .expected
        .map(|d| current.map_or(0, |c| c.version) + d)
        .filter(|_| s.op != Operation::Create || s.expected != Some(0));
    let intent = ArtifactIntent {
        intent_id,
        product_id: product.into(),
        integration_id: format!("{product}-backend"),
        owner_id: OWNERS[s.owner].into(),
        requester_id: OWNERS[s.requester].into(),
        artifact_id,
        artifact_class: CLASSES[s.class].into(),
        operation: s.op,
        expected_version,
        content,
        content_type: "text/plain".into(),
        metadata: "{}".into(),
        purpose: "property test".into(),
        client_time: NOW,
    };
    let value = format!("value {n} {}", intent.intent_id).into_bytes();
    let integration = &intent.integration_id;
    let header = match s.sig {
        Sig::Ed25519 => Some(sign_as(integration, "ed25519", &value)),
        Sig::Hmac => Some(sign_as(integration, "hmac-sha256", &value)),
        Sig::RevokedKey => Some(sign_with_key_id(integration, "old", &value)),
        Sig::OtherBytes => Some(sign_as(integration, "ed25519", b"other bytes")),
        Sig::Garbage => {
            use base64::Engine;
            let sig = base64::engine::general_purpose::STANDARD.encode(s.garbage.repeat(8));
            Some(format!("v1:{integration}:ed1:ed25519:{sig}"))
        }
        Sig::Missing => None,
    };
    (intent, value, header)
}

fn decide_raw(
    intent: &ArtifactIntent,
    value: &[u8],
    header: Option<&str>,
    state: &PartitionState,
) -> Decision {
    decide_raw_checked(intent, value, header, state, SignatureCheck::Pending)
}

fn decide_raw_checked(
    intent: &ArtifactIntent,
    value: &[u8],
    header: Option<&str>,
    state: &PartitionState,
    check: SignatureCheck,
) -> Decision {
    let key = intent.product_id.as_bytes();
    let env = Envelope {
        key: Some(key),
        partition: home_partition(key, PARTITIONS),
        partition_count: PARTITIONS,
        payload: Ok(intent),
        value,
        signature: header.map(str::as_bytes).into(),
    };
    decide_checked(&env, state, policy(), NOW, check)
}

/// Records an accepted decision's effect in the model of the artifacts.
fn remember_effect(models: &mut BTreeMap<(String, String), Model>, d: &Decision) {
    if let Some(e) = &d.effect {
        models.insert(
            (e.key.product_id.clone(), e.key.artifact_id.clone()),
            Model {
                version: e.record.version,
                owner: e.record.owner_id.clone(),
                class: e.record.artifact_class.clone(),
                deleted: e.record.deleted,
            },
        );
    }
}

/// What the model says about a step: the reasons it expects to be among the findings (empty
/// means the gate must accept).
fn model_verdict(
    s: &Step,
    i: &ArtifactIntent,
    current: Option<&Model>,
    seen: &HashSet<(String, String)>,
) -> Vec<ReasonCode> {
    let mut why = Vec::new();
    let p = &policy().products[&i.product_id];
    if !s.sig.valid() {
        why.push(match s.sig {
            Sig::Missing => ReasonCode::SignatureMissing,
            Sig::RevokedKey if i.integration_id == "ai_assistant-backend" => ReasonCode::KeyRevoked,
            Sig::RevokedKey => ReasonCode::UnknownKey,
            _ => ReasonCode::SignatureInvalid,
        });
    }
    if seen.contains(&(i.product_id.clone(), i.intent_id.clone())) {
        why.push(ReasonCode::ReplayedIntent);
    }
    let class = current.map_or(i.artifact_class.as_str(), |c| c.class.as_str());
    if !p.classes.contains(&i.artifact_class) || class != i.artifact_class {
        why.push(ReasonCode::ClassNotAllowed);
    }
    if !policy().classes[class].operations.contains(&i.operation) {
        why.push(ReasonCode::OperationNotAllowed);
    }
    match (i.operation, current) {
        (Operation::Create, Some(_)) => why.push(ReasonCode::ArtifactExists),
        (Operation::Create, None) if i.expected_version.is_some() => {
            why.push(ReasonCode::InvalidField)
        }
        (Operation::Create, None) => {}
        (_, None) => why.push(ReasonCode::ArtifactNotFound),
        (_, Some(c)) if c.deleted => why.push(ReasonCode::ArtifactNotFound),
        (_, Some(c)) => {
            match i.expected_version {
                None => why.push(ReasonCode::ExpectedVersionMissing),
                Some(v) if v != c.version => why.push(ReasonCode::VersionConflict),
                Some(_) => {}
            }
            if c.owner != i.owner_id {
                why.push(ReasonCode::OwnerMismatch);
            }
            if i.operation == Operation::Delete && c.owner != i.requester_id {
                why.push(ReasonCode::NotOwner);
            }
        }
    }
    match (i.operation, &i.content) {
        (Operation::Delete, Some(_)) => why.push(ReasonCode::ContentNotAllowed),
        (Operation::Create | Operation::Update, None) => why.push(ReasonCode::ContentMissing),
        (_, Some(c)) if c.len() as u64 > p.max_content_bytes => {
            why.push(ReasonCode::ContentTooLarge)
        }
        _ => {}
    }
    why
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Same inputs, same decision (and deciding does not depend on anything hidden).
    #[test]
    fn decisions_are_deterministic(steps in prop::collection::vec(step(), 1..12)) {
        let mut state = PartitionState::default();
        let mut models = BTreeMap::new();
        let mut ids = Vec::new();
        for (n, s) in steps.iter().enumerate() {
            let (i, value, header) = materialise(s, n, &models, &ids);
            let a = decide_raw(&i, &value, header.as_deref(), &state);
            let b = decide_raw(&i, &value, header.as_deref(), &state.clone());
            prop_assert_eq!(&a, &b);
            remember_effect(&mut models, &a);
            ids.push(i.intent_id.clone());
            state.record(&a, 1000);
        }
    }

    /// Signatures verified ahead, as one batch (`verify_all`, what the gate's loop does for a
    /// poll batch), give every decision of a sequence exactly as verifying in the rule does.
    #[test]
    fn signatures_verified_ahead_in_a_batch_decide_the_same(steps in prop::collection::vec(step(), 1..24)) {
        let mut state = PartitionState::default();
        let mut models = BTreeMap::new();
        let mut ids = Vec::new();
        let mut records = Vec::new();
        for (n, s) in steps.iter().enumerate() {
            let (i, value, header) = materialise(s, n, &models, &ids);
            // Materialise against the sequence as the rule decides it.
            let d = decide_raw(&i, &value, header.as_deref(), &state);
            remember_effect(&mut models, &d);
            ids.push(i.intent_id.clone());
            state.record(&d, 1000);
            records.push((i, value, header, d));
        }
        let pending: Vec<(usize, (&crate::core::signature::VerifyKey, Vec<u8>))> = records
            .iter()
            .enumerate()
            .filter_map(|(n, (_, _, h, _))| Some((n, key_to_verify(policy(), h.as_deref()?.as_bytes())?)))
            .collect();
        let items: Vec<_> = pending
            .iter()
            .map(|(n, (k, sig))| (*k, records[*n].1.as_slice(), sig.as_slice()))
            .collect();
        let mut checks = vec![SignatureCheck::Pending; records.len()];
        for ((n, _), valid) in pending.iter().zip(verify_all(&items)) {
            checks[*n] = SignatureCheck::Verified(valid);
        }
        let mut state = PartitionState::default();
        for ((i, value, header, ruled), check) in records.iter().zip(checks) {
            let ahead = decide_raw_checked(i, value, header.as_deref(), &state, check);
            prop_assert_eq!(&ahead, ruled);
            state.record(&ahead, 1000);
        }
    }

    /// The gate agrees with the model over random sequences; the safety properties hold.
    #[test]
    fn sequences_respect_the_model(steps in prop::collection::vec(step(), 1..40)) {
        let mut state = PartitionState::default();
        let mut models: BTreeMap<(String, String), Model> = BTreeMap::new();
        let mut accepted_versions: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        for (n, s) in steps.iter().enumerate() {
            let (i, value, header) = materialise(s, n, &models, &ids);
            let key = (i.product_id.clone(), i.artifact_id.clone());
            let current = models.get(&key).cloned();
            let d = decide_raw(&i, &value, header.as_deref(), &state);
            let expected = model_verdict(s, &i, current.as_ref(), &seen);
            let reasons = d.reasons();
            if d.outcome == Outcome::Accepted {
                // Safety: none of the forbidden shapes is ever accepted.
                prop_assert!(s.sig.valid(), "accepted with signature {:?}", s.sig);
                let class = current.as_ref().map_or(i.artifact_class.as_str(), |c| c.class.as_str());
                prop_assert!(
                    !(matches!(class, "model_checkpoint" | "audit_entry") && i.operation != Operation::Create),
                    "accepted {:?} on immutable {class}", i.operation
                );
                if i.operation == Operation::Delete {
                    prop_assert_eq!(Some(&i.requester_id), current.as_ref().map(|c| &c.owner));
                }
                if i.operation != Operation::Create {
                    prop_assert_eq!(i.expected_version, current.as_ref().map(|c| c.version));
                }
                prop_assert!(i.content_len() <= policy().products[&i.product_id].max_content_bytes);
                prop_assert!(expected.is_empty(), "model expected {:?}, gate accepted", expected);
                let version = d.version.unwrap_or(-1);
                prop_assert_eq!(version, current.as_ref().map_or(1, |c| c.version + 1));
                accepted_versions.entry(key.clone()).or_default().push(version);
                let e = d.effect.as_ref().expect("accepted decisions carry an effect");
                models.insert(key, Model {
                    version,
                    owner: e.record.owner_id.clone(),
                    class: e.record.artifact_class.clone(),
                    deleted: e.record.deleted,
                });
            } else {
                prop_assert!(!expected.is_empty(), "model expected accept, gate said {:?}", reasons);
                for r in &expected {
                    prop_assert!(reasons.contains(r), "expected {:?} among {:?}", r, reasons);
                }
                prop_assert!(d.effect.is_none());
            }
            if s.sig.valid() {
                seen.insert((i.product_id.clone(), i.intent_id.clone()));
            }
            ids.push(i.intent_id.clone());
            state.record(&d, 100_000);
        }
        for (key, versions) in accepted_versions {
            let want: Vec<i64> = (1..=versions.len() as i64).collect();
            prop_assert_eq!(versions, want, "versions of {:?}", key);
        }
    }
}

/// The repeat-offender window as the gate kept it before changes were recorded: a whole copy
/// of the state per decision, changed in place. [`offender_change`] must agree with it.
fn offender_model(
    before: &OffenderState,
    o: &Offenders,
    now: i64,
    counted: bool,
    events: &mut Vec<DecisionEvent>,
) -> OffenderState {
    let mut after = before.clone();
    if after.cooling_until.is_some_and(|until| until <= now) {
        after.cooling_until = None;
        events.push(DecisionEvent::CoolingOffEnded {
            integration: "i".into(),
        });
    }
    if counted && after.cooling_until.is_none() {
        after.rejections.push_back(now);
        while after
            .rejections
            .front()
            .is_some_and(|t| *t <= now - o.window_ms)
        {
            after.rejections.pop_front();
        }
        if after.rejections.len() as u32 >= o.threshold {
            after.rejections.clear();
            after.cooling_until = Some(now + o.cool_off_ms);
            events.push(DecisionEvent::CoolingOffStarted {
                integration: "i".into(),
                until: now + o.cool_off_ms,
                threshold: o.threshold,
                window_ms: o.window_ms,
            });
        }
    }
    after
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Offender changes (audit version 3) rebuild exactly the states and events the whole-state
    /// model gives, and a change is reported exactly when the state changed; time may stand
    /// still or go back, and windows may be empty of time.
    #[test]
    fn offender_changes_agree_with_the_whole_state_model(
        threshold in 0u32..6,
        window_ms in -2i64..40,
        cool_off_ms in 0i64..30,
        steps in proptest::collection::vec((-3i64..12, any::<bool>()), 0..80),
    ) {
        let mut policy = policy().clone();
        policy.offenders = Offenders { threshold, window_ms, cool_off_ms };
        let mut state = PartitionState::default();
        let mut now = NOW;
        for (dt, counted) in steps {
            now += dt;
            let before = state.offender("i").cloned().unwrap_or_default();
            let mut model_events = Vec::new();
            let want = offender_model(&before, &policy.offenders, now, counted, &mut model_events);
            let mut events = Vec::new();
            let change = offender_change(&state, &policy, "i", now, counted, &mut events);
            prop_assert_eq!(&events, &model_events);
            prop_assert_eq!(change.is_some(), want != before, "{:?} -> {:?}", before, want);
            if let Some(c) = &change {
                prop_assert_eq!(before.after(c), want.clone());
                state.apply_offender(c);
            }
            prop_assert_eq!(state.offender("i").cloned().unwrap_or_default(), want);
        }
    }
}
