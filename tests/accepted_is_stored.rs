//! Accepted means stored, for both storage backends. Random intent sequences go through the
//! gate's own pure pipeline (`decide`, the partition state, `OutputWriter::outputs`); every accepted
//! record is decoded as the sink decodes it and written to PostgreSQL (real server, a fresh
//! database per case) and to the filesystem store. Each backend must store every accepted
//! version (none quarantined) and read it back unchanged.
//!
//! The same pipeline also checks that live equals rebuilt: the partition state after deciding a
//! sequence live equals the state a restore folds from the audit records those decisions wrote
//! (`Task::fold`), rate and repeat-offender state included, under a policy tight enough to
//! rate-limit and cool off.
//!
//! The generator aims at the places where storage and the gate's rules could disagree: the same
//! intent id in several products, an intent id reused after the replay window, the same artifact
//! id in several products, every operation, the longest ids the gate accepts (256 bytes of
//! multi-byte characters), odd content types, purposes and metadata (NUL included, which the
//! gate must refuse because PostgreSQL text cannot hold it).

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use bhiv_bucket::core::partitioner::home_partition;
use bhiv_bucket::core::{
    ArtifactIntent, Decision, Envelope, Operation, Outcome, PartitionState, Policy, decide,
};
use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::gate::consumed::Consumed;
use bhiv_bucket::gate::records::OutputWriter;
use bhiv_bucket::gate::task::{ChainHead, Task};
use bhiv_bucket::kafka::registry::OutputSchemaIds;
use bhiv_bucket::policy::file::FileSecrets;
use bhiv_bucket::produce::Signer;
use bhiv_bucket::sink::{Accepted, FsStore, Store};
use bhiv_bucket::wire::audit::AuditEvent;
use bhiv_bucket::wire::{accepted, framing, intent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const PARTITIONS: i32 = 6;
const START_MS: i64 = 1_700_000_000_000;
/// A small replay window, so generated sequences reuse ids after it.
const REPLAY_WINDOW: usize = 4;
const PRODUCTS: [(&str, &str); 3] = [
    ("ai_assistant", "ai_assistant-backend"),
    ("gurukul", "gurukul-backend"),
    ("workflow", "workflow-backend"),
];
const INTENT_IDS: [&str; 5] = [
    "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f",
    "0b7e7c3e-9d0e-4a51-8f43-54a4c3c1b2a1",
    "5d0c4f57-1111-4e2e-a5e5-0c9d8e7f6a5b",
    "d2b1a0f9-2222-4c3d-9e8f-7a6b5c4d3e2f",
    "9a8b7c6d-3333-4e5f-8a9b-0c1d2e3f4a5b",
];
const CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "",
    "application/vnd.example+json; charset=utf-8",
    "テキスト/プレーン",
    "text/plain\0",
];
const PURPOSES: [&str; 4] = ["why", "line one\nline two", "🙂 emoji", "nul\0inside"];
const METADATA: [&str; 4] = [
    "{}",
    "",
    "{\"k\":\"\\u0000\"}",
    "{\"ü\":[1,2,{\"x\":null}]}",
];

/// Artifact ids: short, path-like, and the longest the gate accepts (256 bytes).
fn artifact_ids() -> Vec<String> {
    vec![
        "doc-1".into(),
        "../../etc/passwd".into(),
        "é".repeat(128),
        format!("{}ä", "ü".repeat(127)),
    ]
}

/// One generated intent.
#[derive(Debug, Clone)]
struct Step {
    product: usize,
    intent: usize,
    artifact: usize,
    op: Operation,
    /// Added to the artifact's current version for `expected_version`; None leaves it unset.
    expected: Option<i64>,
    content: Option<Vec<u8>>,
    content_type: usize,
    purpose: usize,
    metadata: usize,
}

fn step() -> impl Strategy<Value = Step> {
    (
        (0..PRODUCTS.len(), 0..INTENT_IDS.len(), 0usize..4),
        prop_oneof![
            3 => Just(Operation::Create),
            3 => Just(Operation::Update),
            2 => Just(Operation::Delete)
        ],
        prop_oneof![8 => Just(Some(0i64)), 1 => Just(None), 1 => (-1i64..=1).prop_map(Some)],
        prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..48)),
        (
            prop_oneof![6 => Just(0usize), 1 => 1usize..CONTENT_TYPES.len()],
            prop_oneof![6 => Just(0usize), 1 => 1usize..PURPOSES.len()],
            0..METADATA.len(),
        ),
    )
        .prop_map(
            |((product, intent, artifact), op, expected, content, (ct, purpose, metadata))| {
                let content = match op {
                    Operation::Delete => None,
                    _ => content,
                };
                Step {
                    product,
                    intent,
                    artifact,
                    op,
                    expected,
                    content,
                    content_type: ct,
                    purpose,
                    metadata,
                }
            },
        )
}

/// The shipped policy with `replacements` (each must apply) made to its text.
fn policy_with(replacements: &[(&str, &str)]) -> Policy {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut text = std::fs::read_to_string(deploy.join("policy.toml")).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "policy has no {from:?}");
        text = text.replace(from, to);
    }
    Policy::parse_with(&text, &FileSecrets::new(&deploy)).unwrap()
}

fn policy() -> Policy {
    policy_with(&[(
        "replay_window = 200000",
        &format!("replay_window = {REPLAY_WINDOW}"),
    )])
}

/// What the generated sequences exercised, summed over all cases (so the test can tell it
/// really reached the cases it is about).
#[derive(Debug, Default)]
struct Coverage {
    accepted: usize,
    /// Accepted with an intent id another product already had accepted.
    shared_id_across_products: usize,
    /// Accepted with an intent id its own product had decided before (outside the window).
    reused_after_window: usize,
    /// Accepted with an id of 256 bytes.
    longest_ids: usize,
    deletes: usize,
    /// Refused for text storage cannot hold.
    nul_refused: usize,
}

/// What deciding a sequence live left behind, per partition: the state and the audit links.
type Live = HashMap<i32, (PartitionState, Vec<AuditEvent>)>;

/// Decides `steps` as the gate does and returns the accepted records as the sink reads them.
fn accepted_outputs(
    steps: &[Step],
    policy: &Policy,
    signer: &mut Signer,
    coverage: &mut Coverage,
) -> Vec<Accepted> {
    decide_live(steps, policy, signer, coverage, 10).0
}

/// Decides `steps` as the gate does, `step_ms` apart; returns the accepted records as the sink
/// reads them and what the partitions hold.
fn decide_live(
    steps: &[Step],
    policy: &Policy,
    signer: &mut Signer,
    coverage: &mut Coverage,
    step_ms: i64,
) -> (Vec<Accepted>, Live) {
    let ids = artifact_ids();
    let topics = TopicNames::with_suffix("");
    // Links alternate between audit versions 2 (the whole offender state) and 3 (the change),
    // as a chain written across a rolling upgrade does; registry ids 4 and 3.
    let writer_of = |audit_version: u8| OutputWriter {
        topics: &topics,
        ids: OutputSchemaIds {
            accepted: 2,
            audit: if audit_version == 2 { 4 } else { 3 },
        },
        gate_id: "property",
        audit_version,
    };
    let writers = [writer_of(2), writer_of(3)];
    let mut tasks: HashMap<i32, (PartitionState, ChainHead, i64)> = HashMap::new();
    let mut links: HashMap<i32, Vec<AuditEvent>> = HashMap::new();
    let mut versions: HashMap<(usize, usize), i64> = HashMap::new();
    let mut accepted_ids: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut decided_ids: HashMap<(usize, &str), usize> = HashMap::new();
    let mut out = Vec::new();
    for (n, s) in steps.iter().enumerate() {
        let (product, integration) = PRODUCTS[s.product];
        let now = START_MS + n as i64 * step_ms;
        let current = versions.get(&(s.product, s.artifact)).copied().unwrap_or(0);
        let i = ArtifactIntent {
            intent_id: INTENT_IDS[s.intent].into(),
            product_id: product.into(),
            integration_id: integration.into(),
            owner_id: "alice".into(),
            requester_id: "alice".into(),
            artifact_id: ids[s.artifact].clone(),
            artifact_class: "document".into(),
            operation: s.op,
            expected_version: match s.op {
                Operation::Create => None,
                _ => s.expected.map(|d| current + d),
            },
            content: s.content.clone(),
            content_type: CONTENT_TYPES[s.content_type].into(),
            metadata: METADATA[s.metadata].into(),
            purpose: PURPOSES[s.purpose].into(),
            client_time: now,
        };
        let value = framing::frame(1, &intent::encode(&i).unwrap());
        let signature = signer.header(integration, &value).unwrap();
        let partition = home_partition(product.as_bytes(), PARTITIONS);
        let (state, chain, offset) = tasks.entry(partition).or_default();
        let envelope = Envelope {
            key: Some(product.as_bytes()),
            partition,
            partition_count: PARTITIONS,
            payload: Ok(&i),
            value: &value,
            signature: signature.as_deref().map(str::as_bytes).into(),
        };
        let decision: Decision = decide(&envelope, state, policy, now);
        let consumed = Consumed {
            partition,
            offset: *offset,
            key: Some(product.as_bytes().to_vec()),
            value: Some(value.clone()),
            timestamp: Some(now),
            headers: Vec::new(),
        };
        let writer = &writers[n % 2];
        let offender_before =
            (decision.offender.as_ref()).and_then(|change| state.offender(&change.integration));
        let outputs = writer
            .outputs(&consumed, Some(&i), &decision, offender_before, chain)
            .unwrap();
        state.record(&decision, policy.limits.replay_window);
        chain.next_seq = outputs.audit.seq + 1;
        chain.hash = outputs.audit.hash.clone();
        *offset += 1;
        let partition_links = links.entry(partition).or_default();
        // What restore reads: the stored bytes, decoded with their writer's schema.
        let stored = outputs
            .records
            .iter()
            .find(|r| r.topic == topics.audit)
            .and_then(|r| r.value.as_deref());
        let link = bhiv_bucket::wire::audit::AuditReader::with_ids([(3, 3), (4, 2)])
            .read(stored)
            .unwrap();
        assert!(link.hash_ok());
        assert_eq!(link.event, outputs.audit);
        partition_links.push(link.event);
        // Governance events the decision raised (cooling-off start, quota warning) are links
        // of the same chain, as the session writes them.
        for e in &decision.events {
            let (_, event) = writer
                .governance(
                    partition,
                    chain,
                    e.event_type(),
                    &e.detail(),
                    &policy.version,
                    now,
                )
                .unwrap();
            chain.next_seq = event.seq + 1;
            chain.hash = event.hash.clone();
            partition_links.push(event);
        }

        let before = decided_ids.insert((s.product, INTENT_IDS[s.intent]), n);
        let has_nul = i.purpose.contains('\0') || i.content_type.contains('\0');
        if decision.outcome != Outcome::Accepted {
            coverage.nul_refused += usize::from(has_nul);
            continue;
        }
        assert!(!has_nul, "accepted text storage cannot hold: {i:?}");
        coverage.accepted += 1;
        let others = accepted_ids.entry(INTENT_IDS[s.intent]).or_default();
        if others.iter().any(|p| *p != s.product) {
            coverage.shared_id_across_products += 1;
        }
        others.push(s.product);
        if before.is_some() {
            coverage.reused_after_window += 1;
        }
        if i.artifact_id.len() == 256 {
            coverage.longest_ids += 1;
        }
        if s.op == Operation::Delete {
            coverage.deletes += 1;
        }
        let record = &outputs.records[0];
        assert_eq!(record.topic, topics.accepted_for(product));
        let artifact = accepted::decode_framed(record.value.as_deref()).unwrap();
        versions.insert((s.product, s.artifact), artifact.version);
        out.push(Accepted {
            topic: record.topic.clone(),
            partition: 0,
            offset: out.len() as i64,
            artifact,
        });
    }
    let live = tasks
        .into_iter()
        .map(|(p, (state, _, _))| (p, (state, links.remove(&p).unwrap_or_default())))
        .collect();
    (out, live)
}

/// Stores `accepted` in a fresh PostgreSQL database and checks every version reads back.
async fn stored_in_postgres(accepted: &[Accepted], case: usize) -> Result<(), TestCaseError> {
    let db = common::fresh_database(&format!("{}_{case}", common::suffix())).await;
    let mut store = Store::connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let report = store.write_batch(accepted, &[]).await.unwrap();
    prop_assert_eq!(report.versions_quarantined, 0, "{:?}", report);
    prop_assert_eq!(report.inserted, accepted.len());
    // A replay of the same records is a no-op, never a quarantine.
    let again = store.write_batch(accepted, &[]).await.unwrap();
    prop_assert_eq!(
        (again.inserted, again.replayed, again.quarantined),
        (0, accepted.len(), 0)
    );
    for a in accepted {
        let v = &a.artifact;
        let stored = store
            .get_version(&v.product_id, &v.artifact_id, v.version)
            .await
            .unwrap();
        let stored = stored.map(|s| s.artifact);
        prop_assert_eq!(stored.as_ref(), Some(v));
    }
    Ok(())
}

/// Stores `accepted` in a fresh filesystem store and checks every version reads back.
fn stored_in_files(accepted: &[Accepted]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let report = store.write_batch_blocking(accepted, &[]).unwrap();
    prop_assert_eq!(report.versions_quarantined, 0, "{:?}", report);
    prop_assert_eq!(report.inserted, accepted.len());
    let entries = store.entries().unwrap();
    prop_assert_eq!(entries.len(), accepted.len());
    let by_key: HashMap<_, _> = entries
        .iter()
        .map(|e| {
            (
                (
                    e.row.product_id.as_str(),
                    e.row.artifact_id.as_str(),
                    e.row.version,
                ),
                e,
            )
        })
        .collect();
    for a in accepted {
        let v = &a.artifact;
        let e = by_key.get(&(v.product_id.as_str(), v.artifact_id.as_str(), v.version));
        prop_assert!(
            e.is_some(),
            "missing {}/{} v{}",
            v.product_id,
            v.artifact_id,
            v.version
        );
        let e = e.unwrap();
        prop_assert_eq!(&e.row.intent_id, &v.intent_id);
        prop_assert_eq!(&e.row.content_type, &v.content_type);
        prop_assert_eq!(&e.row.purpose, &v.purpose);
        prop_assert_eq!(&e.row.metadata, &v.metadata);
        prop_assert_eq!(store.content(e).unwrap(), v.content.clone());
    }
    Ok(())
}

#[test]
fn every_accepted_version_is_stored_by_both_backends() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let policy = policy();
    let signer = RefCell::new(Signer::new(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo/keys"),
        false,
    ));
    let coverage = RefCell::new(Coverage::default());
    let cases = RefCell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(step(), 1..80), |steps| {
            let accepted = accepted_outputs(
                &steps,
                &policy,
                &mut signer.borrow_mut(),
                &mut coverage.borrow_mut(),
            );
            let case = {
                let mut c = cases.borrow_mut();
                *c += 1;
                *c
            };
            stored_in_files(&accepted)?;
            rt.block_on(stored_in_postgres(&accepted, case))
        })
        .unwrap();
    let c = coverage.into_inner();
    eprintln!("{c:?}");
    // The generator must really reach the cases this test is about.
    assert!(c.accepted > 60, "{c:?}");
    assert!(c.shared_id_across_products > 0, "{c:?}");
    assert!(c.reused_after_window > 0, "{c:?}");
    assert!(c.longest_ids > 0, "{c:?}");
    assert!(c.deletes > 0, "{c:?}");
    assert!(c.nul_refused > 0, "{c:?}");
}

#[test]
fn live_state_equals_the_state_rebuilt_from_its_audit_records() {
    // Tight enough that generated sequences are rate-limited and cool off.
    let policy = policy_with(&[
        ("replay_window = 200000", "replay_window = 4"),
        ("rate_per_sec = 5000", "rate_per_sec = 20"),
        ("burst = 10000", "burst = 3"),
        ("threshold = 1000", "threshold = 3"),
        ("cool_off_ms = 300000", "cool_off_ms = 400"),
    ]);
    // The replay window is a limit of the fold, not a fact of a decision: keep it.
    let shipped = policy_with(&[("replay_window = 200000", "replay_window = 4")]);
    let signer = RefCell::new(Signer::new(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo/keys"),
        false,
    ));
    let coverage = RefCell::new(Coverage::default());
    let counts = RefCell::new((0usize, 0usize));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(prop::collection::vec(step(), 1..120), 1i64..60),
            |(steps, step_ms)| {
                let (_, live) = decide_live(
                    &steps,
                    &policy,
                    &mut signer.borrow_mut(),
                    &mut coverage.borrow_mut(),
                    step_ms,
                );
                for (partition, (state, links)) in live {
                    let fresh = || Task {
                        last_decided_offset: -1,
                        ..Task::default()
                    };
                    // Version 2 links, folded with another policy than the one that decided
                    // them: the recorded facts alone must give the live state.
                    let mut from_facts = fresh();
                    // The same decisions as version 1 links (no facts): re-derived with the
                    // policy in force when they were decided.
                    let mut derived = fresh();
                    for link in &links {
                        if let Some(d) = &link.decision {
                            let mut c = counts.borrow_mut();
                            c.0 += d.reasons.iter().filter(|r| *r == "RATE_LIMITED").count();
                            c.1 += d.reasons.iter().filter(|r| *r == "COOLING_OFF").count();
                            prop_assert!(d.facts.is_some(), "the gate records facts");
                        }
                        from_facts.fold(link, &shipped);
                        let mut v1 = link.clone();
                        if let Some(d) = v1.decision.as_mut() {
                            d.facts = None;
                        }
                        derived.fold(&v1, &policy);
                    }
                    prop_assert_eq!(
                        &from_facts.state,
                        &state,
                        "facts: partition {} after {} links",
                        partition,
                        links.len()
                    );
                    prop_assert_eq!(
                        &derived.state,
                        &state,
                        "derived: partition {} after {} links",
                        partition,
                        links.len()
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    // The sequences really reached the rate and offender rules.
    let (rate_limited, cooled) = counts.into_inner();
    assert!(
        rate_limited > 0 && cooled > 0,
        "rate {rate_limited}, cooling {cooled}"
    );
}
