//! The client libraries in `clients/` (Python, Java, Go) end to end against the real stack: a
//! gate on random topics, the sink with its audit indexer, and `bucket api` with a tokens file
//! holding a fresh token for the product. Each client's own test suite runs with `BUCKET_E2E=1`
//! (pytest, Maven Surefire, go test), which runs that client's worked example: an Ed25519 and an
//! HMAC intent that must be accepted and a re-serialised one that must be rejected
//! `SIGNATURE_INVALID`. Each example reads its answers through the read API's receipt endpoint
//! (`GET /v1/products/{product}/decisions/{intent_id}`) when this build's API serves it
//! (`docs/openapi.json` lists it); independently of that, this harness checks every intent the
//! clients report against `bucket.audit`.
//!
//! Toolchains are cached: a venv in `${BUCKET_CACHE_DIR:-~/.cache/bhiv-bucket}/venv-clients-py`,
//! Maven's `~/.m2`, Go's module cache. A missing toolchain (`mvn`, `go`, `python3`) fails the test.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bhiv_bucket::core::partitioner::home_partition;
use common::*;
use sha2::{Digest, Sha256};

const PARTITIONS: i32 = 6;
/// The product the examples write for; its integration is `<product>-backend`.
const PRODUCT: &str = "ai_assistant";
/// Pinned Python packages of `clients/python` (its pyproject.toml) and its tests.
const PY_PACKAGES: [&str; 4] = [
    "confluent-kafka==2.14.2",
    "fastavro==1.13.1",
    "cryptography==50.0.2",
    "pytest==9.2.0",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    std::env::var("BUCKET_CACHE_DIR").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/bhiv-bucket"),
        PathBuf::from,
    )
}

/// The clients' venv, created once with the pinned packages.
fn ensure_venv() -> PathBuf {
    let dir = cache_dir().join("venv-clients-py");
    let python = dir.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args([
                "-c",
                "import confluent_kafka, fastavro, cryptography, pytest",
            ])
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
            .args(PY_PACKAGES)
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install {PY_PACKAGES:?} failed");
        assert!(ready(), "packages installed but do not import");
    }
    python
}

/// Whether this build's read API serves decision receipts (its OpenAPI document lists them).
fn api_serves_receipts() -> bool {
    bhiv_bucket::api::OPENAPI_JSON.contains("\"/v1/products/{product}/decisions/{intent_id}\"")
}

/// A tokens file with one fresh token for `product`; returns (file, token).
fn tokens_file(sfx: &str, product: &str) -> (PathBuf, String) {
    let token = format!("clients-{}", uuid::Uuid::new_v4());
    let sha = hex::encode(Sha256::digest(token.as_bytes()));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tokens{sfx}.toml"));
    std::fs::write(
        &path,
        format!(
            "[[tokens]]\nname = \"clients{sfx}\"\nproduct = \"{product}\"\nsha256 = \"{sha}\"\n"
        ),
    )
    .unwrap();
    (path, token)
}

/// Runs one client's test command with the e2e environment; panics with its output on failure.
fn run_client(name: &str, mut cmd: Command, env: &[(&str, String)]) {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_java_and_go_clients_produce_and_read_their_answers() {
    let python = ensure_venv();
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    // The clients look the approved id up under bucket.intents-value; make sure it exists.
    registry().apply_all().await.unwrap();
    let group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &group, "g1");

    let receipts = api_serves_receipts();
    let mut env = vec![
        ("BUCKET_E2E", "1".to_string()),
        ("BUCKET_BROKERS", brokers()),
        ("BUCKET_REGISTRY_URL", registry_url()),
        ("BUCKET_INTENTS_TOPIC", topics.intents.clone()),
        ("BUCKET_PRODUCT", PRODUCT.to_string()),
        (
            "BUCKET_KEYS_DIR",
            root().join("deploy/demo/keys").display().to_string(),
        ),
    ];
    let out_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("clients{sfx}.jsonl"));
    env.push(("BUCKET_E2E_OUT", out_file.display().to_string()));
    // The sink (with its audit indexer) and the API exist only to answer receipts.
    let mut _stack = Vec::new();
    if receipts {
        let db = fresh_database(&sfx).await;
        _stack.push(spawn(
            &format!("sink{sfx}"),
            &["sink", "--migrate", "--group", &format!("sink{sfx}")],
            &[
                ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
                ("BUCKET_PG_URL", db.clone()),
            ],
        ));
        // The API needs the sink's schema: wait for its migrations.
        let started = std::time::Instant::now();
        while pg_count(&db, "SELECT count(*) FROM artifact_versions").await < 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the sink did not migrate its database within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (tokens, token) = tokens_file(&sfx, PRODUCT);
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        _stack.push(spawn(
            &format!("api{sfx}"),
            &[
                "api",
                "--listen",
                &listen,
                "--tokens",
                &tokens.display().to_string(),
            ],
            &[("BUCKET_API_PG_URL", url_as_role(&db, "bucket_reader"))],
        ));
        wait_until(Duration::from_secs(30), "the read API to listen", || {
            std::net::TcpStream::connect(&listen).is_ok()
        });
        env.push(("BUCKET_API_URL", format!("http://{listen}")));
        env.push(("BUCKET_API_TOKEN", token));
    } else {
        eprintln!(
            "this build's read API has no receipt endpoint yet: the clients produce, and \
             the decisions are checked on bucket.audit only"
        );
    }

    let clients = root().join("clients");
    let mut py = Command::new(&python);
    py.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(clients.join("python"))
        .env("PYTHONPATH", clients.join("python/src"));
    run_client("python (pytest)", py, &env);
    let mut mvn = Command::new("mvn");
    mvn.args(["-q", "-B", "test"])
        .current_dir(clients.join("java"));
    run_client("java (mvn test)", mvn, &env);
    let mut go = Command::new("go");
    go.args(["test", "-count=1", "./..."])
        .current_dir(clients.join("go"));
    run_client("go (go test)", go, &env);

    // Every reported intent is decided as its client expected, on bucket.audit too.
    let text = std::fs::read_to_string(&out_file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut by_client: HashMap<String, usize> = HashMap::new();
    let mut expected = HashMap::new();
    for l in &lines {
        *by_client
            .entry(l["client"].as_str().unwrap().to_string())
            .or_default() += 1;
        let at = (
            l["partition"].as_i64().unwrap() as i32,
            l["offset"].as_i64().unwrap(),
        );
        assert_eq!(
            at.0,
            home_partition(PRODUCT.as_bytes(), PARTITIONS),
            "{l}: not on the murmur2 home partition"
        );
        expected.insert(at, l.clone());
    }
    for client in ["python", "java", "go"] {
        assert_eq!(
            by_client.get(client),
            Some(&3),
            "{client} reported 3 intents"
        );
    }
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(90));
    let mut seen = 0;
    for r in read_committed(&topics.audit) {
        let e = common::decode_audit(r.value.as_deref()).unwrap();
        let Some(d) = e.decision else { continue };
        let Some(l) = expected.get(&(d.source_partition, d.source_offset)) else {
            continue;
        };
        seen += 1;
        assert_eq!(d.intent_id.as_deref(), l["intent_id"].as_str(), "{l}");
        let want: Vec<String> = l["expect_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        assert_eq!(d.reasons, want, "{l}: {}", d.detail);
        assert_eq!(d.accepted, l["expect_outcome"] == "ACCEPTED", "{l}");
        if d.accepted {
            assert!(d.authenticated, "{l}");
            assert_eq!(d.version, Some(1), "{l}");
        }
        if receipts {
            assert_eq!(l["outcome"], l["expect_outcome"], "{l}: receipt");
        }
    }
    assert_eq!(seen, expected.len(), "every client intent has a decision");
}
