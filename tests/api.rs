//! Read API against the real stack: produce → gate → sink (+ audit indexer) → PostgreSQL →
//! `bucket api`, product-scoped tokens, decision receipts, and Schemathesis against the served
//! OpenAPI document. The limits are tested in tests/api_limits.rs.

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
    // Limits high enough that the generated requests reach the handlers (429 is no 5xx anyway).
    let tokens = tokens_file(
        &format!("st{sfx}"),
        "[limits.default]\nrequests_per_sec = 100000\nburst = 100000\n\
         [server]\nunauthenticated_per_sec = 100000\nunauthenticated_burst = 100000\n",
        "",
    );
    let (_api, base) = spawn_api_with(
        &format!("api-st{sfx}"),
        &url_as_role(&db, "bucket_reader"),
        &tokens,
        &[],
    );
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

/// Receipts of `product`'s decisions through the list endpoint, following `next` page by page.
async fn all_receipts(
    http: &reqwest::Client,
    base: &str,
    product: &str,
    token: &str,
    query: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = String::new();
    for _ in 0..100 {
        let page = json(
            http,
            &format!("{base}/v1/products/{product}/decisions?limit=1{query}&since={since}"),
            token,
        )
        .await;
        out.extend(page["decisions"].as_array().unwrap().iter().cloned());
        assert!(page["cursor"].is_string(), "{page}");
        match page["next"].as_str() {
            Some(next) => since = next.to_string(),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decision_receipts_answer_each_intent_to_its_own_product_only() {
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

    // ai_assistant: accepted, rejected (stale version), rejected (unsigned); ai_avatar:
    // accepted; and a value that does not decode, keyed as ai_assistant's.
    let accepted = intent("ai_assistant", "r1", "document", Some(b"one".to_vec()));
    send_signed(&producer, &accepted).await;
    let mut stale = intent("ai_assistant", "r1", "document", Some(b"two".to_vec()));
    stale.operation = Operation::Update;
    stale.expected_version = Some(7);
    send_signed(&producer, &stale).await;
    let unsigned = intent("ai_assistant", "r2", "document", Some(b"x".to_vec()));
    let value = producer.encode(&unsigned).unwrap();
    producer
        .send_raw(Some(b"ai_assistant"), Some(&value), &[])
        .await
        .unwrap();
    let other = intent("ai_avatar", "face", "media", Some(b"avatar".to_vec()));
    send_signed(&producer, &other).await;
    producer
        .send_raw(
            Some(b"ai_assistant"),
            Some(b"\xff garbage that is not avro"),
            &[],
        )
        .await
        .unwrap();
    wait_all_decided(&group, &topics, 3, Duration::from_secs(120));
    for _ in 0..480 {
        let n = pg_count(
            &db,
            "SELECT count(*) FROM audit_decisions WHERE kind = 'DECISION'",
        )
        .await;
        if n >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The undecodable value's decision names no product and no intent: operator-only.
    let unattributed = pg_count(
        &db,
        "SELECT count(*) FROM audit_decisions WHERE kind = 'DECISION' AND product_id IS NULL",
    )
    .await;
    assert_eq!(unattributed, 1);

    let (_api, base) = spawn_api(&format!("api-rc{sfx}"), &url_as_role(&db, "bucket_reader"));
    let http = reqwest::Client::new();
    let receipt_url =
        |product: &str, id: &str| format!("{base}/v1/products/{product}/decisions/{id}");

    let r = json(
        &http,
        &receipt_url("ai_assistant", &accepted.intent_id),
        TOKEN_A,
    )
    .await;
    assert_eq!(r["intent_id"], accepted.intent_id.as_str());
    assert_eq!(r["product_id"], "ai_assistant");
    assert_eq!(r["artifact_id"], "r1");
    assert_eq!(r["outcome"], "ACCEPTED");
    assert_eq!(r["reasons"], serde_json::json!([]));
    assert_eq!(r["version"], 1);
    assert!(r["policy_version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(r["recorded_at_ms"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(r["audit"]["topic"], topics.audit.as_str());
    for k in ["partition", "offset", "seq"] {
        assert!(r["audit"][k].is_i64(), "{k}: {r}");
    }
    assert_eq!(r["audit"]["hash"].as_str().map(str::len), Some(64), "{r}");
    assert!(r["proof"].is_null(), "no tiles are served here: {r}");
    assert_eq!(r["decisions"], 1);

    let r = json(
        &http,
        &receipt_url("ai_assistant", &stale.intent_id),
        TOKEN_A,
    )
    .await;
    assert_eq!(r["outcome"], "REJECTED");
    assert_eq!(r["reasons"][0], "VERSION_CONFLICT", "{r}");
    assert!(!r["detail"].as_str().unwrap().is_empty());
    let r = json(
        &http,
        &receipt_url("ai_assistant", &unsigned.intent_id),
        TOKEN_A,
    )
    .await;
    assert_eq!(r["outcome"], "REJECTED");
    let reasons: Vec<&str> = r["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(reasons.contains(&"SIGNATURE_MISSING"), "{r}");

    // Another product's intent, an unknown one, another product's path: 404; no token: 401.
    for (product, id, token) in [
        ("ai_assistant", other.intent_id.as_str(), TOKEN_A),
        ("ai_assistant", "no-such-intent", TOKEN_A),
        ("ai_assistant", accepted.intent_id.as_str(), TOKEN_B),
        ("ai_avatar", accepted.intent_id.as_str(), TOKEN_B),
    ] {
        let status = get(&http, &receipt_url(product, id), Some(token))
            .await
            .status();
        assert_eq!(status, 404, "{product}/{id} with {token}");
    }
    let status = get(
        &http,
        &receipt_url("ai_assistant", &accepted.intent_id),
        None,
    )
    .await
    .status();
    assert_eq!(status, 401);

    // The list, one per page: ai_assistant's three decisions and nothing else.
    let ids = |rs: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = rs
            .iter()
            .map(|r| r["intent_id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let mut want = vec![
        accepted.intent_id.clone(),
        stale.intent_id.clone(),
        unsigned.intent_id.clone(),
    ];
    want.sort();
    let all = all_receipts(&http, &base, "ai_assistant", TOKEN_A, "").await;
    assert_eq!(ids(&all), want);
    assert!(all.iter().all(|r| r.get("decisions").is_none()));
    let rejected = all_receipts(&http, &base, "ai_assistant", TOKEN_A, "&outcome=rejected").await;
    let mut want_rejected = vec![stale.intent_id.clone(), unsigned.intent_id.clone()];
    want_rejected.sort();
    assert_eq!(ids(&rejected), want_rejected);
    let only_accepted =
        all_receipts(&http, &base, "ai_assistant", TOKEN_A, "&outcome=accepted").await;
    assert_eq!(ids(&only_accepted), vec![accepted.intent_id.clone()]);
    let avatar = all_receipts(&http, &base, "ai_avatar", TOKEN_B, "").await;
    assert_eq!(ids(&avatar), vec![other.intent_id.clone()]);
    // Audit order: partition, then offset.
    let order: Vec<(i64, i64)> = all
        .iter()
        .map(|r| {
            (
                r["audit"]["partition"].as_i64().unwrap(),
                r["audit"]["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // Following: the last page's cursor gives nothing new until a new decision comes.
    let page = json(
        &http,
        &format!("{base}/v1/products/ai_assistant/decisions?limit=1000"),
        TOKEN_A,
    )
    .await;
    assert!(page["next"].is_null());
    let cursor = page["cursor"].as_str().unwrap().to_string();
    let url = format!("{base}/v1/products/ai_assistant/decisions?since={cursor}");
    assert_eq!(
        json(&http, &url, TOKEN_A).await["decisions"],
        serde_json::json!([])
    );
    let later = intent("ai_assistant", "r3", "document", Some(b"three".to_vec()));
    send_signed(&producer, &later).await;
    let (status, body) = http_until(&url, Some(TOKEN_A), Duration::from_secs(60), |s, b| {
        s == 200 && b.contains(&later.intent_id)
    })
    .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ids(page["decisions"].as_array().unwrap()),
        vec![later.intent_id.clone()]
    );

    // Bad parameters are 400s.
    for q in ["outcome=maybe", "since=%25%25", "limit=0", "limit=100000"] {
        let url = format!("{base}/v1/products/ai_assistant/decisions?{q}");
        assert_eq!(get(&http, &url, Some(TOKEN_A)).await.status(), 400, "{q}");
    }
}
