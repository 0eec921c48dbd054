//! Graceful shutdown against the real stack: SIGTERM mid-stream makes the gate commit its open
//! transaction, write GATE_STOPPED, leave the group and exit 0 within 30 s; a second gate then
//! finishes the stream and every intent is decided exactly once. The sink exits 0 too.

mod common;

use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_stops_the_gate_cleanly_and_loses_nothing() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let mut gate = spawn_gate(&sfx, &group, "g1");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = mixed_workload(&producer, 3000, 7);
    let produced = produce_all(&producer, records).await;
    assert_eq!(produced.len(), 3000);
    // Let it decide part of the stream, then stop it while it is busy.
    wait_until(
        Duration::from_secs(120),
        "first decisions committed",
        || !committed(&group, &topics.intents, PARTITIONS).is_empty(),
    );
    let started = std::time::Instant::now();
    assert!(
        gate.terminate(Duration::from_secs(30)),
        "gate did not exit 0 within 30 s of SIGTERM"
    );
    eprintln!("gate stopped in {:?}", started.elapsed());
    let events = governance_events(&topics.audit);
    assert!(
        events.iter().any(|(_, t)| t == "GATE_STOPPED"),
        "no GATE_STOPPED in the audit log: {events:?}"
    );
    // A second instance of the group finishes: nothing lost, nothing decided twice.
    let _gate2 = spawn_gate(&sfx, &group, "g2");
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(180));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.audit, 3000);
    assert_eq!(checked.accepted + checked.rejected, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_sink_with_exit_code_zero() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let db = fresh_database(&sfx).await;
    let group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &group, "g1");
    let mut sink = spawn(
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
    let records = mixed_workload(&producer, 500, 11);
    produce_all(&producer, records).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    // Stop it while it may still be writing; it must flush or leave the batch uncommitted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sink.terminate(Duration::from_secs(30)),
        "sink did not exit 0 within 30 s of SIGTERM"
    );
    let sink_group = format!("sink{sfx}");
    let ends = end_offsets(&topics.accepted, PARTITIONS);
    let done = committed(&sink_group, &topics.accepted, PARTITIONS);
    // Whatever it committed is at most the end (offsets only after durable writes).
    for (p, c) in &done {
        assert!(
            *c <= ends[p],
            "partition {p}: committed {c} past end {}",
            ends[p]
        );
    }
    // A restarted sink stores every accepted version exactly once.
    let want = read_committed(&topics.accepted).len() as i64;
    let _sink2 = spawn(
        &format!("sink{sfx}-2"),
        &["sink", "--group", &sink_group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
        ],
    );
    let (client, conn) = bhiv_bucket::sink::store::pg::tls::connect(&db)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut stored = -1;
    for _ in 0..240 {
        stored = client
            .query_one("SELECT count(*) FROM artifact_versions", &[])
            .await
            .unwrap()
            .get::<_, i64>(0);
        if stored >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stored, want, "stored versions vs accepted records");
}
