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
    let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(["audit", "verify", "--json", "--group", group])
        .env("BUCKET_BROKERS", brokers())
        .env("BUCKET_TOPIC_SUFFIX", sfx)
        .env(
            "BUCKET_POLICY",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
        )
        .output()
        .unwrap();
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
    let mut gate = spawn_gate(&sfx, &group, "g1");
    let records = mixed_workload(&producer, 600, 3);
    produce_all(&producer, records).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(
        gate.terminate(Duration::from_secs(30)),
        "gate exits 0 on SIGTERM"
    );

    let (ok, report) = verify(&sfx, &group);
    assert!(ok, "clean log must verify: {report}");
    let checkpoints: u64 = report["partitions"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["checkpoints"].as_u64().unwrap())
        .sum();
    assert!(
        checkpoints >= 2,
        "600 intents at 200 links per checkpoint: {report}"
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
