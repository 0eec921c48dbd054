//! Issue 17 point 5: our checkpoints, tiles and proofs checked by an implementation we did not
//! write, Go's `golang.org/x/mod/sumdb/note` and `golang.org/x/mod/sumdb/tlog` (the verifier in
//! `tests/tlog-go/`, module from the Go module proxy). A log of 1000 records is written with
//! `bhiv_bucket::tlog`; the verifier must accept it, and must refuse a modified record, a
//! dropped record and a rewritten tail. No Kafka needed; skipped only when `go` is not on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use bhiv_bucket::core::signature::SignKey;
use bhiv_bucket::tlog::checkpoint::{key_name, origin};
use bhiv_bucket::tlog::tiles_fs::FsTileStore;
use bhiv_bucket::tlog::{NoteSigner, ProofBundle, TileBuilder, TileHashReader, TreeHead};

const OLD: u64 = 937;
const NEW: u64 = 1000;

fn record(i: u64) -> Vec<u8> {
    // Different lengths, so a dropped or moved byte shifts everything after it.
    format!("audit link {i} {}", "x".repeat((i * 7 % 300) as usize)).into_bytes()
}

/// Writes the log of `records` to `dir`: full tiles as they complete, partial tiles and a signed
/// checkpoint at each size in `checkpoints`; returns the checkpoint notes.
fn write_log(
    dir: &Path,
    records: &[Vec<u8>],
    checkpoints: &[u64],
    signer: &NoteSigner,
) -> Vec<String> {
    let store = FsTileStore::new(dir);
    let mut b = TileBuilder::new();
    let mut notes = Vec::new();
    for r in records {
        for (id, bytes) in b.push(r).unwrap() {
            store.write(&id, &bytes).unwrap();
        }
        if checkpoints.contains(&b.size()) {
            for (id, bytes) in b.partial_tiles().unwrap() {
                store.write(&id, &bytes).unwrap();
            }
            let head = TreeHead::new(origin("test.bucket", 0), b.size(), b.root());
            let note = signer.sign(&head.to_text().unwrap()).unwrap();
            store.write_checkpoint(&note).unwrap();
            notes.push(note);
        }
    }
    notes
}

struct Go {
    bin: PathBuf,
    vkey: String,
}

impl Go {
    /// Runs the verifier; returns (passed, output).
    fn verify(
        &self,
        dir: &Path,
        new: &Path,
        old: Option<&Path>,
        bundle: Option<&Path>,
    ) -> (bool, String) {
        let mut c = Command::new(&self.bin);
        c.arg("-vkey")
            .arg(&self.vkey)
            .arg("-dir")
            .arg(dir)
            .arg("-new")
            .arg(new);
        if let Some(o) = old {
            c.arg("-old").arg(o);
        }
        if let Some(b) = bundle {
            c.arg("-bundle").arg(b);
        }
        let out = c.output().expect("run the Go verifier");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

fn build_verifier(into: &Path) -> Option<PathBuf> {
    if Command::new("go").arg("version").output().is_err() {
        eprintln!("SKIPPED: `go` is not on PATH; the Go cross-check of src/tlog did not run");
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tlog-go");
    let bin = into.join("tlog-verify");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build of tests/tlog-go failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(bin)
}

#[test]
fn go_verifies_our_log_and_refuses_tampered_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(bin) = build_verifier(tmp.path()) else {
        return;
    };
    let signer = NoteSigner::new(
        &key_name("test.bucket"),
        &SignKey::ed25519_from_seed(&[42; 32]),
    )
    .unwrap();
    let go = Go {
        bin,
        vkey: signer.verifier_key(),
    };
    let records: Vec<Vec<u8>> = (0..NEW).map(record).collect();

    // The honest log: checkpoints at 937 (partial tiles kept) and 1000, a bundle for 500.
    let honest = tmp.path().join("honest");
    let notes = write_log(&honest, &records, &[OLD, NEW], &signer);
    let old = tmp.path().join("old.checkpoint");
    let new = tmp.path().join("new.checkpoint");
    std::fs::write(&old, &notes[0]).unwrap();
    std::fs::write(&new, &notes[1]).unwrap();
    let store = FsTileStore::new(&honest);
    let reader = TileHashReader::new(NEW, &store);
    let bundle = ProofBundle::build(500, &records[500], NEW, &notes[1], &reader).unwrap();
    let bundle_path = tmp.path().join("bundle.json");
    std::fs::write(&bundle_path, bundle.to_json()).unwrap();
    let (ok, out) = go.verify(&honest, &new, Some(&old), Some(&bundle_path));
    assert!(ok, "Go refused our honest log:\n{out}");
    for line in [
        "tree hash from tiles equals",
        "1000 entries hash",
        "consistent with checkpoint 937",
        "bundle proves record 500",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    eprintln!("{out}");
    // An auditor with the bundle and the key only.
    let out = Command::new(&go.bin)
        .args(["-vkey", &go.vkey, "-bundle"])
        .arg(&bundle_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("bundle proves record 500"),
        "{text}"
    );
    // The same bundle as a C2SP tlog-proof, parsed by the Go side from the specification.
    let tlog_proof_path = tmp.path().join("bundle.tlog-proof");
    std::fs::write(&tlog_proof_path, bundle.to_tlog_proof()).unwrap();
    let (ok, out) = go.verify(&honest, &new, None, Some(&tlog_proof_path));
    assert!(
        ok && out.contains("bundle proves record 500"),
        "Go refused our tlog-proof:\n{out}"
    );

    let must_fail = |what: &str, dir: &Path, new: &Path, bundle: Option<&Path>, expect: &str| {
        let (ok, out) = go.verify(dir, new, Some(&old), bundle);
        assert!(!ok, "{what}: Go accepted it:\n{out}");
        assert!(out.contains(expect), "{what}: expected {expect:?}:\n{out}");
        eprintln!("{what}: {}", out.lines().last().unwrap_or_default());
    };

    // 1. A modified record: one byte of entry 300 in its bundle on disk.
    let d = tmp.path().join("modified");
    copy_dir(&honest, &d);
    let path = d.join("tile/entries/001");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = find(&bytes, b"audit link 300 ").unwrap() + 11;
    bytes[at] = b'9';
    std::fs::write(&path, bytes).unwrap();
    must_fail(
        "modified record (entry bundle)",
        &d,
        &new,
        None,
        "entry 300 does not hash",
    );

    // … and in the proof bundle.
    let mut forged = bundle.clone();
    forged.record = base64_of(&record(501));
    let forged_path = tmp.path().join("forged-bundle.json");
    std::fs::write(&forged_path, forged.to_json()).unwrap();
    must_fail(
        "modified record (bundle)",
        &honest,
        &new,
        Some(&forged_path),
        "record 500 is not in the tree",
    );
    let forged_path = tmp.path().join("forged.tlog-proof");
    std::fs::write(&forged_path, forged.to_tlog_proof()).unwrap();
    must_fail(
        "modified record (tlog-proof)",
        &honest,
        &new,
        Some(&forged_path),
        "record 500 is not in the tree",
    );

    // 2. A dropped record: entry 700 cut from its bundle on disk…
    let d = tmp.path().join("dropped-file");
    copy_dir(&honest, &d);
    let path = d.join("tile/entries/002");
    let kept: Vec<Vec<u8>> = (512..768).filter(|i| *i != 700).map(record).collect();
    std::fs::write(
        &path,
        bhiv_bucket::tlog::tiles::encode_entries(&kept).unwrap(),
    )
    .unwrap();
    must_fail(
        "dropped record (entry bundle)",
        &d,
        &new,
        None,
        "holds 255 entries, not 256",
    );

    // … and a log rebuilt without record 700 and signed again with the real key.
    let d = tmp.path().join("dropped-log");
    let mut fewer = records.clone();
    fewer.remove(700);
    let n = write_log(&d, &fewer, &[NEW - 1], &signer);
    let p = tmp.path().join("dropped.checkpoint");
    std::fs::write(&p, &n[0]).unwrap();
    must_fail(
        "dropped record (re-signed log)",
        &d,
        &p,
        None,
        "is not consistent with checkpoint 937",
    );

    // 3. A rewritten tail: records from 900 on replaced, the log re-signed at 1000.
    let d = tmp.path().join("rewritten");
    let mut tail = records.clone();
    for (i, r) in tail.iter_mut().enumerate().skip(900) {
        *r = format!("rewritten {i}").into_bytes();
    }
    let n = write_log(&d, &tail, &[NEW], &signer);
    let p = tmp.path().join("rewritten.checkpoint");
    std::fs::write(&p, &n[0]).unwrap();
    must_fail(
        "rewritten tail (re-signed log)",
        &d,
        &p,
        None,
        "is not consistent with checkpoint 937",
    );

    // A checkpoint signed by another key is refused too.
    let other = NoteSigner::new(
        &key_name("test.bucket"),
        &SignKey::ed25519_from_seed(&[7; 32]),
    )
    .unwrap();
    let p = tmp.path().join("other-key.checkpoint");
    let head = TreeHead::new(origin("test.bucket", 0), NEW, bundle_root(&notes[1]));
    std::fs::write(&p, other.sign(&head.to_text().unwrap()).unwrap()).unwrap();
    must_fail(
        "checkpoint by another key",
        &honest,
        &p,
        None,
        "note signature",
    );
}

fn bundle_root(note: &str) -> bhiv_bucket::tlog::Hash {
    let text = note.split("\n\n").next().unwrap();
    TreeHead::parse(&format!("{text}\n")).unwrap().root
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
