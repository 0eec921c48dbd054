//! `bucket audit verify` against a real log: a clean run passes with signed checkpoints and
//! complete decisions; a record slipped into the audit topic behind the gate's back is found at
//! its exact offset.

mod common;

use std::process::Command;
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 2;

fn verify(sfx: &str, group: &str) -> (bool, serde_json::Value) {
    let out = run_bucket(sfx, &["audit", "verify", "--json", "--group", group]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_a_clean_log_and_locates_a_forged_record() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    // Thousands of decisions with a rebalance (a second instance joins) and a restart
    // (`kill -9` of the first, same id) in the middle.
    let mut gate = spawn_gate(&sfx, &group, "g1");
    produce_all(&producer, mixed_workload(&producer, 1000, 31)).await;
    let mut second = spawn_gate(&sfx, &group, "g2");
    produce_all(&producer, mixed_workload(&producer, 1000, 32)).await;
    gate.kill9();
    let mut gate = spawn_gate(&sfx, &group, "g1");
    produce_all(&producer, mixed_workload(&producer, 1000, 33)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(180));
    assert!(
        gate.terminate(Duration::from_secs(30)) && second.terminate(Duration::from_secs(30)),
        "gates exit 0 on SIGTERM"
    );

    let (ok, report) = verify(&sfx, &group);
    assert!(ok, "clean log must verify: {report}");
    let decisions: u64 = report["partitions"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["decisions"].as_u64().unwrap())
        .sum();
    assert_eq!(decisions, 3000, "one decision per intent: {report}");
    let checkpoints: u64 = report["partitions"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["checkpoints"].as_u64().unwrap())
        .sum();
    assert!(
        checkpoints >= 2,
        "3000 intents at 200 links per checkpoint: {report}"
    );

    // Someone with produce rights on the audit topic adds a record.
    let p: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let d = p
        .send(
            rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&topics.audit)
                .partition(1)
                .payload(&b"\x00\x00\x00\x00\x01not an audit event"[..]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let (ok, report) = verify(&sfx, &group);
    assert!(!ok, "a forged record must fail verification");
    let first = &report["problems"][0];
    assert_eq!(first["partition"], 1);
    assert_eq!(first["offset"], d.offset);
    assert_eq!(first["kind"], "FOREIGN_RECORD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_locates_modified_replayed_unknown_key_and_missing_decisions() {
    use bhiv_bucket::wire::audit::checkpoint::{CHECKPOINT, Checkpoint};
    use bhiv_bucket::wire::audit::{self, AuditEvent, GovernanceRecord};
    use bhiv_bucket::wire::framing;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    // A dynamic member: it leaves the group when it stops, so the group is empty and the
    // tampering below may commit its offsets (a static member would hold its place, and the
    // broker would refuse a commit from outside the group).
    let mut gate = spawn(
        &format!("gate{sfx}-g1"),
        &["gate", "--instance-id", "g1", "--group", &group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_STATIC_MEMBERSHIP", "false".into()),
            (
                "BUCKET_STATE_DIR",
                state_dir(&sfx, "g1").display().to_string(),
            ),
        ],
    );
    produce_all(&producer, mixed_workload(&producer, 200, 5)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));
    assert!(verify(&sfx, &group).0, "clean before tampering");

    let raw: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let put = |partition: i32, value: Vec<u8>| {
        let raw = &raw;
        let topic = topics.audit.clone();
        async move {
            raw.send(
                rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&topic)
                    .partition(partition)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .offset
        }
    };
    let audit_records = read_committed(&topics.audit);
    let p0: Vec<_> = audit_records.iter().filter(|r| r.partition == 0).collect();
    let original = p0[p0.len() / 2].value.clone().unwrap();
    let (schema_id, _) = framing::unframe(Some(&original)).unwrap();

    // 1. A modified copy of a record (content changed, hash kept).
    let mut modified = common::decode_audit(Some(&original)).unwrap();
    if let Some(d) = modified.decision.as_mut() {
        d.detail = "nothing to see here".into();
    }
    let modified_offset = put(
        0,
        framing::frame(schema_id, &audit::encode(&modified).unwrap()),
    )
    .await;
    // 2. A checkpoint correctly linked after it but signed with a key nobody trusts.
    let rogue = bhiv_bucket::core::signature::SignKey::ed25519_from_seed(&[42; 32]);
    let cp = Checkpoint::sign("rogue", &rogue, 0, modified.seq, &modified.hash);
    let checkpoint = AuditEvent {
        seq: modified.seq + 1,
        prev_hash: modified.hash.clone(),
        hash: String::new(),
        recorded_at: 1,
        gate_id: "rogue".into(),
        policy_version: modified.policy_version.clone(),
        decision: None,
        governance: Some(GovernanceRecord {
            event_type: CHECKPOINT.into(),
            detail: serde_json::to_string(&cp).unwrap(),
        }),
    }
    .seal()
    .unwrap();
    let checkpoint_offset = put(
        0,
        framing::frame(schema_id, &audit::encode(&checkpoint).unwrap()),
    )
    .await;
    // 3. A record of partition 0 replayed into partition 1.
    let replayed_offset = put(1, original.clone()).await;
    // 4. An intent whose offset the group commits past without any decision.
    let skipped = producer
        .send_raw(Some(b"gurukul"), Some(b"never decided"), &[])
        .await
        .unwrap();
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(
        &topics.intents,
        skipped.partition,
        rdkafka::Offset::Offset(skipped.offset + 1),
    )
    .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();

    let (ok, report) = verify(&sfx, &group);
    assert!(!ok);
    let problems = report["problems"].as_array().unwrap();
    let found = |partition: i32, offset: i64, kind: &str| {
        problems
            .iter()
            .any(|p| p["partition"] == partition && p["offset"] == offset && p["kind"] == kind)
    };
    assert!(found(0, modified_offset, "HASH_MISMATCH"), "{report}");
    assert!(
        found(0, checkpoint_offset, "CHECKPOINT_UNKNOWN_KEY"),
        "{report}"
    );
    assert!(found(1, replayed_offset, "WRONG_PARTITION"), "{report}");
    assert!(
        found(skipped.partition, skipped.offset, "MISSING_DECISION"),
        "{report}"
    );
}

/// Governance events from operator tools reach the audit chain through `bucket.control`: each
/// folded exactly once into chain 0 even across a `kill -9` of the gate, a garbage control
/// record is folded as CONTROL_REJECTED without stalling, takeovers are GATE_STARTED events,
/// and `bucket audit verify` proves no control record was skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_events_are_folded_into_the_chain_exactly_once() {
    use common::decode_audit as decode_framed;
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let tool = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
            .args(args)
            .env("BUCKET_BROKERS", brokers())
            .env("BUCKET_REGISTRY_URL", registry_url())
            .env("BUCKET_TOPIC_SUFFIX", &sfx)
            .env("BUCKET_REDIS_URL", "none")
            .env(
                "BUCKET_POLICY",
                concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Published before any gate runs: folded once one owns chain 0.
    tool(&["schemas", "apply"]);
    let mut gate = spawn_gate(&sfx, &group, "g1");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    produce_all(&producer, mixed_workload(&producer, 200, 2)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    tool(&["state", "rebuild"]);
    let junk: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    junk.send(
        rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&topics.control)
            .payload(&b"{\"event_type\":\"POLICY_LOADED\"}"[..]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let folded = |types: &[&str]| -> Vec<(String, i64)> {
        read_committed(&topics.audit)
            .iter()
            .filter_map(|r| decode_framed(r.value.as_deref()).ok())
            .filter_map(|e| e.governance)
            .filter(|g| types.contains(&g.event_type.as_str()))
            .map(|g| {
                let d: serde_json::Value = serde_json::from_str(&g.detail).unwrap();
                (g.event_type, d["control_offset"].as_i64().unwrap_or(-1))
            })
            .collect()
    };
    let expected = ["SCHEMAS_APPLIED", "STATE_REBUILT", "CONTROL_REJECTED"];
    wait_until(
        Duration::from_secs(60),
        "three control events folded",
        || folded(&expected).len() == 3,
    );
    // kill -9 and a new instance: it restores chain 0 and must not fold anything again.
    gate.kill9();
    let mut gate = spawn_gate(&sfx, &group, "g1");
    produce_all(&producer, mixed_workload(&producer, 100, 3)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    tool(&["schemas", "apply"]);
    wait_until(
        Duration::from_secs(120),
        "fourth control event folded",
        || folded(&expected).len() == 4,
    );
    assert!(gate.terminate(Duration::from_secs(30)));
    let got = folded(&expected);
    let offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    assert_eq!(
        offsets,
        vec![0, 1, 2, 3],
        "each control record once, in order: {got:?}"
    );
    assert_eq!(
        got[2].0, "CONTROL_REJECTED",
        "gate-only event types cannot be injected"
    );
    let started = read_committed(&topics.audit)
        .iter()
        .filter_map(|r| decode_framed(r.value.as_deref()).ok())
        .filter(|e| {
            e.governance
                .as_ref()
                .is_some_and(|g| g.event_type == "GATE_STARTED")
        })
        .count();
    assert!(
        started >= 2 * PARTITIONS as usize,
        "each takeover is recorded: {started}"
    );
    let (ok, report) = verify(&sfx, &group);
    assert!(ok, "{report}");
    assert_eq!(report["control"]["folded"], 4, "{report}");
    assert_eq!(report["control"]["pending"], 0, "{report}");
}

/// A partition that goes quiet gets its last decisions checkpointed within the checkpoint
/// interval, in a transaction of its own (not at its next intent): the newest link of every
/// chain is then a CHECKPOINT whose transparency-log note covers every link before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_is_checkpointed_within_the_interval() {
    use bhiv_bucket::wire::audit::checkpoint::{CHECKPOINT, Checkpoint};
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
        .await
        .unwrap();
    let mut gate = spawn(
        &format!("gate{sfx}-quiet"),
        &["gate", "--gate-id", "quiet", "--group", &group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_CHECKPOINT_INTERVAL_S", "1".into()),
            ("BUCKET_CHECKPOINT_EVERY", "100000".into()),
            (
                "BUCKET_STATE_DIR",
                state_dir(&sfx, "quiet").display().to_string(),
            ),
        ],
    );
    produce_all(&producer, mixed_workload(&producer, 60, 41)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    // Quiet now, with the gate still running: one interval (and a commit) later the chains end
    // with a checkpoint.
    let mut last = std::collections::BTreeMap::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last.clear();
        for r in read_committed(&topics.audit) {
            let e = decode_audit(r.value.as_deref()).unwrap();
            last.insert(r.partition, e);
        }
        let all_checkpointed = last.values().all(|e| {
            e.governance
                .as_ref()
                .is_some_and(|g| g.event_type == CHECKPOINT)
        });
        if !last.is_empty() && all_checkpointed {
            break;
        }
    }
    assert!(gate.terminate(Duration::from_secs(30)));
    assert!(!last.is_empty(), "the chains have links");
    for (p, e) in &last {
        let g = e.governance.as_ref().expect("a governance link");
        assert_eq!(
            g.event_type, CHECKPOINT,
            "partition {p} ends with {}",
            g.event_type
        );
        let cp: Checkpoint = serde_json::from_str(&g.detail).unwrap();
        assert_eq!(
            cp.signed_seq,
            e.seq - 1,
            "partition {p}: covers every link before it"
        );
        let note = cp.note.expect("a transparency-log note");
        let size = note.lines().nth(1).and_then(|l| l.parse::<i64>().ok());
        assert_eq!(
            size,
            Some(e.seq),
            "partition {p}: the note's tree is links 0..=signed_seq"
        );
    }
    let (ok, report) = verify(&sfx, &group);
    assert!(ok, "{report}");
}
