//! The tiles service's tests: restarts end equal to a rebuild, foreign notes are never published.

use super::*;
use crate::audit::tlog_index::Key;
use crate::core::events::CHECKPOINT;
use crate::core::signature::SignKey;
use crate::tlog::Frontier;
use crate::tlog::NoteSigner;
use crate::tlog::checkpoint::{key_name, origin};
use crate::wire::audit::{AuditEvent, DecisionRecord, GovernanceRecord, StoredLink};

fn signer() -> NoteSigner {
    NoteSigner::new(&key_name("t"), &SignKey::ed25519_from_seed(&[4; 32])).unwrap()
}

#[test]
fn one_tiles_service_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let held = lock_dir(dir.path()).unwrap();
    let e = lock_dir(dir.path()).unwrap_err();
    assert!(matches!(e, TilesError::Locked(_)), "{e}");
    drop(held);
    lock_dir(dir.path()).unwrap();
}

fn options(dir: &Path) -> TilesOptions {
    TilesOptions {
        brokers: String::new(),
        topic: String::new(),
        dir: dir.to_path_buf(),
        follow: false,
        keys: vec![signer().verifier()],
        save_every: Duration::from_secs(1),
    }
}

/// Link `seq` of partition 1: a decision, or a CHECKPOINT carrying `note`.
fn link(seq: u64, note: Option<String>) -> (Vec<u8>, StoredLink) {
    let mut e = AuditEvent {
        seq: seq as i64,
        prev_hash: String::new(),
        hash: String::new(),
        recorded_at: 0,
        gate_id: "g".into(),
        policy_version: "p".into(),
        decision: None,
        governance: None,
    };
    match note {
        Some(n) => {
            e.governance = Some(GovernanceRecord {
                event_type: CHECKPOINT.into(),
                detail: serde_json::json!({"partition": 1, "note": n}).to_string(),
            });
        }
        None => {
            e.decision = Some(DecisionRecord {
                accepted: true,
                intent_id: Some(format!("intent-{seq}")),
                product_id: Some("prod".into()),
                artifact_id: Some("art".into()),
                version: Some(seq as i64),
                ..Default::default()
            });
        }
    }
    let bytes = format!("link {seq} {}", e.governance.is_some()).into_bytes();
    let stored = StoredLink {
        event: e,
        version: 1,
        stored_hash: String::new(),
    };
    (bytes, stored)
}

/// The records of a log with a CHECKPOINT (with a correct note) every 100 links.
fn log_records(n: u64) -> Vec<(Vec<u8>, StoredLink)> {
    let mut tree = Frontier::new();
    let mut out = Vec::new();
    for seq in 0..n {
        let note = (seq > 0 && seq % 100 == 0).then(|| {
            let head = TreeHead::new(origin("t", 1), tree.size(), tree.root());
            signer().sign(&head.to_text().unwrap()).unwrap()
        });
        let (bytes, l) = link(seq, note);
        tree.append_bytes(&bytes);
        out.push((bytes, l));
    }
    out
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn restarts_from_any_saved_point_end_equal_to_a_rebuild() {
    let records = log_records(1300);
    let m = TilesMetrics::default();
    let rebuilt = tempfile::tempdir().unwrap();
    let o = options(rebuilt.path());
    let mut log = Log::open(rebuilt.path(), 1).unwrap();
    for (i, (b, l)) in records.iter().enumerate() {
        log.apply(&o, &m, i as i64 * 2, Some(b), Ok(l.clone()))
            .unwrap();
    }
    log.save().unwrap();
    assert_eq!(log.published, 1200);

    // Crash (drop without saving) at many points; a save now and then.
    let live = tempfile::tempdir().unwrap();
    let o = options(live.path());
    let mut rng = 7u64;
    let mut log = Log::open(live.path(), 1).unwrap();
    loop {
        let from = usize::try_from((log.next_offset + 1) / 2).unwrap();
        if from >= records.len() {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let upto = (from + 1 + (rng % 300) as usize).min(records.len());
        for (i, (b, l)) in records.iter().enumerate().take(upto).skip(from) {
            log.apply(&o, &m, i as i64 * 2, Some(b), Ok(l.clone()))
                .unwrap();
            if rng.is_multiple_of(5) && i % 37 == 0 {
                log.save().unwrap();
            }
        }
        if upto == records.len() || rng.is_multiple_of(3) {
            log.save().unwrap();
        }
        log = Log::open(live.path(), 1).unwrap();
    }
    assert_eq!(snapshot(live.path()), snapshot(rebuilt.path()));
    // The index finds decisions of the rebuilt log.
    let hits =
        crate::audit::tlog_index::lookup(live.path(), &Key::Intent("intent-777".into())).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].seq, 777);
    let b = crate::audit::prove::prove(live.path(), 1, 777).unwrap();
    let v = crate::tlog::verify_bundle(&b, &[signer().verifier()]).unwrap();
    assert_eq!((v.tree_size, v.index), (1200, 777));
    assert!(matches!(
        crate::audit::prove::prove(live.path(), 1, 1250),
        Err(crate::audit::prove::ProveError::NotYetCheckpointed { size: 1200, .. })
    ));
}

#[test]
fn a_note_with_another_root_or_key_is_never_published() {
    let m = TilesMetrics::default();
    let records = log_records(150);
    for (case, note) in [
        ("root", {
            let head = TreeHead::new(origin("t", 1), 100, crate::tlog::leaf_hash(b"x"));
            signer().sign(&head.to_text().unwrap()).unwrap()
        }),
        ("key", {
            let other =
                NoteSigner::new(&key_name("t"), &SignKey::ed25519_from_seed(&[5; 32])).unwrap();
            let good = records[100].1.event.governance.clone().unwrap().detail;
            let v: serde_json::Value = serde_json::from_str(&good).unwrap();
            let text = unverified_text(v["note"].as_str().unwrap()).unwrap();
            other.sign(&text).unwrap()
        }),
        ("origin", {
            let mut tree = Frontier::new();
            for (b, _) in &records[..100] {
                tree.append_bytes(b);
            }
            let head = TreeHead::new(origin("t", 2), 100, tree.root());
            signer().sign(&head.to_text().unwrap()).unwrap()
        }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = options(dir.path());
        let mut log = Log::open(dir.path(), 1).unwrap();
        for (i, (b, l)) in records[..100].iter().enumerate() {
            log.apply(&o, &m, i as i64, Some(b), Ok(l.clone())).unwrap();
        }
        let (b, _) = &records[100];
        let err = log
            .apply(&o, &m, 100, Some(b), Ok(link(100, Some(note)).1))
            .unwrap_err();
        match case {
            "root" => assert!(matches!(err, TilesError::Mismatch { size: 100, .. })),
            _ => assert!(matches!(err, TilesError::BadNote { .. }), "{case}: {err}"),
        }
        assert!(!dir.path().join("1/checkpoint").exists(), "{case}");
    }
    assert_eq!(m.checkpoint_mismatches.get(), 1);
}
