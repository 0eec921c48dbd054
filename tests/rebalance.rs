//! Incremental rebalancing: a second gate instance joining under load takes over some
//! partitions; the first instance keeps the others with their tasks and restores nothing for
//! them (no second `GATE_STARTED` of its own on a partition it kept), and nothing is lost or
//! decided twice.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

/// Two partitions, both with traffic (asserted): the joining instance necessarily takes one
/// that has state, and the first keeps the other.
const PARTITIONS: i32 = 2;

/// (gate id, partition) of every GATE_STARTED link, in chain order per partition.
fn takeovers(audit_topic: &str) -> Vec<(String, i32)> {
    let mut records = read_committed(audit_topic);
    records.sort_by_key(|r| (r.partition, r.offset));
    records
        .iter()
        .filter_map(|r| {
            let g = decode_audit(r.value.as_deref()).ok()?.governance?;
            (g.event_type == "GATE_STARTED").then_some(())?;
            let detail: serde_json::Value = serde_json::from_str(&g.detail).ok()?;
            Some((detail["gate_id"].as_str()?.to_string(), r.partition))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_instance_moves_only_the_partitions_that_change_owner() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
        .await
        .unwrap();
    let mut produced = HashMap::new();
    let mut first = spawn_gate(&sfx, &group, "g1");
    produced.extend(produce_all(&producer, mixed_workload(&producer, 600, 91)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    let before = takeovers(&topics.audit);
    let firsts: Vec<i32> = before.iter().map(|(_, p)| *p).collect();
    assert!(
        before.iter().all(|(g, _)| g == "g1"),
        "only g1 ran: {before:?}"
    );
    assert_eq!(firsts, [0, 1], "the workload reaches both partitions");

    // The second instance joins while intents keep coming.
    let load = {
        let records = mixed_workload(&producer, 1500, 92);
        let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
            .await
            .unwrap();
        tokio::spawn(async move { produce_all(&producer, records).await })
    };
    let mut second = spawn_gate(&sfx, &group, "g2");
    produced.extend(load.await.unwrap());
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(180));
    // What the orphan watch (gate::orphans) reads of the real group: two members, stable, every
    // partition owned (the watch heals only when one is not).
    wait_until(
        Duration::from_secs(60),
        "the group is stable with every partition owned",
        || {
            bhiv_bucket::gate::orphans::describe_group(&brokers(), &group, &topics.intents)
                .is_ok_and(|v| {
                    v.stable && v.members.len() == 2 && v.owned.len() == PARTITIONS as usize
                })
        },
    );
    // g2 has taken its share. Its takeover link (GATE_STARTED) goes into a chain just before
    // the chain's next link, so an idle partition's chain is unchanged: when g2's assignment
    // came after the first load was decided, only new intents make it write the link. So
    // produce more first, then wait for g2's takeover, then stop both cleanly.
    produced.extend(produce_all(&producer, mixed_workload(&producer, 200, 93)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    wait_until(Duration::from_secs(60), "g2 takes over a partition", || {
        takeovers(&topics.audit).iter().any(|(g, _)| g == "g2")
    });
    assert!(first.terminate(Duration::from_secs(30)) && second.terminate(Duration::from_secs(30)));

    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.accepted + checked.rejected, produced.len());

    let after = takeovers(&topics.audit);
    let mut by_gate: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (g, p) in &after {
        by_gate.entry(g.as_str()).or_default().push(*p);
    }
    let g2: Vec<i32> = by_gate.get("g2").cloned().unwrap_or_default();
    let g1: Vec<i32> = by_gate.get("g1").cloned().unwrap_or_default();
    assert!(
        !g2.is_empty() && g2.len() < PARTITIONS as usize,
        "g2 took some partitions, not all: {after:?}"
    );
    // g1's takeovers: the ones before g2 joined, nothing more on the partitions it kept.
    assert_eq!(
        g1, firsts,
        "g1 restored again after g2 joined (eager rebalance?): {after:?}"
    );
}
