//! Read API against the real stack: produce → gate → sink (+ audit indexer) → PostgreSQL →
//! `bucket api`, product-scoped tokens, and Schemathesis against the served OpenAPI document.

mod common;

use std::time::Duration;

use base64::Engine;
use bhiv_bucket::core::{ArtifactIntent, Operation};
use bhiv_bucket::produce::IntentProducer;
use common::*;
use serde_json::Value;

const TOKEN_A: &str = "demo-ai-assistant-token";
const TOKEN_B: &str = "demo-ai-avatar-token";

fn intent(product: &str, artifact: &str, class: &str, content: Option<Vec<u8>>) -> ArtifactIntent {
    ArtifactIntent {
        content,
        content_type: "application/octet-stream".into(),
        purpose: "api test".into(),
        ..create_intent(product, class, artifact)
    }
}

async fn get(http: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = get(http, url, Some(token)).await;
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_mib_round_trips_byte_for_byte_and_tokens_are_scoped_to_a_product() {
    let sfx = suffix();
    let topics = create_topics(&sfx, 3).await;
    let db = fresh_database(&sfx).await;
    let group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &group, "g1");
    let _sink = spawn(
        &format!("sink{sfx}"),
        &["sink", "--migrate", "--group", &format!("sink{sfx}")],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
        ],
    );
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();

    // 16 MiB of non-repeating bytes (xorshift), the contract's ceiling.
    let mut big = vec![0u8; 16 * 1024 * 1024];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    send_signed(
        &producer,
        &intent("ai_assistant", "big", "document", Some(big.clone())),
    )
    .await;
    let mut v2 = intent(
        "ai_assistant",
        "big",
        "document",
        Some(b"small v2".to_vec()),
    );
    v2.operation = Operation::Update;
    v2.expected_version = Some(1);
    v2.content_type = "text/plain".into();
    send_signed(&producer, &v2).await;
    let mut stale = intent("ai_assistant", "big", "document", Some(b"stale".to_vec()));
    stale.operation = Operation::Update;
    stale.expected_version = Some(999);
    send_signed(&producer, &stale).await;
    send_signed(
        &producer,
        &intent("ai_avatar", "face", "media", Some(b"avatar".to_vec())),
    )
    .await;
    wait_all_decided(&group, &topics, 3, Duration::from_secs(120));

    // Stored versions and indexed decisions (the sink's audit indexer).
    for _ in 0..480 {
        let versions = pg_count(&db, "SELECT count(*) FROM artifact_versions").await;
        let decisions = pg_count(
            &db,
            "SELECT count(*) FROM audit_decisions WHERE kind = 'DECISION'",
        )
        .await;
        if versions >= 3 && decisions >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_api, base) = spawn_api(&format!("api{sfx}"), &url_as_role(&db, "bucket_reader"));
    let http = reqwest::Client::new();
    let art = format!("{base}/v1/products/ai_assistant/artifacts/big");

    // Raw bytes, byte for byte, with the stored content type.
    let r = get(&http, &format!("{art}/versions/1/content"), Some(TOKEN_A)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), big.len());
    assert!(body.as_ref() == big.as_slice(), "16 MiB content differs");
    // The same through JSON + base64.
    let v1 = json(&http, &format!("{art}/versions/1"), TOKEN_A).await;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v1["content_base64"].as_str().unwrap())
        .unwrap();
    assert!(decoded == big, "base64 content differs");
    assert_eq!(v1["content_size"], big.len() as i64);

    // Latest, history with pagination.
    let latest = json(&http, &art, TOKEN_A).await;
    assert_eq!(latest["version"], 2);
    let r = get(&http, &format!("{art}/content"), Some(TOKEN_A)).await;
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"small v2");
    let page1 = json(&http, &format!("{art}/versions?limit=1"), TOKEN_A).await;
    assert_eq!(page1["items"][0]["version"], 2);
    assert!(page1["items"][0].get("content_base64").is_none());
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let page2 = json(
        &http,
        &format!("{art}/versions?limit=1&cursor={cursor}"),
        TOKEN_A,
    )
    .await;
    assert_eq!(page2["items"][0]["version"], 1);
    assert!(page2["next_cursor"].is_null());

    // Decisions: two accepted, one rejected (stale expected version), oldest first.
    let decisions = json(&http, &format!("{art}/decisions"), TOKEN_A).await;
    let outcomes: Vec<&str> = decisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["ACCEPTED", "ACCEPTED", "REJECTED"],
        "{decisions}"
    );

    // Usage: one live artifact of 8 bytes; two stored versions.
    let usage = json(
        &http,
        &format!("{base}/v1/products/ai_assistant/usage"),
        TOKEN_A,
    )
    .await;
    assert_eq!(usage["live_artifacts"], 1);
    assert_eq!(usage["live_bytes"], 8);
    assert_eq!(usage["stored_versions"], 2);
    assert_eq!(usage["stored_bytes"], big.len() as i64 + 8);

    // Product B's token cannot see product A, and vice versa; no token is 401.
    for path in [
        art.clone(),
        format!("{art}/content"),
        format!("{art}/versions"),
        format!("{art}/versions/1"),
        format!("{art}/versions/1/content"),
        format!("{art}/decisions"),
        format!("{base}/v1/products/ai_assistant/usage"),
    ] {
        let r = get(&http, &path, Some(TOKEN_B)).await;
        assert_eq!(r.status(), 404, "token B on {path}");
        assert_eq!(get(&http, &path, None).await.status(), 401, "{path}");
        assert_eq!(
            get(&http, &path, Some("wrong")).await.status(),
            401,
            "{path}"
        );
    }
    let face = format!("{base}/v1/products/ai_avatar/artifacts/face");
    assert_eq!(get(&http, &face, Some(TOKEN_B)).await.status(), 200);
    assert_eq!(get(&http, &face, Some(TOKEN_A)).await.status(), 404);
    let doc = get(&http, &format!("{base}/openapi.json"), None).await;
    assert_eq!(doc.status(), 200);
}

/// The venv with Schemathesis, created on first use (idempotent).
fn schemathesis() -> std::path::PathBuf {
    let cache = std::env::var("BUCKET_CACHE_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/bhiv-bucket", std::env::var("HOME").unwrap()));
    let venv = std::path::Path::new(&cache).join("venv");
    let st = venv.join("bin/st");
    if !st.exists() {
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "schemathesis"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install schemathesis failed");
    }
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error() {
    use bhiv_bucket::sink::{Accepted, Store};
    use bhiv_bucket::wire::accepted::AcceptedArtifact;
    let sfx = suffix();
    let db = fresh_database(&sfx).await;
    let mut store = Store::connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let versions: Vec<Accepted> = (1..=3)
        .map(|v| Accepted {
            topic: "t".into(),
            partition: 0,
            offset: v,
            artifact: AcceptedArtifact {
                intent_id: uuid::Uuid::new_v4().to_string(),
                product_id: "ai_assistant".into(),
                integration_id: "i".into(),
                owner_id: "o".into(),
                requester_id: "o".into(),
                artifact_id: "doc".into(),
                artifact_class: "document".into(),
                operation: if v == 1 {
                    Operation::Create
                } else {
                    Operation::Update
                },
                version: v,
                deleted: false,
                content: Some(format!("v{v}").into_bytes()),
                content_sha256: String::new(),
                content_size: 2,
                content_type: "text/plain".into(),
                metadata: "{}".into(),
                purpose: "st".into(),
                client_time: 1,
                decided_at: 2,
                policy_version: "p".into(),
                source_partition: 0,
                source_offset: v,
            },
        })
        .collect();
    store.write_batch(&versions, &[]).await.unwrap();
    let (_api, base) = spawn_api(&format!("api-st{sfx}"), &url_as_role(&db, "bucket_reader"));
    let st = schemathesis();
    let report_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("st{sfx}"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(st)
            .args(["run", &format!("{base}/openapi.json")])
            .args(["--checks", "not_a_server_error"])
            .args(["-H", &format!("Authorization: Bearer {TOKEN_A}")])
            .args(["--max-examples", "40", "--max-time", "40", "--no-color"])
            .args(["--generation-database", "none"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .arg("--report-dir")
            .arg(report_dir)
            .env("NO_COLOR", "1")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}"
    );
}
