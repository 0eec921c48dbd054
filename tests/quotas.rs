//! Quotas, rate limits and scale-out against the real stack: exact per-product quota edges,
//! per-product rate limits that do not touch a neighbour on the same partition, and two gate
//! instances killed at random moments without losing, duplicating or forking anything, with
//! the usage published to Redis equal to a recomputation from the accepted artifacts.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bhiv_bucket::core::ArtifactIntent;
use bhiv_bucket::produce::{IntentProducer, now_ms};
use bhiv_bucket::wire::audit;
use common::*;

fn intent(product: &str, artifact: &str, class: &str, content: Vec<u8>) -> ArtifactIntent {
    ArtifactIntent {
        content: Some(content),
        purpose: "quota test".into(),
        ..create_intent(product, class, artifact)
    }
}

/// Writes the demo policy with each (from, to) replacement applied into `dir`, with the demo
/// keys beside it, and returns its path. Every `from` must occur in the demo policy.
fn policy_with(dir: &std::path::Path, replacements: &[(&str, &str)]) -> String {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut text = std::fs::read_to_string(deploy.join("policy.toml")).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "the demo policy has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    std::os::unix::fs::symlink(deploy.join("demo"), dir.join("demo")).unwrap();
    path.to_str().unwrap().to_string()
}

/// Tight limits for workflow (quota) and ai_assistant (rate).
fn tight_policy(dir: &std::path::Path) -> String {
    policy_with(
        dir,
        &[
            (
                "[products.workflow]\n",
                "[products.workflow]\nmax_bytes = 1000\n",
            ),
            (
                "[products.ai_assistant]\n",
                "[products.ai_assistant]\nrate_per_sec = 20\nburst = 10\n",
            ),
        ],
    )
}

fn decisions(topic: &str) -> HashMap<(i32, i64), audit::DecisionRecord> {
    read_committed(topic)
        .into_iter()
        .filter_map(|r| common::decode_audit(r.value.as_deref()).ok()?.decision)
        .map(|d| ((d.source_partition, d.source_offset), d))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_edge_and_rate_limits_are_exact_and_isolated() {
    let sfx = suffix();
    let topics = create_topics(&sfx, 1).await;
    let group = format!("gate{sfx}");
    let dir = tempfile::tempdir().unwrap();
    let policy = tight_policy(dir.path());
    let registry = registry();
    let p = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    // Quota: 999 bytes, then 1 byte (exactly at quota), then 1 byte more (refused).
    let q1 = send_signed(
        &p,
        &intent("workflow", "q1", "workflow_state", vec![b'a'; 999]),
    )
    .await;
    let q2 = send_signed(&p, &intent("workflow", "q2", "workflow_state", vec![b'b'])).await;
    let q3 = send_signed(&p, &intent("workflow", "q3", "workflow_state", vec![b'c'])).await;
    // Rate: 200 intents of ai_assistant (10x its 20/s) interleaved with 50 of gurukul.
    let mut records = Vec::new();
    for n in 0..200 {
        records.push(signed(
            &p,
            &intent("ai_assistant", &format!("r{n}"), "document", b"x".to_vec()),
        ));
        if n % 4 == 0 {
            records.push(signed(
                &p,
                &intent("gurukul", &format!("g{n}"), "transcript", b"y".to_vec()),
            ));
        }
    }
    produce_all(&p, records).await;
    let _gate = spawn(
        &format!("gate{sfx}-tight"),
        &["gate", "--gate-id", "g1", "--group", &group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_POLICY", policy),
        ],
    );
    wait_all_decided(&group, &topics, 1, Duration::from_secs(90));
    let d = decisions(&topics.audit);
    assert!(d[&(q1.partition, q1.offset)].accepted);
    assert!(
        d[&(q2.partition, q2.offset)].accepted,
        "exactly at quota is accepted"
    );
    assert_eq!(
        d[&(q3.partition, q3.offset)].reasons,
        vec!["QUOTA_EXCEEDED"]
    );
    let by = |product: &str| {
        d.values()
            .filter(|x| x.product_id.as_deref() == Some(product))
            .collect::<Vec<_>>()
    };
    let limited = by("ai_assistant")
        .iter()
        .filter(|x| x.reasons == vec!["RATE_LIMITED"])
        .count();
    assert!(
        limited >= 100,
        "most of the 10x excess is refused: {limited}"
    );
    assert!(
        by("gurukul").iter().all(|x| x.accepted),
        "a product under its rate on the same partition sees no refusal"
    );
    let rejected = read_committed(&topics.rejected);
    assert!(
        rejected
            .iter()
            .any(|r| r.headers.contains_key("bucket.errors.retry.after.ms"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_killed_at_random_with_redis_flushed_keep_every_invariant_and_usage() {
    let intents: usize = std::env::var("BUCKET_CHAOS_INTENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000);
    let kills: usize = std::env::var("BUCKET_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let partitions = 4;
    let sfx = suffix();
    let topics = create_topics(&sfx, partitions).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let p = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = mixed_workload(&p, intents, 99);
    let half = records.len() / 2;
    let mut produced = produce_all(&p, records[..half].to_vec()).await;
    let mut gates = [spawn_gate(&sfx, &group, "a"), spawn_gate(&sfx, &group, "b")];
    let mut rest = records[half..].chunks(records[half..].len() / kills.max(1) + 1);
    let mut seed: u64 = 0x5eed;
    for round in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(500 + seed % 2500)).await;
        let victim = (seed % 2) as usize;
        gates[victim].kill9();
        if let Some(chunk) = rest.next() {
            produced.extend(produce_all(&p, chunk.to_vec()).await);
        }
        let id = if victim == 0 { "a" } else { "b" };
        gates[victim] = spawn_gate(&sfx, &group, id);
        eprintln!("chaos round {round}: killed and restarted gate {id}");
        if round == 0 {
            // Redis loses everything mid-run: gates must notice and republish.
            let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
            let mut con = client.get_connection().unwrap();
            redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
            eprintln!("chaos round {round}: redis flushed");
        }
    }
    for chunk in rest {
        produced.extend(produce_all(&p, chunk.to_vec()).await);
    }
    wait_all_decided(&group, &topics, partitions, Duration::from_secs(300));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.audit, produced.len());

    // Usage recomputed from the accepted artifacts equals what the gates published to Redis.
    let want = usage_from_accepted(&topics.accepted);
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut con = client.get_connection().unwrap();
    let redis_matches = |con: &mut redis::Connection| {
        want.iter().all(|(product, (bytes, artifacts))| {
            let got: (Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(format!("bucket:{}:product:{product}", topics.intents))
                .arg("bytes")
                .arg("artifacts")
                .query(con)
                .unwrap();
            got == (Some(*bytes), Some(*artifacts))
        })
    };
    wait_until(
        Duration::from_secs(15),
        "redis usage equals recomputation",
        || redis_matches(&mut con),
    );

    // With every gate gone and Redis empty, the state is rebuilt from the audit log alone.
    for g in &mut gates {
        g.kill9();
    }
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    assert!(!redis_matches(&mut con));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(["state", "rebuild"])
        .env("BUCKET_BROKERS", brokers())
        .env("BUCKET_TOPIC_SUFFIX", &sfx)
        .env(
            "BUCKET_POLICY",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        redis_matches(&mut con),
        "bucket state rebuild restores usage equal to the recomputation"
    );
}

/// How long an integration cools off in `offender_policy`.
const COOL_OFF: Duration = Duration::from_secs(30);

/// A small repeat-offender threshold (5 refusals in a minute) and a `COOL_OFF` cooling-off.
fn offender_policy(dir: &std::path::Path) -> String {
    let cool_off = format!("cool_off_ms = {}\n", COOL_OFF.as_millis());
    policy_with(
        dir,
        &[
            ("threshold = 1000\n", "threshold = 5\n"),
            ("cool_off_ms = 300000\n", &cool_off),
        ],
    )
}

/// When the gate decided each intent (the audit link's `recorded_at`, the decision's clock).
fn decision_times(topic: &str) -> HashMap<(i32, i64), i64> {
    read_committed(topic)
        .into_iter()
        .filter_map(|r| {
            let e = common::decode_audit(r.value.as_deref()).ok()?;
            let d = e.decision?;
            Some(((d.source_partition, d.source_offset), e.recorded_at))
        })
        .collect()
}

/// Governance events of one type in the audit topic, as their detail.
fn governance(topic: &str, event_type: &str) -> Vec<serde_json::Value> {
    read_committed(topic)
        .into_iter()
        .filter_map(|r| common::decode_audit(r.value.as_deref()).ok()?.governance)
        .filter(|g| g.event_type == event_type)
        .filter_map(|g| serde_json::from_str(&g.detail).ok())
        .collect()
}

/// Seeds' T6 (escalation cascade) end to end: an integration whose authentic intents keep being
/// refused cools off (COOLING_OFF, with an audited start) while its neighbour on the same
/// partition is untouched; the cooling-off survives a `kill -9` (it is rebuilt from the audit
/// log), and it ends on time with an audited end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_offender_cools_off_across_a_restart_and_then_recovers() {
    let sfx = suffix();
    let topics = create_topics(&sfx, 1).await;
    let group = format!("gate{sfx}");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
        ("BUCKET_POLICY", offender_policy(dir.path())),
    ];
    let gate_args = ["gate", "--gate-id", "g1", "--group", group.as_str()];
    let p = IntentProducer::connect(&brokers(), &registry(), &topics.intents)
        .await
        .unwrap();
    let mut gate = spawn(&format!("gate{sfx}-offender"), &gate_args, &env);
    let mut refused = Vec::new();
    for n in 0..5 {
        let mut i = intent("ai_avatar", &format!("bad{n}"), "media", b"x".to_vec());
        i.purpose = String::new();
        refused.push(send_signed(&p, &i).await);
    }
    let cooled = send_signed(&p, &intent("ai_avatar", "ok1", "media", b"ok".to_vec())).await;
    let neighbour = send_signed(&p, &intent("gurukul", "n1", "transcript", b"ok".to_vec())).await;
    wait_all_decided(&group, &topics, 1, Duration::from_secs(90));
    let d = decisions(&topics.audit);
    for r in &refused {
        assert_eq!(d[&(r.partition, r.offset)].reasons, vec!["PURPOSE_MISSING"]);
    }
    let started_at = decision_times(&topics.audit)[&(refused[4].partition, refused[4].offset)];
    assert_eq!(
        d[&(cooled.partition, cooled.offset)].reasons,
        vec!["COOLING_OFF"],
        "the fifth refusal starts the cooling-off"
    );
    assert!(
        d[&(neighbour.partition, neighbour.offset)].accepted,
        "another product's integration on the same partition is not affected"
    );

    gate.kill9();
    let _gate = spawn(&format!("gate{sfx}-offender-restarted"), &gate_args, &env);
    let after_restart = send_signed(&p, &intent("ai_avatar", "ok2", "media", b"ok".to_vec())).await;
    wait_all_decided(&group, &topics, 1, Duration::from_secs(90));
    let d = decisions(&topics.audit);
    let again = &d[&(after_restart.partition, after_restart.offset)];
    let again_at = decision_times(&topics.audit)[&(after_restart.partition, after_restart.offset)];
    assert!(
        again_at < started_at + COOL_OFF.as_millis() as i64,
        "the restart took longer than the cooling-off; the test proves nothing"
    );
    assert_eq!(
        again.reasons,
        vec!["COOLING_OFF"],
        "a kill -9 and restore forgot the cooling-off"
    );

    let until = started_at + COOL_OFF.as_millis() as i64;
    let wait = (until - now_ms()).max(0) as u64 + 1000;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let later = send_signed(&p, &intent("ai_avatar", "ok3", "media", b"ok".to_vec())).await;
    wait_all_decided(&group, &topics, 1, Duration::from_secs(90));
    let d = decisions(&topics.audit);
    assert!(
        d[&(later.partition, later.offset)].accepted,
        "the integration is accepted again after its cooling-off: {:?}",
        d[&(later.partition, later.offset)].reasons
    );
    let starts = governance(&topics.audit, "COOLING_OFF_STARTED");
    let ends = governance(&topics.audit, "COOLING_OFF_ENDED");
    assert_eq!(starts.len(), 1, "one audited start: {starts:?}");
    assert_eq!(starts[0]["integration"], "ai_avatar-backend");
    assert_eq!(starts[0]["until"], until);
    assert_eq!(ends.len(), 1, "one audited end: {ends:?}");
    assert_eq!(ends[0]["integration"], "ai_avatar-backend");
}
