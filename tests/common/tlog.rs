//! Transparency-log helpers: the demo gate key as a note signer, `bucket audit tiles` as a
//! process, directory snapshots for byte-for-byte comparison, forged logs for the witness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use bhiv_bucket::core::signature::SignKey;
use bhiv_bucket::tlog::checkpoint::{key_name, origin};
use bhiv_bucket::tlog::{FsTileStore, NoteSigner, TileBuilder, TreeHead};

use super::{Proc, spawn};

/// The deployment name the test gates use (the gate's default).
pub const DEPLOYMENT: &str = "bhiv-bucket";

/// The demo gate audit key (deploy/demo/keys, DEMO ONLY) as a note signer of `DEPLOYMENT`.
pub fn demo_note_signer() -> NoteSigner {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/demo/keys/gate.audit1.ed25519"
    ))
    .unwrap();
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
        .try_into()
        .unwrap();
    NoteSigner::new(&key_name(DEPLOYMENT), &SignKey::ed25519_from_seed(&seed)).unwrap()
}

/// The verifier key string of the demo gate key (what `bucket audit verifier-key` prints).
pub fn demo_vkey() -> String {
    demo_note_signer().verifier_key()
}

/// A fresh directory under the target's temp dir.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("tlog")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `bucket audit tiles --dir DIR --key VKEY [extra]` on the suffixed topics.
pub fn spawn_tiles(name: &str, suffix: &str, dir: &Path, extra: &[&str]) -> Proc {
    let dir = dir.display().to_string();
    let vkey = demo_vkey();
    let mut args = vec!["audit", "tiles", "--dir", &dir, "--key", &vkey];
    args.extend_from_slice(extra);
    spawn(name, &args, &[("BUCKET_TOPIC_SUFFIX", suffix.to_string())])
}

/// Every file under `dir` (relative path → bytes), temporary files of interrupted writes
/// (names starting with '.') left out.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Writes a log of `records` for `partition` under `dir/<partition>/` and publishes a
/// checkpoint of size `records.len()` signed by `signer`: a log someone rebuilt.
pub fn write_log(dir: &Path, partition: i32, records: &[Vec<u8>], signer: &NoteSigner) -> String {
    let store = FsTileStore::new(dir.join(partition.to_string()));
    let mut b = TileBuilder::new();
    for r in records {
        for (id, bytes) in b.push(r).unwrap() {
            store.write(&id, &bytes).unwrap();
        }
    }
    for (id, bytes) in b.partial_tiles().unwrap() {
        store.write(&id, &bytes).unwrap();
    }
    let head = TreeHead::new(origin(DEPLOYMENT, partition), b.size(), b.root());
    let note = signer.sign(&head.to_text().unwrap()).unwrap();
    store.write_checkpoint(&note).unwrap();
    note
}

/// The tree size a published checkpoint names.
pub fn checkpoint_size(note: &str) -> u64 {
    let text = bhiv_bucket::tlog::note::unverified_text(note).unwrap();
    TreeHead::parse(&text).unwrap().size
}
