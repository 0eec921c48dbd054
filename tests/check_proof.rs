//! `bucket audit check-proof BUNDLE --key PUBKEY`: offline, no Kafka. A bundle made with
//! `bhiv_bucket::tlog` passes; a tampered bundle, another key or a malformed key fail with a
//! non-zero exit and a message saying why.

use std::process::Command;

use bhiv_bucket::core::signature::SignKey;
use bhiv_bucket::tlog::checkpoint::{key_name, origin};
use bhiv_bucket::tlog::{MemoryHashes, NoteSigner, ProofBundle, TreeHead, leaf_hash};

fn check(bundle: &std::path::Path, key: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(["audit", "check-proof"])
        .arg(bundle)
        .args(["--key", key])
        .env_remove("BUCKET_CONFIG")
        .output()
        .expect("run bucket");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_proof_accepts_a_good_bundle_and_refuses_tampering() {
    let signer = NoteSigner::new(&key_name("demo"), &SignKey::ed25519_from_seed(&[1; 32])).unwrap();
    let records: Vec<Vec<u8>> = (0..300u32)
        .map(|i| format!("link {i}").into_bytes())
        .collect();
    let mut m = MemoryHashes::new();
    for r in &records {
        m.append(leaf_hash(r));
    }
    let head = TreeHead::new(
        origin("demo", 1),
        300,
        bhiv_bucket::tlog::proof::tree_hash(300, &m).unwrap(),
    );
    let note = signer.sign(&head.to_text().unwrap()).unwrap();
    let bundle = ProofBundle::build(123, &records[123], 300, &note, &m).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, bundle.to_json()).unwrap();
    let (ok, out) = check(&good, &signer.verifier_key());
    assert!(ok, "{out}");
    assert!(
        out.contains("OK: record 123 (8 bytes) is in demo/bucket.audit/1 at tree size 300"),
        "{out}"
    );

    // The same bundle as a C2SP tlog-proof (`prove --format tlog-proof`) passes the same way.
    let text_form = dir.path().join("good.tlog-proof");
    std::fs::write(&text_form, bundle.to_tlog_proof()).unwrap();
    let (ok, out) = check(&text_form, &signer.verifier_key());
    assert!(
        ok && out.contains("OK: record 123 (8 bytes) is in demo/bucket.audit/1"),
        "{out}"
    );
    let tampered = dir.path().join("bad.tlog-proof");
    std::fs::write(
        &tampered,
        bundle.to_tlog_proof().replace("index 123\n", "index 122\n"),
    )
    .unwrap();
    let (ok, out) = check(&tampered, &signer.verifier_key());
    assert!(!ok && out.contains("proof failed"), "{out}");

    let mut t = bundle.clone();
    t.index = 124;
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, t.to_json()).unwrap();
    let (ok, out) = check(&bad, &signer.verifier_key());
    assert!(
        !ok && out.contains("FAIL") && out.contains("proof failed"),
        "{out}"
    );

    let other = NoteSigner::new(&key_name("demo"), &SignKey::ed25519_from_seed(&[2; 32])).unwrap();
    let (ok, out) = check(&good, &other.verifier_key());
    assert!(!ok && out.contains("no signature by a known key"), "{out}");

    // The key string from the public key alone, as an auditor gets it from the policy.
    use base64::Engine;
    let pk = SignKey::ed25519_from_seed(&[1; 32]).public_key().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args([
            "audit",
            "verifier-key",
            "--deployment",
            "demo",
            "--public-key",
        ])
        .arg(base64::engine::general_purpose::STANDARD.encode(pk))
        .env_remove("BUCKET_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        signer.verifier_key()
    );

    let (ok, out) = check(&good, "not-a-key");
    assert!(!ok && out.contains("verifier key"), "{out}");
}
