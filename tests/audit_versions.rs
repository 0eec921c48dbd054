//! The audit log outlives its schema: chains written under audit schema version 1, then a gate
//! switched to version 2 (one added field, the decision's state facts), then to version 3 (the
//! offender fact as a change instead of the whole window) on the same chains.
//! Restore, `bucket audit verify`, `bucket audit tail`, the sink's audit index and
//! `bucket state rebuild` all keep working across the boundary, and the links of each version
//! are decoded with their own writer schema and hashed over their stored bytes.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 2;

fn gate_writing(sfx: &str, group: &str, id: &str, version: &str) -> Proc {
    spawn(
        &format!("gate{sfx}-{id}"),
        &["gate", "--gate-id", id, "--group", group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.to_string()),
            ("BUCKET_AUDIT_SCHEMA_VERSION", version.to_string()),
            ("BUCKET_COMMIT_INTERVAL_MS", "100".to_string()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_written_under_v1_carry_on_under_v2_and_v3() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let producer = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
        .await
        .unwrap();
    let mut produced = HashMap::new();

    // 1. A gate that writes version 1 (as every gate did before versions existed).
    let mut gate = gate_writing(&sfx, &group, "g1", "1");
    produced.extend(produce_all(&producer, mixed_workload(&producer, 400, 71)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));

    // 2. Upgraded: the same chains continue under version 2. Its restore reads version 1
    // links; the writers' stale CREATEs of artifacts made in step 1 must be refused as
    // conflicts, not accepted as version 1 again (check_invariants would see the duplicate).
    let mut gate = gate_writing(&sfx, &group, "g1", "2");
    produced.extend(produce_all(&producer, mixed_workload(&producer, 400, 72)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));

    // 3. Restarted once more under version 3: restore folds versions 1 and 2.
    let mut gate = gate_writing(&sfx, &group, "g1", "3");
    produced.extend(produce_all(&producer, mixed_workload(&producer, 100, 73)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));

    // 4. And again: restore now folds all three versions.
    let mut gate = gate_writing(&sfx, &group, "g1", "3");
    produced.extend(produce_all(&producer, mixed_workload(&producer, 100, 74)).await);
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));

    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.accepted + checked.rejected, 1000);
    assert!(
        checked.accepted > 100 && checked.rejected > 100,
        "a mixed workload: {checked:?}"
    );

    // Every version is in every chain, each strictly before the next, each link hashed over
    // its own stored bytes; only version 2 and 3 decisions carry facts, and only version 3
    // ones record offender changes.
    let mut records = read_committed(&topics.audit);
    records.sort_by_key(|r| (r.partition, r.offset));
    let mut versions: BTreeMap<i32, Vec<u8>> = BTreeMap::new();
    let mut facts_by_version: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
    for r in &records {
        let link = read_audit_link(r.value.as_deref()).unwrap();
        assert!(link.hash_ok(), "p{}@{} hash", r.partition, r.offset);
        versions.entry(r.partition).or_default().push(link.version);
        if let Some(d) = &link.event.decision {
            let e = facts_by_version.entry(link.version).or_default();
            if d.facts.is_some() {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            let f = d.facts.as_ref();
            assert!(
                link.version == 3 || f.is_none_or(|f| f.offender_change.is_none()),
                "an offender change in a version {} link",
                link.version
            );
            assert!(
                link.version == 2 || f.is_none_or(|f| f.offender.is_none()),
                "a whole offender state in a version {} link",
                link.version
            );
        }
    }
    for (p, vs) in &versions {
        assert_eq!(vs.first(), Some(&1), "partition {p} starts with v1 links");
        assert!(
            vs.is_sorted(),
            "partition {p}: no older version after a switch"
        );
        assert!(
            vs.contains(&2) && vs.contains(&3),
            "partition {p}: {:?}",
            vs.iter().collect::<std::collections::BTreeSet<_>>()
        );
    }
    let (v1_with, v1_without) = facts_by_version[&1];
    let (v2_with, v2_without) = facts_by_version[&2];
    let (v3_with, v3_without) = facts_by_version[&3];
    assert_eq!(
        (v1_with, v2_without, v3_without),
        (0, 0, 0),
        "{facts_by_version:?}"
    );
    assert!(
        v1_without >= 400 && v2_with >= 400 && v3_with >= 200,
        "{facts_by_version:?}"
    );

    // `bucket audit verify`: every chain, checkpoint and decision across the boundary.
    let out = run_bucket(&sfx, &["audit", "verify", "--json", "--group", &group]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "verify across versions: {report}");
    let decisions: u64 = report["partitions"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["decisions"].as_u64().unwrap())
        .sum();
    assert_eq!(decisions, 1000, "{report}");

    // `bucket audit tail`: every decision of every version, v2 and v3 ones with their facts.
    let out = run_bucket(
        &sfx,
        &["audit", "tail", "--from-beginning", "--until-end", "--json"],
    );
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let tailed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["decision"].is_object()).collect();
    assert_eq!(tailed.len(), 1000);
    assert_eq!(
        tailed
            .iter()
            .filter(|l| l["decision"]["facts"].is_object())
            .count(),
        v2_with + v3_with
    );

    // `bucket state rebuild`: usage from the audit log alone equals the accepted topic's.
    let out = run_bucket(&sfx, &["state", "rebuild", "--redis-url", "none"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let mut rebuilt: HashMap<String, (u64, u64)> = HashMap::new();
    for line in printed.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if let [product, _partition, artifacts, bytes] = cols[..]
            && let (Ok(a), Ok(b)) = (artifacts.parse::<u64>(), bytes.parse::<u64>())
        {
            let e = rebuilt.entry(product.to_string()).or_default();
            e.0 += b;
            e.1 += a;
        }
    }
    let mut want = usage_from_accepted(&topics.accepted);
    want.retain(|_, u| *u != (0, 0));
    rebuilt.retain(|_, u| *u != (0, 0));
    assert_eq!(rebuilt, want, "rebuilt usage:\n{printed}");

    // The sink's audit index stores every decision of every version.
    let db = fresh_database(&sfx).await;
    let mut sink = spawn(
        &format!("sink{sfx}"),
        &["sink", "--migrate", "--group", &format!("sink{sfx}")],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
        ],
    );
    let mut indexed = 0;
    for _ in 0..240 {
        indexed = pg_count(
            &db,
            "SELECT count(*) FROM audit_decisions WHERE kind = 'DECISION'",
        )
        .await;
        if indexed >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(indexed, 1000, "audit index rows");
    assert_eq!(
        pg_count(&db, "SELECT count(*) FROM sink_undecodable").await,
        0,
        "no link quarantined as undecodable"
    );
    assert!(sink.terminate(Duration::from_secs(30)));
}
