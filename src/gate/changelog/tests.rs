//! Live equals restored from the changelog: random commit sequences applied to the in-memory
//! state and to a store, with the changelog records of each commit appended to a log; a store
//! loaded from that log (whole, or compacted to the latest value per key, with records of an
//! older epoch mixed in) holds exactly what the live store holds.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use tempfile::TempDir;

use super::codec::{decode, encode};
use super::*;
use crate::core::state::{ArtifactKey, ArtifactRecord, Effect, OffenderState};
use crate::gate::store::{
    ExportCursor, ReplayCounters, StateStore, StoreCheckpoint, StoreIdentity,
};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, i64, bool),
    Usage(u8, i64, i64),
    Rate(u8, i64),
    Offender(u8, Vec<i64>),
    Remember(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, 0..8u8, 1..5i64, any::<bool>()).prop_map(|(p, a, v, d)| Op::Put(p, a, v, d)),
        (0..3u8, -500..500i64, -2..3i64).prop_map(|(p, b, a)| Op::Usage(p, b, a)),
        (0..3u8, any::<i64>()).prop_map(|(p, t)| Op::Rate(p, t)),
        (0..2u8, prop::collection::vec(any::<i64>(), 0..3)).prop_map(|(i, r)| Op::Offender(i, r)),
        (0..3u8, 0..16u8).prop_map(|(p, i)| Op::Remember(p, i)),
    ]
}

fn open(dir: &TempDir) -> StateStore {
    let id = StoreIdentity::new("c", "bucket.intents", "bucket.audit", 0);
    StateStore::open(dir.path(), &id, 8 << 20).unwrap()
}

fn head_of(n: i64, m: &PartitionState, replay_head: u64) -> Head {
    let (next, window) = m.replay_counters();
    Head {
        audit_next_seq: n + 1,
        audit_hash: format!("hash-{n}"),
        last_decided_offset: n * 2,
        policy_version: "p".into(),
        control_next: 0,
        replay_head,
        replay_next: next,
        replay_window: window,
        replay_ring: 1024,
        tree_edge: vec![crate::tlog::Hash([n as u8; 32])],
    }
}

/// Every entry of a store, as a set.
fn contents(s: &StateStore) -> BTreeSet<String> {
    let mut cursor = ExportCursor::default();
    let mut out = BTreeSet::new();
    loop {
        let chunk = s.export(&mut cursor, 3).unwrap();
        if chunk.is_empty() {
            return out;
        }
        out.extend(chunk.into_iter().map(|e| format!("{e:?}")));
    }
}

/// What a restore does with a changelog partition: the latest head, then its epoch's entries
/// (replay ids inside the head's window) imported in log order, in small chunks.
fn load(log: &[(Vec<u8>, Vec<u8>)], into: &StateStore) -> Option<Head> {
    let (epoch, head) = log.iter().rev().find_map(|(k, v)| match decode(k, v) {
        Ok((e, Record::Head(h))) => Some((e, h)),
        _ => None,
    })?;
    let mut chunk = Vec::new();
    for (k, v) in log {
        let (e, record) = decode(k, v).unwrap();
        match record {
            Record::State(StateEntry::Seen(_, p))
                if p < head.replay_head || p >= head.replay_next => {}
            Record::State(entry) if e == epoch => chunk.push(entry),
            _ => {}
        }
        if chunk.len() == 2 {
            into.import(&chunk).unwrap();
            chunk.clear();
        }
    }
    into.import(&chunk).unwrap();
    let counters = ReplayCounters {
        head: head.replay_head,
        next: head.replay_next,
        window: head.replay_window,
    };
    let checkpoint = super::read::checkpoint_of(&head, 0);
    into.finish_import(counters, &checkpoint).unwrap();
    Some(head)
}

/// The log compacted: the latest record of each key, in log order.
fn compacted(log: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let last: HashMap<&Vec<u8>, usize> = log.iter().enumerate().map(|(i, (k, _))| (k, i)).collect();
    log.iter()
        .enumerate()
        .filter(|(i, (k, _))| last.get(k) == Some(i))
        .map(|(_, r)| r.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn a_store_loaded_from_the_changelog_equals_the_live_one(
        commits in prop::collection::vec((prop::collection::vec(op(), 0..10), 1..6usize), 1..10),
        stale in prop::collection::vec(op(), 0..6),
    ) {
        let live_dir = TempDir::new().unwrap();
        let live = open(&live_dir);
        let mut m = PartitionState::default();
        let product = |p: u8| format!("product-{p}");
        let mut log = Vec::new();
        // Entries of an older epoch (a changelog written before a rebuild): ignored.
        for op in &stale {
            if let Op::Put(p, a, v, d) = op {
                let key = ArtifactKey { product_id: product(*p), artifact_id: format!("a{a}") };
                let record = ArtifactRecord { version: *v + 100, owner_id: "old".into(), artifact_class: "document".into(), size: 1, deleted: *d };
                log.push(encode(1, 1024, &Record::State(StateEntry::artifact(key, &record).unwrap())).unwrap());
            }
        }
        let epoch = 2;
        for (n, (ops, window)) in commits.iter().enumerate() {
            let mut c = Changes::new(*window);
            for op in ops {
                match op {
                    Op::Put(p, a, v, d) => {
                        let e = Effect {
                            key: ArtifactKey { product_id: product(*p), artifact_id: format!("a{a}") },
                            record: ArtifactRecord { version: *v, owner_id: "o".into(), artifact_class: "document".into(), size: 7, deleted: *d },
                        };
                        c.artifacts.push((e.key.clone(), e.record.clone()));
                        m.apply(&e);
                    }
                    Op::Usage(p, b, a) => {
                        c.usage.push((product(*p), *b, *a));
                        m.add_usage(&product(*p), *b, *a);
                    }
                    Op::Rate(p, t) => {
                        c.rates.push((product(*p), *t));
                        m.set_rate_tat(&product(*p), *t);
                    }
                    Op::Offender(i, r) => {
                        let o = OffenderState { rejections: r.iter().copied().collect(), cooling_until: None };
                        c.offenders.push((format!("int-{i}"), o.clone()));
                        m.set_offender(format!("int-{i}"), o);
                    }
                    Op::Remember(p, i) => {
                        let k = (product(*p), format!("id-{i}"));
                        c.replay.push(k.clone());
                        m.remember(k, *window);
                    }
                }
            }
            let (committed_head, _) = live.replay_counters();
            let (next, _) = m.replay_counters();
            let head = head_of(n as i64, &m, replay_head_after(&c, committed_head, next));
            for r in records_for(&c, &m, head.clone()).unwrap() {
                log.push(encode(epoch, 1024, &r).unwrap());
            }
            live.commit(&c, &super::read::checkpoint_of(&head, 0)).unwrap();
            prop_assert_eq!(live.replay_counters(), (head.replay_head, head.replay_next),
                "the head's replay window is the store's");
        }
        let want = contents(&live);
        for log in [log.clone(), compacted(&log)] {
            let dir = TempDir::new().unwrap();
            let restored = open(&dir);
            prop_assert!(load(&log, &restored).is_some());
            prop_assert_eq!(&contents(&restored), &want);
            prop_assert_eq!(restored.replay_counters(), live.replay_counters());
            prop_assert_eq!(restored.checkpoint().unwrap(), live.checkpoint().unwrap());
        }
    }
}

#[test]
fn an_export_reimported_is_the_same_store() {
    let a_dir = TempDir::new().unwrap();
    let a = open(&a_dir);
    let mut c = Changes::new(3);
    for i in 0..10 {
        c.artifacts.push((
            ArtifactKey {
                product_id: format!("p{}", i % 3),
                artifact_id: format!("x{i}"),
            },
            ArtifactRecord {
                version: 1,
                owner_id: "o".into(),
                artifact_class: "document".into(),
                size: i,
                deleted: false,
            },
        ));
        c.usage.push((format!("p{}", i % 3), 10, 1));
        c.replay.push((
            format!("p{}", i % 3),
            format!("00000000-0000-4000-8000-0000000000{i:02x}"),
        ));
    }
    let cp = StoreCheckpoint {
        audit_next_seq: 11,
        audit_hash: "h".into(),
        audit_offset: 20,
        last_decided_offset: 9,
        policy_version: "p".into(),
        control_next: 0,
        tree_edge: vec![crate::tlog::Hash([1; 32]), crate::tlog::Hash([2; 32])],
    };
    a.commit(&c, &cp).unwrap();
    let b_dir = TempDir::new().unwrap();
    let b = open(&b_dir);
    let mut cursor = ExportCursor::default();
    let mut seen = 0;
    loop {
        let chunk = a.export(&mut cursor, 4).unwrap();
        if chunk.is_empty() {
            break;
        }
        seen += chunk
            .iter()
            .filter(|e| matches!(e, StateEntry::Seen(..)))
            .count();
        b.import(&chunk).unwrap();
    }
    assert_eq!(seen, 3, "only the window's ids are exported");
    let (head, next) = a.replay_counters();
    b.finish_import(
        ReplayCounters {
            head,
            next,
            window: 3,
        },
        &cp,
    )
    .unwrap();
    assert_eq!(contents(&a), contents(&b));
    assert_eq!(b.checkpoint().unwrap(), Some(cp));
    assert_eq!(b.len_artifacts().unwrap(), 10);
}
