//! Bad input against the real stack: each kind is rejected with its own reason code, its
//! original bytes kept, and the partition keeps flowing. Registry trouble is never a rejection.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bhiv_bucket::core::{ArtifactIntent, Operation};
use bhiv_bucket::produce::{IntentProducer, now_ms};
use bhiv_bucket::wire::framing;
use bhiv_bucket::wire::schemas::INTENT_AVSC;
use common::*;

const PARTITIONS: i32 = 1;

fn intent(artifact: &str) -> ArtifactIntent {
    ArtifactIntent {
        intent_id: uuid::Uuid::new_v4().to_string(),
        product_id: "gurukul".into(),
        integration_id: "gurukul-backend".into(),
        owner_id: "ravi".into(),
        requester_id: "ravi".into(),
        artifact_id: artifact.into(),
        artifact_class: "document".into(),
        operation: Operation::Create,
        expected_version: None,
        content: Some(b"lesson".to_vec()),
        content_type: "text/plain".into(),
        metadata: "{}".into(),
        purpose: "test".into(),
        client_time: now_ms(),
    }
}

/// A schema registered "behind the project's back": same record, one extra field.
const ROGUE_FIELD: &str = "{\"name\": \"sneaky\", \"type\": \"string\", \"default\": \"\"},";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_own_reason_and_keeps_its_bytes() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let rogue_text =
        INTENT_AVSC.replacen("\"fields\": [", &format!("\"fields\": [{ROGUE_FIELD}"), 1);
    let rogue_id = registry
        .register_as(&format!("rogue{sfx}-value"), &rogue_text)
        .await
        .unwrap();
    assert_ne!(rogue_id, producer.schema_id());
    let good_record = signed(&producer, &intent("good-1"));
    let good = good_record.value.clone().unwrap();
    let body = &good[framing::HEADER_LEN..];
    let key = Some(b"gurukul".to_vec());
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        (
            "MALFORMED_RECORD",
            Some(b"\xff garbage that is not avro".to_vec()),
        ),
        ("MALFORMED_RECORD", None),
        ("MALFORMED_AVRO", Some(good[..good.len() - 3].to_vec())),
        (
            "UNKNOWN_SCHEMA_ID",
            Some(framing::frame(2_000_000_000, body)),
        ),
        ("SCHEMA_NOT_APPROVED", Some(framing::frame(rogue_id, body))),
    ];
    let mut produced = HashMap::new();
    let mut expected = HashMap::new();
    for (reason, value) in &cases {
        let d = producer
            .send_raw(key.as_deref(), value.as_deref(), &[("trace", b"abc")])
            .await
            .unwrap();
        produced.insert((d.partition, d.offset), value.clone());
        expected.insert((d.partition, d.offset), *reason);
    }
    // A good intent after the bad ones: the partition must keep flowing.
    produced.extend(produce_all(&producer, vec![good_record]).await);
    let _gate = spawn_gate(&sfx, &group, "g1");
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(90));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(
        checked.accepted, 1,
        "the good intent after the bad ones is accepted"
    );
    for (src, reason) in expected {
        assert_eq!(
            checked.reasons.get(&src).map(String::as_str),
            Some(reason),
            "at {src:?}"
        );
    }
    let rejected = read_committed(&topics.rejected);
    assert!(
        rejected
            .iter()
            .all(|r| r.headers.get("trace").map(Vec::as_slice) == Some(&b"abc"[..])),
        "producer headers are kept on rejected records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_outage_pauses_decisions_and_never_rejects() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let real = registry_url();
    let target = real
        .split_once("://")
        .and_then(|(_, r)| r.split('/').next())
        .unwrap()
        .to_string();
    let proxy = FlakyProxy::start(target).await;
    let gate = spawn(
        &format!("gate{sfx}-flaky"),
        &["gate", "--gate-id", "g1", "--group", &group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_REGISTRY_URL", proxy.url()),
        ],
    );
    let mut produced = produce_all(&producer, vec![signed(&producer, &intent("before"))]).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(90));

    proxy.down();
    // A schema id the gate has never seen forces a registry lookup during the outage.
    let rogue_text =
        INTENT_AVSC.replacen("\"fields\": [", &format!("\"fields\": [{ROGUE_FIELD}"), 1);
    let rogue_id = registry
        .register_as(&format!("rogue{sfx}-value"), &rogue_text)
        .await
        .unwrap();
    let good_record = signed(&producer, &intent("after"));
    let good = good_record.value.clone().unwrap();
    let rogue = framing::frame(rogue_id, &good[framing::HEADER_LEN..]);
    let r = producer
        .send_raw(Some(b"gurukul"), Some(&rogue), &[])
        .await
        .unwrap();
    produced.insert((r.partition, r.offset), Some(rogue));
    produced.extend(produce_all(&producer, vec![good_record]).await);

    tokio::time::sleep(Duration::from_secs(6)).await;
    let c = committed(&group, &topics.intents, PARTITIONS);
    assert_eq!(
        c.get(&r.partition).copied(),
        Some(r.offset),
        "the undecided record's offset must not be committed during the outage"
    );
    assert_eq!(
        read_committed(&topics.rejected).len(),
        0,
        "an outage is not a rejection"
    );
    let decisions = read_committed(&topics.audit)
        .iter()
        .filter(|r| {
            common::decode_audit(r.value.as_deref())
                .unwrap()
                .decision
                .is_some()
        })
        .count();
    assert_eq!(decisions, 1, "only the intent before the outage is decided");

    proxy.up();
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(90));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.accepted, 2);
    assert_eq!(
        checked
            .reasons
            .get(&(r.partition, r.offset))
            .map(String::as_str),
        Some("SCHEMA_NOT_APPROVED")
    );
    drop(gate);
}
