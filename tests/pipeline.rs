//! End-to-end exactly-once tests of the walking skeleton against the real local stack:
//! produce → gate (transactions) → accepted/rejected/audit → sink → PostgreSQL.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 3;

async fn produce_all(
    producer: &IntentProducer,
    records: Vec<RawRecord>,
) -> HashMap<(i32, i64), Option<Vec<u8>>> {
    let mut produced = HashMap::new();
    for (key, value) in records {
        let d = producer
            .send_raw(key.as_deref(), value.as_deref(), &[])
            .await
            .unwrap();
        produced.insert((d.partition, d.offset), value);
    }
    produced
}

async fn pg_versions(url: &str) -> std::collections::BTreeSet<(String, String, i64)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT product_id, artifact_id, version FROM artifact_versions",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_mixed_intents_have_exactly_one_outcome_and_storage_matches() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let db = fresh_database(&sfx).await;
    let group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &group, "g1");
    let _sink = spawn(
        &format!("sink{sfx}"),
        &["sink", "--migrate", "--group", &format!("sink{sfx}")],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
        ],
    );
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = mixed_workload(&producer, 1000, 42);
    let produced = produce_all(&producer, records).await;
    assert_eq!(produced.len(), 1000);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.accepted + checked.rejected, 1000);
    assert_eq!(checked.audit, 1000);
    assert!(
        checked.accepted > 100,
        "workload should accept plenty: {checked:?}"
    );
    assert!(checked.rejected > 100, "workload should reject plenty");
    let want = checked.versions.clone();
    let mut stored = Default::default();
    for _ in 0..240 {
        stored = pg_versions(&db).await;
        if stored.len() >= want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        stored, want,
        "PostgreSQL rows differ from the accepted topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_gate_mid_stream_loses_and_duplicates_nothing() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = mixed_workload(&producer, 4000, 7);
    let (first, second) = records.split_at(2000);
    let mut produced = produce_all(&producer, first.to_vec()).await;
    let mut gate = spawn_gate(&sfx, &group, "g1");
    // Kill it once some, but not all, of the first half is committed.
    wait_until(Duration::from_secs(60), "some decisions committed", || {
        committed(&group, &topics.intents, PARTITIONS)
            .values()
            .sum::<i64>()
            > 200
    });
    let more = produce_all(&producer, second[..1000].to_vec()).await;
    produced.extend(more);
    let done_before_kill: i64 = committed(&group, &topics.intents, PARTITIONS)
        .values()
        .sum();
    gate.kill9();
    assert!(
        done_before_kill < 3000,
        "gate finished before the kill; nothing was tested"
    );
    produced.extend(produce_all(&producer, second[1000..].to_vec()).await);
    // Same instance id: its transactional id fences the dead instance's open transaction.
    let _gate = spawn_gate(&sfx, &group, "g1");
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.audit, 4000);
    assert_eq!(checked.accepted + checked.rejected, 4000);
}
