//! The admin HTTP server of `bucket gate` and `bucket sink` against the real stack: metrics
//! labels and counts match the decisions on the topics, readiness, threat counts, policy, and
//! the bearer token (given as an `env:` reference) guards everything but the probes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

const PARTITIONS: i32 = 2;
const TOKEN_VAR: &str = "BUCKET_TEST_ADMIN_TOKEN";

/// Products in deploy/policy.toml the test writes for, with a class each allows.
const GOOD: [(&str, &str); 2] = [("ai_assistant", "document"), ("gurukul", "transcript")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_admin_reports_decisions_readiness_threats_and_guards_with_a_token() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    // The token reaches the gate as a secret reference, like the policy's secrets.
    let mut gate = spawn(
        &format!("gate{sfx}-g1"),
        &[
            "gate",
            "--gate-id",
            "g1",
            "--group",
            &group,
            "--commit-interval-ms",
            "100",
        ],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_ADMIN_ADDR", addr.clone()),
            ("BUCKET_ADMIN_TOKEN", format!("env:{TOKEN_VAR}")),
            (TOKEN_VAR, token.clone()),
        ],
    );

    // Probes answer without a token; the rest refuse without one.
    let (status, body) = http_until(
        &format!("{base}/healthz"),
        None,
        Duration::from_secs(60),
        |s, _| s == 200,
    )
    .await;
    assert_eq!(status, 200, "healthz: {body}");
    let (status, page) = http_get(&format!("{base}/status"), None).await;
    assert_eq!(status, 200, "the static status page loads without a token");
    assert!(page.contains("status.json") && !page.contains("ai_assistant"));
    for path in ["/metrics", "/policy", "/threats", "/status.json"] {
        let (status, _) = http_get(&format!("{base}{path}"), None).await;
        assert_eq!(status, 401, "{path} without a token");
        let (status, _) = http_get(&format!("{base}{path}"), Some("wrong-token")).await;
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _) = http_get(&format!("{base}{path}"), Some(&token)).await;
        assert_eq!(status, 200, "{path} with the token");
    }

    // Good intents for two products, and bad ones: wrong key, unknown product, garbage.
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let mut records = Vec::new();
    let mut label_of: Vec<&str> = Vec::new();
    for i in 0..6 {
        let (product, class) = GOOD[i % 2];
        records.push(signed(
            &producer,
            &create_intent(product, class, &format!("a{i}")),
        ));
        label_of.push(product);
    }
    for i in 0..3 {
        let mut r = signed(
            &producer,
            &create_intent("ai_assistant", "document", &format!("k{i}")),
        );
        r.key = Some(b"someone_else".to_vec());
        records.push(r);
        label_of.push("ai_assistant");
    }
    for i in 0..2 {
        records.push(signed(
            &producer,
            &create_intent("no_such_product", "document", &format!("u{i}")),
        ));
        label_of.push("other");
    }
    for i in 0..2 {
        records.push(RawRecord {
            key: Some(b"ai_assistant".to_vec()),
            value: Some(format!("garbage {i}").into_bytes()),
            headers: Vec::new(),
        });
        label_of.push("other");
    }
    // Produce in order so each source offset maps back to its product label.
    let mut by_source: HashMap<(i32, i64), &str> = HashMap::new();
    let mut produced = HashMap::new();
    for (r, label) in records.into_iter().zip(label_of) {
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let d = producer
            .send_raw(r.key.as_deref(), r.value.as_deref(), &headers)
            .await
            .unwrap();
        by_source.insert((d.partition, d.offset), label);
        produced.insert((d.partition, d.offset), r.value.clone());
    }
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    let checked = check_invariants(&produced, &topics);
    assert_eq!(checked.accepted, 6, "{checked:?}");
    assert_eq!(checked.rejected, 7, "{checked:?}");

    // Expected series, from what the topics say.
    let mut want: HashMap<String, f64> = HashMap::new();
    for (src, label) in &by_source {
        let series = match checked.reasons.get(src) {
            Some(reason) => format!(
                r#"bucket_gate_decisions_total{{product="{label}",outcome="rejected",reason="{reason}"}}"#
            ),
            None => format!(
                r#"bucket_gate_decisions_total{{product="{label}",outcome="accepted",reason="none"}}"#
            ),
        };
        *want.entry(series).or_default() += 1.0;
    }
    assert!(want.keys().any(|k| k.contains("KEY_MISMATCH")), "{want:?}");
    assert!(
        want.keys()
            .any(|k| k.contains("MALFORMED_RECORD") && k.contains("\"other\""))
    );
    let (_, metrics) = http_until(
        &format!("{base}/metrics"),
        Some(&token),
        Duration::from_secs(30),
        |_, body| {
            want.iter()
                .all(|(series, n)| metric_value(body, series) == Some(*n))
        },
    )
    .await;
    for (series, n) in &want {
        assert_eq!(
            metric_value(&metrics, series),
            Some(*n),
            "{series} in\n{metrics}"
        );
    }
    let total: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("bucket_gate_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 13.0, "every decision counted once:\n{metrics}");
    assert!(
        !metrics.contains("no_such_product"),
        "unbounded product label leaked"
    );
    assert_eq!(
        metric_value(&metrics, "bucket_gate_decision_duration_seconds_count"),
        Some(13.0)
    );
    assert!(
        metric_value(
            &metrics,
            "bucket_gate_transaction_commit_duration_seconds_count"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(metrics.contains(r#"bucket_gate_quota_limit_bytes{product="ai_assistant"}"#));
    assert!(metrics.contains(r#"bucket_build_info{version=""#));

    // Ready: loop running, Kafka, group, registry; lag known per assigned partition.
    let (status, ready) = http_until(
        &format!("{base}/readyz"),
        None,
        Duration::from_secs(60),
        |s, b| s == 200 && b.contains("\"lag\":{\"0\":0,\"1\":0}"),
    )
    .await;
    assert_eq!(status, 200, "readyz: {ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    for check in ["kafka", "group", "registry", "loop"] {
        assert_eq!(ready["checks"][check]["status"], "up", "{check}: {ready}");
    }
    assert!(
        ["up", "degraded", "unknown"]
            .contains(&ready["checks"]["redis"]["status"].as_str().unwrap())
    );
    assert_eq!(ready["lag"]["0"], 0, "{ready}");
    assert_eq!(ready["lag"]["1"], 0, "{ready}");
    let (_, metrics) = http_until(
        &format!("{base}/metrics"),
        Some(&token),
        Duration::from_secs(10),
        |_, b| metric_value(b, "bucket_gate_registry_up") == Some(1.0),
    )
    .await;
    assert_eq!(
        metric_value(&metrics, "bucket_gate_assigned_partitions"),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&metrics, r#"bucket_gate_consumer_lag{partition="0"}"#),
        Some(0.0)
    );

    // Threat catalogue counts the findings.
    let (_, threats) = http_get(&format!("{base}/threats"), Some(&token)).await;
    let threats: serde_json::Value = serde_json::from_str(&threats).unwrap();
    let t7 = threats["threats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "T7")
        .unwrap();
    let key_mismatch = t7["reason_codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "KEY_MISMATCH")
        .unwrap();
    assert_eq!(key_mismatch["findings"], 3, "{t7}");
    assert!(
        t7["findings"].as_u64().unwrap() >= 5,
        "key mismatches and unknown products: {t7}"
    );

    // Policy: the version in force, secrets as references only.
    let (_, policy) = http_get(&format!("{base}/policy"), Some(&token)).await;
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let (loaded, _) = bhiv_bucket::policy::file::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/policy.toml"
    )))
    .unwrap();
    assert_eq!(policy["version"], loaded.version.as_str());
    assert!(policy["policy"]["products"]["ai_assistant"].is_object());

    // Status data: products, reasons and the recent decisions.
    let (_, status) = http_get(&format!("{base}/status.json"), Some(&token)).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let products: Vec<&str> = status["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["product"].as_str().unwrap())
        .collect();
    assert!(
        products.contains(&"ai_assistant") && products.contains(&"gurukul"),
        "{status}"
    );
    assert_eq!(
        status["recent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "decision")
            .count(),
        13
    );

    assert!(
        gate.terminate(Duration::from_secs(30)),
        "gate exits 0 on SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_admin_reports_writes_and_readiness() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let db = fresh_database(&sfx).await;
    let group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &group, "g1");
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let token = "sink-admin-token";
    let mut sink = spawn(
        &format!("sink{sfx}"),
        &["sink", "--migrate", "--group", &format!("sink{sfx}")],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
            ("BUCKET_ADMIN_ADDR", addr.clone()),
            ("BUCKET_ADMIN_TOKEN", token.to_string()),
        ],
    );
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    for i in 0..5 {
        send_signed(
            &producer,
            &create_intent("ai_assistant", "document", &format!("s{i}")),
        )
        .await;
    }
    let (status, _) = http_get(&format!("{base}/metrics"), None).await;
    assert_eq!(status, 401);
    let (_, metrics) = http_until(
        &format!("{base}/metrics"),
        Some(token),
        Duration::from_secs(120),
        |_, b| metric_value(b, "bucket_sink_artifacts_written_total") == Some(5.0),
    )
    .await;
    assert_eq!(
        metric_value(&metrics, "bucket_sink_artifacts_written_total"),
        Some(5.0),
        "{metrics}"
    );
    assert!(metric_value(&metrics, "bucket_sink_batch_size_sum").unwrap_or(0.0) >= 5.0);
    assert!(
        metric_value(&metrics, "bucket_sink_write_duration_seconds_count").unwrap_or(0.0) >= 1.0
    );
    let (status, ready) = http_until(
        &format!("{base}/readyz"),
        None,
        Duration::from_secs(60),
        |s, b| s == 200 && b.contains("\"lag\":{\"0\":0,\"1\":0}"),
    )
    .await;
    assert_eq!(status, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["checks"]["storage"]["status"], "up");
    assert_eq!(ready["checks"]["kafka"]["status"], "up");
    let (_, metrics) = http_get(&format!("{base}/metrics"), Some(token)).await;
    assert!(
        metrics.contains(r#"bucket_sink_consumer_lag{partition="0"} 0"#),
        "{metrics}"
    );
    let (status, _) = http_get(&format!("{base}/policy"), Some(token)).await;
    assert_eq!(status, 404, "the sink has no policy");
    assert!(
        sink.terminate(Duration::from_secs(30)),
        "sink exits 0 on SIGTERM"
    );
}

#[test]
fn a_public_admin_bind_without_a_token_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(["gate", "--admin-addr", "0.0.0.0:0"])
        .env_remove("BUCKET_ADMIN_TOKEN")
        .env(
            "BUCKET_POLICY",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("non-loopback") && err.contains("--admin-token"),
        "{err}"
    );
}
