//! Store tests: layouts round-trip, the replay window is `PartitionState::remember`'s, a
//! failed commit leaves the previous state, identities are checked, and random commit
//! sequences answer as the in-memory state does.

use std::collections::{HashMap, VecDeque};

use tempfile::TempDir;

use super::*;
use crate::core::decide::{Decision, Outcome};
use crate::core::state::{Effect, OffenderChange, PartitionState};

mod model;

const CACHE: u64 = 8 << 20;

fn identity() -> StoreIdentity {
    StoreIdentity::new("group-a", "bucket.intents", "bucket.audit", 3)
}

fn checkpoint(seq: i64) -> StoreCheckpoint {
    StoreCheckpoint {
        audit_next_seq: seq,
        audit_hash: format!("hash-{seq}"),
        audit_offset: seq * 2,
        last_decided_offset: seq * 3 - 1,
        policy_version: format!("policy-{seq}"),
        control_next: seq + 7,
        tree_edge: (0..(seq as u64).count_ones())
            .map(|i| crate::tlog::Hash([i as u8; 32]))
            .collect(),
    }
}

fn key(p: &str, a: &str) -> ArtifactKey {
    ArtifactKey {
        product_id: p.into(),
        artifact_id: a.into(),
    }
}

fn record(version: i64, deleted: bool) -> ArtifactRecord {
    ArtifactRecord {
        version,
        owner_id: "owner-1".into(),
        artifact_class: "document".into(),
        size: 1000 + version as u64,
        deleted,
    }
}

fn rk(p: &str, id: &str) -> ReplayKey {
    (p.to_string(), id.to_string())
}

#[test]
fn the_store_is_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<StateStore>();
}

fn open(dir: &TempDir) -> StateStore {
    StateStore::open(dir.path(), &identity(), CACHE).unwrap()
}

#[test]
fn layouts_round_trip_and_refuse_damage() {
    let r = record(7, true);
    assert_eq!(
        codec::read_artifact(&codec::artifact(&r).unwrap()).unwrap(),
        r
    );
    let u = Usage {
        bytes: u64::MAX,
        artifacts: 3,
    };
    assert_eq!(codec::read_usage(&codec::usage(&u)).unwrap(), u);
    assert_eq!(codec::read_rate(&codec::rate(-5)).unwrap(), -5);
    for o in [
        OffenderState::default(),
        OffenderState {
            rejections: VecDeque::from([1, 2, i64::MIN]),
            cooling_until: Some(99),
        },
    ] {
        assert_eq!(
            codec::read_offender(&codec::offender(&o).unwrap()).unwrap(),
            o
        );
    }
    let c = checkpoint(4);
    assert_eq!(StoreCheckpoint::decode(&c.encode().unwrap()).unwrap(), c);
    let id = identity();
    assert_eq!(
        StoreIdentity::decode(&id.encode().unwrap()).unwrap(),
        Ok(id)
    );
    // Truncated, extended or re-versioned values are errors, not panics.
    let bytes = codec::artifact(&r).unwrap();
    for cut in 0..bytes.len() {
        assert!(matches!(
            codec::read_artifact(&bytes[..cut]),
            Err(StateStoreError::Corrupt(_))
        ));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(codec::read_artifact(&longer).is_err());
    let mut other = bytes;
    other[0] = 9;
    assert!(codec::read_artifact(&other).is_err());
}

#[test]
fn replay_ids_are_compact_and_spelling_exact() {
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let k = ids::replay_key(5, &rk("p", uuid));
    assert_eq!(k.len(), 4 + 1 + 16);
    let upper = ids::replay_key(5, &rk("p", &uuid.to_uppercase()));
    assert_ne!(k, upper, "two spellings stay two ids");
    let raw = ids::replay_key(5, &rk("p", "intent-42"));
    assert_eq!(raw.len(), 4 + 1 + "intent-42".len());
    // A raw id that happens to be 16 bytes never collides with a UUID's bytes.
    let u = uuid::Uuid::parse_str(uuid).unwrap();
    let sixteen = String::from_utf8(u.as_bytes().to_vec()).unwrap_or_else(|_| "x".repeat(16));
    assert_ne!(ids::replay_key(5, &rk("p", &sixteen)), k);
}

#[test]
fn a_new_store_is_empty_and_commits_are_read_back_after_reopen() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    assert_eq!(s.checkpoint().unwrap(), None);
    assert_eq!(s.artifact(&key("p", "a")).unwrap(), None);
    assert!(!s.seen(&rk("p", "i")).unwrap());
    assert!(s.usage_all().unwrap().is_empty());

    let mut c = Changes::new(10);
    c.artifacts.push((key("p", "a"), record(1, false)));
    c.artifacts.push((key("q", "a"), record(2, false)));
    c.artifacts.push((key("p", "a"), record(3, true)));
    c.usage.push(("p".into(), 100, 1));
    c.usage.push(("p".into(), -30, 0));
    c.rates.push(("p".into(), 17));
    c.offenders.push((
        "int-1".into(),
        OffenderState {
            rejections: VecDeque::from([5, 6]),
            cooling_until: None,
        },
    ));
    c.replay
        .push(rk("p", "0f8fad5b-d9cb-469f-a165-70867728950e"));
    c.replay.push(rk("q", "raw-id"));
    s.commit(&c, &checkpoint(1)).unwrap();
    drop(s);

    let s = open(&dir);
    assert_eq!(s.checkpoint().unwrap(), Some(checkpoint(1)));
    assert_eq!(s.artifact(&key("p", "a")).unwrap(), Some(record(3, true)));
    assert_eq!(s.artifact(&key("q", "a")).unwrap(), Some(record(2, false)));
    assert_eq!(s.artifact(&key("q", "b")).unwrap(), None);
    assert!(
        s.seen(&rk("p", "0f8fad5b-d9cb-469f-a165-70867728950e"))
            .unwrap()
    );
    assert!(s.seen(&rk("q", "raw-id")).unwrap());
    assert!(!s.seen(&rk("p", "raw-id")).unwrap());
    assert_eq!(
        s.usage_all().unwrap(),
        HashMap::from([(
            "p".to_string(),
            Usage {
                bytes: 70,
                artifacts: 1
            }
        )])
    );
    assert_eq!(
        s.rate_all().unwrap(),
        HashMap::from([("p".to_string(), 17)])
    );
    assert_eq!(s.offenders_all().unwrap()["int-1"].rejections, [5, 6]);
    assert_eq!(s.replay_len(), 2);
    assert_eq!(s.len_artifacts().unwrap(), 2);
}

#[test]
fn the_replay_window_forgets_exactly_as_partition_state_does() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let mut m = PartitionState::default();
    // (ids of one commit, window): duplicates, a window that shrinks and grows, a commit
    // larger than the window (an id evicted and seen again in the same commit).
    let steps: &[(&[&str], usize)] = &[
        (&["a", "b", "c"], 3),
        (&["a", "d"], 3),
        (&["e", "b", "b"], 3),
        (&["f"], 1),
        (&["g", "h"], 5),
        (&["i", "g", "j", "k", "l", "i"], 2),
        (&[], 0),
        (&["m"], 4),
    ];
    let all = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
    ];
    for (n, (ids, window)) in steps.iter().enumerate() {
        let mut c = Changes::new(*window);
        for id in *ids {
            c.replay.push(rk("p", id));
            m.remember(rk("p", id), *window);
        }
        s.commit(&c, &checkpoint(n as i64)).unwrap();
        for id in all {
            assert_eq!(
                s.seen(&rk("p", id)).unwrap(),
                m.seen(&rk("p", id)),
                "step {n} id {id}"
            );
        }
    }
    let expected = all.iter().filter(|id| m.seen(&rk("p", id))).count() as u64;
    assert_eq!(s.replay_len(), expected);
    drop(s);
    assert_eq!(open(&dir).replay_len(), expected);
}

#[test]
fn a_failed_commit_leaves_the_previous_checkpoint_and_data() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let mut c = Changes::new(2);
    c.artifacts.push((key("p", "a"), record(1, false)));
    c.replay.push(rk("p", "i1"));
    c.replay.push(rk("p", "i2"));
    s.commit(&c, &checkpoint(1)).unwrap();

    // Fails in the engine, after the whole batch was planned.
    let mut bad = Changes::new(2);
    bad.artifacts.push((key("p", "a"), record(2, false)));
    bad.artifacts
        .push((key("new-product", "x"), record(1, false)));
    bad.usage.push(("p".into(), 5, 1));
    bad.replay.push(rk("p", "i3"));
    s.fail_next_commit
        .store(true, std::sync::atomic::Ordering::Release);
    assert!(s.commit(&bad, &checkpoint(2)).is_err());
    // Fails while planning, half-way through the changes (an owner too long to encode).
    let mut half = bad.clone();
    half.artifacts.push((
        key("p", "b"),
        ArtifactRecord {
            owner_id: "o".repeat(70_000),
            ..record(1, false)
        },
    ));
    assert!(matches!(
        s.commit(&half, &checkpoint(2)),
        Err(StateStoreError::TooLong(70_000))
    ));

    let check = |s: &StateStore| {
        assert_eq!(s.checkpoint().unwrap(), Some(checkpoint(1)));
        assert_eq!(s.artifact(&key("p", "a")).unwrap(), Some(record(1, false)));
        assert_eq!(s.artifact(&key("new-product", "x")).unwrap(), None);
        assert!(s.usage_all().unwrap().is_empty());
        assert!(s.seen(&rk("p", "i1")).unwrap());
        assert!(!s.seen(&rk("p", "i3")).unwrap());
        assert_eq!(s.replay_len(), 2);
    };
    check(&s);
    drop(s);
    let s = open(&dir);
    check(&s);
    // The store goes on from the previous state.
    s.commit(&bad, &checkpoint(2)).unwrap();
    assert!(!s.seen(&rk("p", "i1")).unwrap());
    assert!(s.seen(&rk("p", "i3")).unwrap());
    assert_eq!(
        s.artifact(&key("new-product", "x")).unwrap(),
        Some(record(1, false))
    );
}

#[test]
fn a_store_of_another_identity_or_generation_is_refused_until_wiped() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.commit(&Changes::new(1), &checkpoint(1)).unwrap();
    drop(s);
    let mut other = identity();
    other.partition = 4;
    assert!(matches!(
        StateStore::open(dir.path(), &other, CACHE),
        Err(StateStoreError::Identity { .. })
    ));
    let mut other = identity();
    other.cluster = "group-b".into();
    assert!(matches!(
        StateStore::open(dir.path(), &other, CACHE),
        Err(StateStoreError::Identity { .. })
    ));
    let mut newer = identity();
    newer.generation = STORE_GENERATION + 1;
    let refused = StateStore::open(dir.path(), &newer, CACHE).unwrap_err();
    assert!(matches!(
        refused,
        StateStoreError::Generation {
            found: STORE_GENERATION,
            ..
        }
    ));
    assert!(refused.wipe_and_rebuild());
    // A file that is not a store is refused as damaged too.
    let junk = TempDir::new().unwrap();
    std::fs::write(junk.path().join("state.redb"), vec![7u8; 8192]).unwrap();
    let err = StateStore::open(junk.path(), &identity(), CACHE).unwrap_err();
    assert!(err.wipe_and_rebuild(), "{err:?}");
    // A store open twice is not damaged: retry, do not wipe.
    let other_dir = TempDir::new().unwrap();
    let held = open(&other_dir);
    let again = StateStore::open(held.dir(), &identity(), CACHE).unwrap_err();
    assert!(!again.wipe_and_rebuild(), "{again:?}");
    // Still intact for its own identity; gone after a wipe.
    assert_eq!(open(&dir).checkpoint().unwrap(), Some(checkpoint(1)));
    StateStore::wipe(dir.path()).unwrap();
    StateStore::wipe(dir.path()).unwrap();
    let s = StateStore::open(dir.path(), &newer, CACHE).unwrap();
    assert_eq!(s.checkpoint().unwrap(), None);
    assert_eq!(
        StateStore::dir_for(std::path::Path::new("/state"), "bucket.audit", 2),
        std::path::PathBuf::from("/state/bucket.audit-2")
    );
}

#[test]
fn changes_record_a_decision_as_partition_state_does() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let mut m = PartitionState::default();
    let decisions = [
        decision(Some(("p", "a", record(1, false))), 100, 1, Some("i1"), true),
        decision(
            Some(("p", "a", record(2, false))),
            -400,
            0,
            Some("i2"),
            false,
        ),
        decision(None, 0, 0, Some("i3"), true),
        decision(Some(("q", "b", record(1, false))), 5, 1, None, false),
    ];
    let mut c = Changes::new(2);
    for d in &decisions {
        c.record(d);
        m.record(d, 2);
    }
    // Offender states are copied once, at the end, from the partition state.
    assert!(c.offenders.is_empty());
    c.settle_offenders(&m);
    assert_eq!(c.offenders.len(), 1);
    s.commit(&c, &checkpoint(1)).unwrap();
    for (p, a) in [("p", "a"), ("q", "b")] {
        assert_eq!(
            s.artifact(&key(p, a)).unwrap().as_ref(),
            m.artifact(&key(p, a))
        );
    }
    for i in ["i1", "i2", "i3"] {
        assert_eq!(s.seen(&rk("p", i)).unwrap(), m.seen(&rk("p", i)));
    }
    assert_eq!(&s.usage_all().unwrap(), m.usage_by_product());
    assert_eq!(s.rate_all().unwrap()["p"], m.rate_tat("p"));
    assert_eq!(s.offenders_all().unwrap().get("int"), m.offender("int"));
}

fn decision(
    effect: Option<(&str, &str, ArtifactRecord)>,
    size_delta: i64,
    artifact_delta: i64,
    replay: Option<&str>,
    offender: bool,
) -> Decision {
    Decision {
        outcome: if effect.is_some() {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        },
        findings: vec![],
        version: effect.as_ref().map(|e| e.2.version),
        effect: effect.map(|(p, a, record)| Effect {
            key: key(p, a),
            record,
        }),
        size_delta,
        decided_at: 0,
        policy_version: "v".into(),
        replay_key: replay.map(|i| rk("p", i)),
        artifact_delta,
        rate_tat: Some(("p".into(), size_delta * 3)),
        offender: offender.then(|| OffenderChange {
            integration: "int".to_string(),
            dropped: 1,
            added: Some(size_delta),
            cooling_until: Some(1),
        }),
        counted_rejection: false,
        events: vec![],
    }
}
