//! `StoredTask` on a real store in a temporary directory: folds, commits, rollbacks.

use tempfile::TempDir;

use crate::gate::store::StoreIdentity;

use super::*;
use crate::core::decide::{Decision, Outcome};
use crate::core::state::{ArtifactRecord, Effect};

const WINDOW: usize = 16;

fn task_on(dir: &TempDir) -> StoredTask {
    let identity = StoreIdentity::new("cluster", "bucket.intents", "bucket.audit", 0);
    let store = StateStore::open(dir.path(), &identity, 8 << 20).unwrap();
    StoredTask::on_store(store, WINDOW).unwrap().0
}

fn key(artifact: &str) -> ArtifactKey {
    ArtifactKey {
        product_id: "p".into(),
        artifact_id: artifact.into(),
    }
}

fn create(artifact: &str, intent: &str) -> Decision {
    Decision {
        outcome: Outcome::Accepted,
        findings: vec![],
        version: Some(1),
        effect: Some(Effect {
            key: key(artifact),
            record: ArtifactRecord {
                version: 1,
                owner_id: "o".into(),
                artifact_class: "document".into(),
                size: 100,
                deleted: false,
            },
        }),
        size_delta: 100,
        decided_at: 0,
        policy_version: "v1".into(),
        replay_key: Some(("p".into(), intent.into())),
        artifact_delta: 1,
        rate_tat: Some(("p".into(), 7)),
        offender: None,
        counted_rejection: false,
        events: vec![],
    }
}

/// Decides `artifact` as link `seq` of the chain (the takeover is link 0).
fn decide(stored: &mut StoredTask, artifact: &str, seq: i64) {
    stored.record_decision(&create(artifact, artifact), WINDOW);
    let task = &mut stored.task;
    task.tree.append_bytes(artifact.as_bytes());
    task.chain = ChainHead {
        next_seq: seq + 1,
        hash: format!("h{seq}"),
    };
    task.last_decided_offset = seq * 10;
}

fn announced(dir: &TempDir) -> StoredTask {
    let mut stored = task_on(dir);
    let task = &mut stored.task;
    task.tree.append_bytes(b"GATE_STARTED");
    task.chain = ChainHead {
        next_seq: 1,
        hash: "h0".into(),
    };
    task.announced_at = Some(0);
    stored
}

/// An accepted, authenticated link of product "p" by integration "i", with its facts;
/// `rejected` makes it a counted rejection instead (an offender change, no artifact).
fn link(seq: i64, artifact: &str, rejected: bool) -> crate::wire::audit::AuditEvent {
    use crate::wire::audit::{AuditEvent, DecisionRecord, OffenderChangeFacts, StateFacts};
    AuditEvent {
        seq,
        prev_hash: match seq {
            0 => crate::wire::audit::GENESIS_HASH.to_string(),
            _ => format!("h{}", seq - 1),
        },
        hash: format!("h{seq}"),
        recorded_at: 1_000 + seq,
        gate_id: "g".into(),
        policy_version: "v1".into(),
        decision: Some(DecisionRecord {
            source_offset: seq,
            accepted: !rejected,
            authenticated: true,
            product_id: Some("p".into()),
            intent_id: Some(format!("intent-{seq}")),
            integration_id: Some("i".into()),
            artifact_id: Some(artifact.into()),
            owner_id: Some("o".into()),
            artifact_class: Some("document".into()),
            version: Some(1),
            content_size: 100,
            size_delta: 100,
            facts: Some(StateFacts {
                artifact_delta: i64::from(!rejected),
                counted_rejection: rejected,
                rate_tat_us: Some(seq * 10),
                offender: None,
                offender_change: rejected.then(|| OffenderChangeFacts {
                    integration_id: "i".into(),
                    dropped: 0,
                    added_ms: Some(1_000 + seq),
                    cooling_until_ms: None,
                }),
            }),
            ..Default::default()
        }),
        governance: None,
    }
}

#[test]
fn a_stored_task_writes_what_the_plain_task_folds() {
    let dir = TempDir::new().unwrap();
    let mut stored = task_on(&dir);
    let mut plain = Task::empty();
    let mut policy = crate::core::policy::tests::shipped();
    policy.limits.replay_window = WINDOW;
    for (seq, artifact, rejected) in [(0, "a1", false), (1, "a2", true), (2, "a3", false)] {
        let event = link(seq, artifact, rejected);
        let bytes = format!("link {seq}");
        stored
            .follow(0, seq, &event, bytes.as_bytes(), &policy)
            .unwrap();
        let folded = plain.fold(&event, &policy);
        plain.tree.append_bytes(bytes.as_bytes());
        assert!(folded.remembered.is_some(), "link {seq}");
        assert_eq!(folded.accepted.is_some(), !rejected, "link {seq}");
        assert_eq!(folded.offenders.is_empty(), !rejected, "link {seq}");
    }
    stored.persist_committed(2).unwrap();
    let store = &stored.store.as_ref().expect("store").store;
    assert_eq!(differences(store, &plain).unwrap(), Vec::<String>::new());
    assert_eq!(store.len_artifacts().unwrap(), 2);
    assert!(store.offenders_all().unwrap().contains_key("i"));
    assert_eq!(store.rate_all().unwrap().get("p"), Some(&20));
    assert_eq!(stored.task.chain, plain.chain);
}

#[test]
fn a_rolled_back_task_is_its_last_commit_without_the_aborted_work() {
    let dir = TempDir::new().unwrap();
    let mut task = announced(&dir);
    decide(&mut task, "a1", 1);
    task.persist_committed(5).unwrap();
    let (chain, tree, usage) = (
        task.task.chain.clone(),
        task.task.tree.root(),
        task.task.state.usage("p"),
    );

    decide(&mut task, "a2", 2);
    decide(&mut task, "a3", 3);
    assert_ne!(
        task.task.state.usage("p"),
        usage,
        "the open transaction changed usage"
    );
    let mut rolled = task
        .rolled_back()
        .unwrap()
        .expect("a store-backed task rolls back");

    assert_eq!(rolled.task.chain, chain);
    assert_eq!(rolled.task.tree.root(), tree);
    assert_eq!(rolled.task.last_decided_offset, 10);
    assert_eq!(rolled.task.state.usage("p"), usage);
    assert_eq!(rolled.task.announced_at, Some(0));
    let store = &rolled.store.as_ref().expect("store").store;
    for (artifact, committed) in [("a1", true), ("a2", false), ("a3", false)] {
        let k = key(artifact);
        assert!(
            rolled.task.state.artifact(&k).is_none(),
            "{artifact} in memory"
        );
        assert_eq!(
            store.artifact(&k).unwrap().is_some(),
            committed,
            "{artifact}"
        );
    }
    // Deciding again after the rollback commits as if the aborted work never happened.
    decide(&mut rolled, "a2", 2);
    rolled.persist_committed(6).unwrap();
    assert_eq!(rolled.task.state.usage("p").bytes, usage.bytes + 100);
}

#[test]
fn a_task_whose_takeover_was_aborted_or_without_a_store_is_restored_instead() {
    let dir = TempDir::new().unwrap();
    let mut task = announced(&dir);
    decide(&mut task, "a1", 1);
    assert!(
        task.rolled_back().unwrap().is_none(),
        "nothing committed: the takeover announcement itself was aborted"
    );

    let dir = TempDir::new().unwrap();
    let mut task = task_on(&dir);
    task.persist_committed(0).unwrap();
    task.task.announced_at = Some(4);
    assert!(
        task.rolled_back().unwrap().is_none(),
        "the committed chain ends before the announcement"
    );

    let mut task = Task::empty();
    task.announced_at = Some(0);
    task.chain.next_seq = 3;
    let in_memory = StoredTask::in_memory(task);
    assert!(in_memory.rolled_back().unwrap().is_none(), "no store");
}

/// a1 committed and in the store; a2 committed in Kafka, but its audit offset was not
/// reported: not in the store yet.
fn a2_committed_but_not_stored(dir: &TempDir) -> StoredTask {
    let mut task = announced(dir);
    decide(&mut task, "a1", 1);
    task.persist_committed(5).unwrap();
    decide(&mut task, "a2", 2);
    task.committed_unpersisted();
    task
}

#[test]
fn a_store_behind_the_last_kafka_commit_is_not_rolled_back_to() {
    let dir = TempDir::new().unwrap();
    let mut task = a2_committed_but_not_stored(&dir);
    decide(&mut task, "a3", 3);
    assert!(
        task.rolled_back().unwrap().is_none(),
        "the store lacks the committed a2: the partition must be restored from the log"
    );

    let dir = TempDir::new().unwrap();
    let mut task = a2_committed_but_not_stored(&dir);
    task.persist_committed(7).unwrap();
    decide(&mut task, "a3", 3);
    let rolled = task.rolled_back().unwrap().expect("caught up: rolls back");
    assert_eq!(
        rolled.task.chain.next_seq, 3,
        "a1 and a2 are kept, a3 is not"
    );
}
