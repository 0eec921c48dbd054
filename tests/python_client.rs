//! The Python worked example of docs/wire-contract.md (`docs/examples/produce_intent.py`) run
//! against the real stack and the real gate: its intents (Ed25519 and HMAC signed) must be
//! ACCEPTED, and its `--tamper` variant rejected `SIGNATURE_INVALID`, as `bucket.audit` says.
//!
//! The venv lives in `${BUCKET_CACHE_DIR:-$HOME/.cache/bhiv-bucket}/venv-client` and is
//! created once (pinned versions below).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const PARTITIONS: i32 = 3;
/// Pinned client packages (install on Python 3.11).
const PACKAGES: [&str; 3] = [
    "confluent-kafka[avro,schemaregistry]==2.14.2",
    "fastavro==1.13.1",
    "cryptography==50.0.2",
];

fn venv() -> PathBuf {
    let cache = std::env::var("BUCKET_CACHE_DIR").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/bhiv-bucket"),
        PathBuf::from,
    );
    cache.join("venv-client")
}

/// Creates the venv and installs the packages unless they already import.
fn ensure_venv() -> PathBuf {
    let dir = venv();
    let python = dir.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import confluent_kafka, fastavro, cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv {} failed", dir.display());
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "-q"])
            .args(PACKAGES)
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install {PACKAGES:?} failed");
        assert!(ready(), "packages installed but do not import");
    }
    python
}

/// Runs the example; returns its JSON line.
fn run_example(python: &PathBuf, topic: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python)
        .args(["-W", "ignore"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/examples/produce_intent.py"
        ))
        .args(["--brokers", &brokers(), "--registry", &registry_url()])
        .args(["--topic", topic])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "produce_intent.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_worked_example_is_accepted_and_tampering_is_refused() {
    let python = ensure_venv();
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    // The example looks the approved id up under bucket.intents-value; make sure it exists.
    registry().apply_all().await.unwrap();
    let group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &group, "g1");

    let cases: [(&[&str], Option<&str>); 4] = [
        (&["--product", "gurukul", "--alg", "ed25519"], None),
        (&["--product", "ai_assistant", "--alg", "hmac"], None),
        (&["--product", "workflow", "--alg", "ed25519"], None),
        (
            &["--product", "gurukul", "--alg", "ed25519", "--tamper"],
            Some("SIGNATURE_INVALID"),
        ),
    ];
    let mut expected = HashMap::new();
    for (args, expect) in cases {
        let out = run_example(&python, &topics.intents, args);
        let at = (
            out["partition"].as_i64().unwrap() as i32,
            out["offset"].as_i64().unwrap(),
        );
        expected.insert(at, (args, expect, out["intent_id"].clone()));
    }
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(90));

    let mut seen = 0;
    for r in read_committed(&topics.audit) {
        let e = common::decode_audit(r.value.as_deref()).unwrap();
        let Some(d) = e.decision else { continue };
        let Some((args, expect, intent_id)) = expected.get(&(d.source_partition, d.source_offset))
        else {
            continue;
        };
        seen += 1;
        assert_eq!(d.intent_id.as_deref(), intent_id.as_str(), "{args:?}");
        match expect {
            None => {
                assert!(d.accepted, "{args:?}: {:?} {}", d.reasons, d.detail);
                assert!(d.authenticated, "{args:?}");
                assert_eq!(d.version, Some(1), "{args:?}");
            }
            Some(reason) => {
                assert!(!d.accepted, "{args:?} was accepted");
                assert_eq!(
                    d.reasons,
                    vec![reason.to_string()],
                    "{args:?}: {}",
                    d.detail
                );
            }
        }
    }
    assert_eq!(seen, expected.len(), "every example intent has a decision");
}
