//! Local state stores (`--state-dir`): a restarted gate restores warm (only the audit tail
//! after its checkpoint), a `kill -9` at any point (between produce and commit, during a store
//! write) leaves a store that is never trusted past what the committed log confirms, and a
//! deleted or foreign store is loaded from the state changelog, and a lost changelog is
//! rebuilt from the audit log and written again. After each step every partition's
//! store equals the state rebuilt from the audit log alone, and every intent has exactly one
//! decision.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bhiv_bucket::gate::store::StateStore;
use bhiv_bucket::produce::IntentProducer;
use common::state::{
    Expect, changelog_matches_the_log, copy_dir, followed_stores_match_the_log, recreate_topic,
    stores_match_the_log as stores_match,
};
use common::*;

const PARTITIONS: i32 = 2;

fn gate_with_store(sfx: &str, group: &str, id: &str, dir: &Path) -> Proc {
    spawn(
        &format!("gate{sfx}-{id}"),
        &["gate", "--gate-id", id, "--group", group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.to_string()),
            ("BUCKET_STATE_DIR", dir.display().to_string()),
            ("BUCKET_COMMIT_INTERVAL_MS", "100".to_string()),
        ],
    )
}

/// GATE_STARTED details of `gate` by (partition, offset).
fn starts(
    audit_topic: &str,
    gate: &str,
) -> std::collections::BTreeMap<(i32, i64), serde_json::Value> {
    read_committed(audit_topic)
        .iter()
        .filter_map(|r| {
            let g = decode_audit(r.value.as_deref()).ok()?.governance?;
            (g.event_type == "GATE_STARTED").then_some(())?;
            let d: serde_json::Value = serde_json::from_str(&g.detail).ok()?;
            (d["gate_id"] == gate).then_some(((r.partition, r.offset), d))
        })
        .collect()
}

/// The GATE_STARTED details in `now` that were not in `before`.
fn since(
    before: &std::collections::BTreeMap<(i32, i64), serde_json::Value>,
    now: std::collections::BTreeMap<(i32, i64), serde_json::Value>,
) -> Vec<serde_json::Value> {
    now.into_iter()
        .filter(|(k, _)| !before.contains_key(k))
        .map(|(_, v)| v)
        .collect()
}

/// Every partition's store in `dir` equals the audit log's recomputation (see
/// `common::state`), and so does the state changelog, and so does a standby's store of each
/// partition (in `standby`, followed one more round at every call) once completed as a takeover
/// completes it.
fn stores_match_the_log(
    dir: &Path,
    standby: &Path,
    topics: &bhiv_bucket::gate::TopicNames,
    expect: Expect,
) {
    stores_match(dir, topics, PARTITIONS, expect).unwrap();
    changelog_matches_the_log(topics, PARTITIONS, true).unwrap();
    let followed = followed_stores_match_the_log(topics, PARTITIONS, standby).unwrap();
    assert_eq!(
        followed, PARTITIONS as usize,
        "every partition has a warm standby store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_restore_warm_survive_kills_and_rebuild_when_lost() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("state{sfx}"));
    let _ = std::fs::remove_dir_all(&dir);
    // A standby's stores, followed across the whole scenario (new epochs included).
    let standby = tempfile::TempDir::new().unwrap();
    let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
        .await
        .unwrap();
    let mut produced = HashMap::new();

    // 1. A first run fills the stores (cold: nothing local yet).
    let mut gate = gate_with_store(&sfx, &group, "g1", &dir);
    produced.extend(produce_all(&producer, mixed_workload(&producer, 800, 111)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));
    stores_match_the_log(&dir, standby.path(), &topics, Expect::Current);
    let cold = starts(&topics.audit, "g1");
    assert!(cold.values().all(|d| d["warm"] == false), "{cold:?}");

    // 2. Restarted on the same stores: warm, replaying only what followed the checkpoint
    // (its own shutdown link at most).
    let mut gate = gate_with_store(&sfx, &group, "g1", &dir);
    produced.extend(produce_all(&producer, mixed_workload(&producer, 200, 112)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    let had_history: Vec<_> = since(&cold, starts(&topics.audit, "g1"))
        .into_iter()
        .filter(|d| d["restored_links"].as_i64() > Some(0))
        .collect();
    assert!(!had_history.is_empty());
    for d in &had_history {
        assert_eq!(d["warm"], true, "{d}");
        assert!(d["replayed_links"].as_u64().unwrap() <= 2, "{d}");
        assert!(d["restored_links"].as_i64().unwrap() > 100, "{d}");
    }

    // 3. kill -9 while intents keep coming (transactions open, store writes in flight),
    // five times; each restart trusts its store only as far as the log confirms it.
    for round in 0..5u64 {
        let records = mixed_workload(&producer, 400, 120 + round);
        let load = {
            let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
                .await
                .unwrap();
            tokio::spawn(async move { produce_all(&producer, records).await })
        };
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        gate.kill9();
        produced.extend(load.await.unwrap());
        gate = gate_with_store(&sfx, &group, "g1", &dir);
        wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    }
    assert!(gate.terminate(Duration::from_secs(30)));
    stores_match_the_log(&dir, standby.path(), &topics, Expect::UpToItsCheckpoint);

    // 4. The stores are lost: rebuilt from the audit log (cold), and equal to it again.
    std::fs::remove_dir_all(&dir).unwrap();
    let before = starts(&topics.audit, "g1");
    let mut gate = gate_with_store(&sfx, &group, "g1", &dir);
    produced.extend(produce_all(&producer, mixed_workload(&producer, 100, 130)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));
    let rebuilt = since(&before, starts(&topics.audit, "g1"));
    assert!(!rebuilt.is_empty());
    for d in &rebuilt {
        // Cold, but from the state changelog: no audit link folded.
        assert_eq!(d["warm"], false, "{d}");
        assert_eq!(d["restored_from"], "changelog", "{d}");
        assert_eq!(d["replayed_links"], 0, "{d}");
        assert!(d["artifacts"].as_u64().unwrap() > 0, "{d}");
    }
    stores_match_the_log(&dir, standby.path(), &topics, Expect::UpToItsCheckpoint);

    // 5. A foreign store (partition 0's, put where partition 1's belongs) is refused and
    // rebuilt; partition 0's own store restores warm.
    let p0 = StateStore::dir_for(&dir, &topics.audit, 0);
    let p1 = StateStore::dir_for(&dir, &topics.audit, 1);
    std::fs::remove_dir_all(&p1).unwrap();
    copy_dir(&p0, &p1);
    let before = starts(&topics.audit, "g1");
    let mut gate = gate_with_store(&sfx, &group, "g1", &dir);
    produced.extend(produce_all(&producer, mixed_workload(&producer, 100, 131)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));
    let after = since(&before, starts(&topics.audit, "g1"));
    assert_eq!(
        after.len(),
        2,
        "both partitions have history by now: {after:?}"
    );
    for d in &after {
        let warm = d["partition"] == 0;
        assert_eq!(d["warm"], warm, "{d}");
        assert_eq!(
            d["restored_from"],
            if warm { "store" } else { "changelog" },
            "{d}"
        );
    }
    stores_match_the_log(&dir, standby.path(), &topics, Expect::UpToItsCheckpoint);

    // 6. The changelog topic is deleted and created again empty, and the stores are lost:
    // rebuilt from the audit log, which writes the changelog again (a new epoch); lose the
    // stores once more and they load from that changelog.
    recreate_topic(&topics.changelog, PARTITIONS).await;
    std::fs::remove_dir_all(&dir).unwrap();
    for (round, expected) in [(0u64, "audit"), (1, "changelog")] {
        let before = starts(&topics.audit, "g1");
        let mut gate = gate_with_store(&sfx, &group, "g1", &dir);
        produced.extend(produce_all(&producer, mixed_workload(&producer, 100, 140 + round)).await);
        wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
        assert!(gate.terminate(Duration::from_secs(30)));
        let after = since(&before, starts(&topics.audit, "g1"));
        assert_eq!(after.len(), 2, "{after:?}");
        for d in &after {
            assert_eq!(d["restored_from"], expected, "{d}");
        }
        stores_match_the_log(&dir, standby.path(), &topics, Expect::UpToItsCheckpoint);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.accepted + checked.rejected, produced.len());
}
