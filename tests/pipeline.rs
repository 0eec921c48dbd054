//! End-to-end exactly-once tests of the walking skeleton against the real local stack:
//! produce → gate (transactions) → accepted/rejected/audit → sink → PostgreSQL.

mod common;

use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 3;

async fn pg_versions(url: &str) -> std::collections::BTreeSet<(String, String, i64)> {
    let (client, conn) = bhiv_bucket::sink::store::pg::tls::connect(url)
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
    const BEFORE: usize = 20_000;
    const AFTER: usize = 2_000;
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = mixed_workload(&producer, BEFORE + AFTER, 7);
    let (first, second) = records.split_at(BEFORE);
    let mut produced = produce_all(&producer, first.to_vec()).await;
    let mut gate = spawn_gate(&sfx, &group, "g1");
    // Kill it right after its first committed transaction, in the middle of the backlog.
    let mut done_before_kill = 0;
    let start = std::time::Instant::now();
    while done_before_kill == 0 && start.elapsed() < Duration::from_secs(60) {
        done_before_kill = committed(&group, &topics.intents, PARTITIONS)
            .values()
            .sum::<i64>();
        std::thread::sleep(Duration::from_millis(20));
    }
    gate.kill9();
    assert!(done_before_kill > 0, "the gate never committed");
    assert!(
        done_before_kill < BEFORE as i64,
        "gate finished the backlog before the kill; nothing was tested"
    );
    // Producers keep going while the gate is down.
    produced.extend(produce_all(&producer, second.to_vec()).await);
    // Same instance id: its transactional id fences the dead instance's open transaction.
    let _gate = spawn_gate(&sfx, &group, "g1");
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(180));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.audit, BEFORE + AFTER);
    assert_eq!(checked.accepted + checked.rejected, BEFORE + AFTER);
}
