//! Policy approvals with signatures made by the real `ssh-keygen -Y sign` (Debian package
//! openssh-client; `deploy/test.sh` installs it): k−1 approvals refused, k loaded, a policy
//! edited by one byte after signing refused, a signer who is an approver only in the new policy
//! not counted, another namespace refused, a duplicate counted once, an unapproved start policy
//! stops the gate; and a running gate, on a file change and on SIGHUP alike, refuses a change with
//! one approval and loads it with two, both outcomes in the audit chain, re-checked by
//! `bucket audit verify`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bhiv_bucket::core::Policy;
use bhiv_bucket::policy::approvals::{self, Approvals, ReloadCheck};
use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 2;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn approvers_dir() -> PathBuf {
    root().join("deploy/demo/approvers")
}

fn pin_file() -> PathBuf {
    approvers_dir().join("allowed_signers")
}

/// Signs `file` as demo approver `name` (DEMO ONLY key) in `namespace` with the real
/// `ssh-keygen`, returning the armored signature.
fn ssh_sign(name: &str, namespace: &str, file: &Path) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join(name);
    std::fs::copy(approvers_dir().join(name), &key).unwrap();
    // ssh-keygen refuses a private key others can read (git does not keep 0600).
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(&key)
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen (Debian openssh-client; deploy/test.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "ssh-keygen -Y sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A policy folder: `policy.toml` (the shipped policy with `edit` applied) and `demo` (the
/// HMAC secrets it references).
struct PolicyDir {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PolicyDir {
    fn new() -> PolicyDir {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(root().join("deploy/demo"), dir.path().join("demo")).unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::copy(root().join("deploy/policy.toml"), &path).unwrap();
        // The shipped policy's own approvals (by the pinned demo approvers).
        let approvals = approvals::approvals_dir(&path);
        std::fs::create_dir_all(&approvals).unwrap();
        for e in std::fs::read_dir(root().join("deploy/policy.toml.approvals")).unwrap() {
            let e = e.unwrap().path();
            std::fs::copy(&e, approvals.join(e.file_name().unwrap())).unwrap();
        }
        PolicyDir { _dir: dir, path }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    fn approvals(&self) -> PathBuf {
        approvals::approvals_dir(&self.path)
    }

    /// Replaces the signatures with those of `signers` ((name, namespace)) over `text`, then
    /// the policy file itself (renamed into place, so a watching gate sees one change).
    fn publish(&self, text: &str, signers: &[(&str, &str)]) {
        let staged = self.path.with_extension("next");
        std::fs::write(&staged, text).unwrap();
        let _ = std::fs::remove_dir_all(self.approvals());
        std::fs::create_dir_all(self.approvals()).unwrap();
        for (i, (name, ns)) in signers.iter().enumerate() {
            let sig = ssh_sign(name, ns, &staged);
            std::fs::write(self.approvals().join(format!("{i}-{name}.sig")), sig).unwrap();
        }
        std::fs::rename(&staged, &self.path).unwrap();
    }

    /// Adds a signature by `name` of the current file.
    fn add_signature(&self, name: &str) {
        let sig = ssh_sign(name, "bucket-policy", &self.path);
        std::fs::write(self.approvals().join(format!("late-{name}.sig")), sig).unwrap();
    }
}

fn shipped() -> (Policy, String) {
    bhiv_bucket::policy::file::load(&root().join("deploy/policy.toml")).unwrap()
}

/// Enforcing, as a gate started on the shipped policy with the demo pin.
fn enforcing() -> Approvals {
    let pin = approvals::read_pin(&pin_file(), 2).unwrap();
    let (_, text) = shipped();
    Approvals::at_start(pin, &root().join("deploy/policy.toml"), &text).unwrap()
}

fn check(dir: &PolicyDir) -> ReloadCheck {
    let (active, _) = shipped();
    enforcing().check_reload(&active, &dir.path, &dir.text())
}

fn refused_because(c: &ReloadCheck) -> String {
    match c {
        ReloadCheck::Refuse(why, _) => why.clone(),
        ReloadCheck::Load(v) => panic!("loaded: {v}"),
    }
}

fn changed(text: &str) -> String {
    text.replace("max_clock_skew_ms = 300000", "max_clock_skew_ms = 60000")
}

const NS: &str = "bucket-policy";

#[test]
fn k_minus_one_is_refused_and_k_loads() {
    let d = PolicyDir::new();
    let next = changed(&d.text());
    d.publish(&next, &[("alice", NS)]);
    let why = refused_because(&check(&d));
    assert!(why.contains("1 of 2 required"), "{why}");
    d.publish(&next, &[("alice", NS), ("carol", NS)]);
    match check(&d) {
        ReloadCheck::Load(v) => {
            let who: Vec<&str> = v["approval"]["signatures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["approver"].as_str().unwrap())
                .collect();
            assert_eq!(who, ["alice", "carol"], "ECDSA (carol) and Ed25519 (alice)");
            assert_eq!(v["approval"]["policy_text"], next.as_str());
            assert_eq!(v["start_approval"]["approved_under"], "pin");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_policy_edited_by_one_byte_after_signing_is_refused() {
    let d = PolicyDir::new();
    let next = changed(&d.text());
    d.publish(&next, &[("alice", NS), ("bob", NS)]);
    std::fs::write(&d.path, next.replace("60000", "60001")).unwrap();
    let why = refused_because(&check(&d));
    assert!(why.contains("0 of 2"), "{why}");
    assert!(
        why.contains("does not verify over these policy bytes"),
        "{why}"
    );
}

#[test]
fn an_approver_only_of_the_new_policy_does_not_count() {
    let d = PolicyDir::new();
    // The new policy makes dave (bob's key under another name would be a duplicate key, so a
    // fresh key) an approver and is signed by alice and dave: dave is no approver of the active
    // policy.
    let tmp = tempfile::tempdir().unwrap();
    let dave = tmp.path().join("dave");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dave", "-f"])
        .arg(&dave)
        .status()
        .unwrap();
    assert!(st.success());
    let dave_pub = std::fs::read_to_string(dave.with_extension("pub")).unwrap();
    let next = d.text().replace(
        "approvers = [\n",
        &format!(
            "approvers = [\n  {{ name = \"dave\", key = \"{}\" }},\n",
            dave_pub.trim()
        ),
    );
    assert_ne!(next, d.text());
    d.publish(&next, &[("alice", NS)]);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", NS, "-f"])
        .arg(&dave)
        .stdin(std::fs::File::open(&d.path).unwrap())
        .output()
        .unwrap();
    std::fs::write(d.approvals().join("dave.sig"), out.stdout).unwrap();
    let why = refused_because(&check(&d));
    assert!(why.contains("1 of 2"), "{why}");
    assert!(
        why.contains("not an approver of the active policy"),
        "{why}"
    );
}

#[test]
fn another_namespace_is_refused_and_a_duplicate_counts_once() {
    let d = PolicyDir::new();
    let next = changed(&d.text());
    d.publish(&next, &[("alice", NS), ("bob", "file")]);
    let why = refused_because(&check(&d));
    assert!(why.contains("namespace \"file\""), "{why}");
    d.publish(&next, &[("alice", NS), ("alice", NS)]);
    let why = refused_because(&check(&d));
    assert!(why.contains("1 of 2") && why.contains("duplicate"), "{why}");
}

#[test]
fn bucket_policy_check_says_whether_a_file_would_be_loaded() {
    let d = PolicyDir::new();
    let next = changed(&d.text());
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_bucket"))
            .args(["policy", "check"])
            .arg(&d.path)
            .arg("--active")
            .arg(root().join("deploy/policy.toml"))
            .env_remove("BUCKET_CONFIG")
            .output()
            .unwrap()
    };
    d.publish(&next, &[("bob", NS)]);
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("NOT APPROVED") && stdout.contains("1 of 2"),
        "{stdout}"
    );
    d.publish(&next, &[("bob", NS), ("carol", NS)]);
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("APPROVED: it would be loaded"), "{stdout}");
}

#[test]
fn a_gate_does_not_start_on_a_policy_the_pin_did_not_approve() {
    let d = PolicyDir::new();
    d.publish(&changed(&d.text()), &[("alice", NS)]);
    let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(["gate", "--policy"])
        .arg(&d.path)
        .arg("--approvers")
        .arg(pin_file())
        .env_remove("BUCKET_CONFIG")
        .env("BUCKET_BROKERS", "127.0.0.1:1")
        .env("BUCKET_ADMIN_ADDR", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not approved by the pinned approvers") && stderr.contains("1 of 2"),
        "{stderr}"
    );
}

/// Governance events of `type_` in the audit topic, with their details.
fn details(audit_topic: &str, type_: &str) -> Vec<serde_json::Value> {
    read_committed(audit_topic)
        .iter()
        .filter_map(|r| decode_audit(r.value.as_deref()).ok())
        .filter_map(|e| e.governance)
        .filter(|g| g.event_type == type_)
        .map(|g| serde_json::from_str(&g.detail).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gate_refuses_one_approval_and_loads_two_and_verify_rechecks_them() {
    let d = PolicyDir::new();
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let pin = pin_file().to_str().unwrap().to_string();
    let mut gate = spawn(
        &format!("gate{sfx}-approvals"),
        &["gate", "--gate-id", "g1", "--group", &group],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_POLICY", d.path.to_str().unwrap().to_string()),
            ("BUCKET_POLICY_APPROVERS", pin.clone()),
            ("BUCKET_REDIS_URL", "none".into()),
        ],
    );
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    // Decisions on both partitions, so the gate holds both chains.
    produce_all(&producer, mixed_workload(&producer, 40, 7)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));

    // 1. A change with one approval, noticed as a file change: refused.
    let next = changed(&d.text());
    d.publish(&next, &[("alice", NS)]);
    wait_until(Duration::from_secs(60), "POLICY_REFUSED", || {
        details(&topics.audit, "POLICY_REFUSED").len() >= PARTITIONS as usize
    });
    // 2. SIGHUP with nothing changed: the same check, refused again.
    let pid = gate.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_until(Duration::from_secs(60), "a second POLICY_REFUSED", || {
        details(&topics.audit, "POLICY_REFUSED").len() >= 2 * PARTITIONS as usize
    });
    assert!(details(&topics.audit, "POLICY_LOADED").is_empty());
    // 3. A second approver signs: loaded.
    d.add_signature("carol");
    wait_until(Duration::from_secs(60), "POLICY_LOADED", || {
        details(&topics.audit, "POLICY_LOADED").len() >= PARTITIONS as usize
    });
    produce_all(&producer, mixed_workload(&producer, 20, 8)).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    assert!(gate.terminate(Duration::from_secs(30)));

    let refused = details(&topics.audit, "POLICY_REFUSED");
    let r = &refused[0]["approval"];
    assert_eq!(r["required"], 2);
    assert_eq!(r["signatures"][0]["approver"], "alice", "{r}");
    assert_eq!(r["approved"], false);
    assert!(refused[0]["error"].as_str().unwrap().contains("1 of 2"));
    let loaded = details(&topics.audit, "POLICY_LOADED");
    let a = &loaded[0]["approval"];
    let who: Vec<&str> = a["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["approver"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["alice", "carol"]);
    assert!(
        a["signatures"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert!(
        a["signatures"][0]["signature"]
            .as_str()
            .unwrap()
            .contains("BEGIN SSH SIGNATURE")
    );
    assert_eq!(loaded[0]["to"], a["version"]);

    // bucket audit verify re-checks both loads (one per chain) against the approvers in force.
    let verify = |with_pin: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucket"));
        cmd.args(["audit", "verify", "--json", "--group", &group])
            .env_remove("BUCKET_CONFIG")
            .env("BUCKET_BROKERS", brokers())
            .env("BUCKET_REGISTRY_URL", registry_url())
            .env("BUCKET_TOPIC_SUFFIX", &sfx)
            .env("BUCKET_POLICY", &d.path);
        if with_pin {
            cmd.env("BUCKET_POLICY_APPROVERS", &pin);
        }
        let out = cmd.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), report)
    };
    let (ok, report) = verify(true);
    assert!(ok, "{report}");
    assert_eq!(
        report["approvals"]["verified"], PARTITIONS as u64,
        "{report}"
    );
    // Without the operator's pin the start policy's approval cannot be anchored.
    let (ok, report) = verify(false);
    assert!(!ok);
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "APPROVAL_UNANCHORED"),
        "{report}"
    );
}
