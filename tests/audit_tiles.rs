//! The transparency log end to end against the real stack: a gate writes links (CHECKPOINT
//! links carry its signed notes) while `bucket audit tiles` follows the audit topic and is
//! `kill -9`ed several times; after a restart its directory equals a rebuild from the topic
//! byte for byte. Proofs from `bucket audit prove` and from the read API (only to the
//! decision's product) pass `bucket audit check-proof`; `bucket audit witness` accepts the
//! published checkpoints and alerts on a rewritten, forked or shrunk log.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bhiv_bucket::produce::IntentProducer;
use common::tlog::*;
use common::*;

const PARTITIONS: i32 = 3;
const TOKEN_A: &str = "demo-ai-assistant-token";
const TOKEN_B: &str = "demo-ai-avatar-token";

fn bucket(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucket"));
    cmd.args(args)
        .env("BUCKET_BROKERS", brokers())
        .env("BUCKET_REGISTRY_URL", registry_url())
        .env_remove("BUCKET_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check_proof(file: &std::path::Path) -> (bool, String) {
    let o = bucket(
        &[
            "audit",
            "check-proof",
            &file.display().to_string(),
            "--key",
            &demo_vkey(),
        ],
        &[],
    );
    (o.status.success(), text(&o))
}

fn witness(state: &std::path::Path, tiles: &str, extra: &[&str]) -> (i32, String) {
    let state = state.display().to_string();
    let vkey = demo_vkey();
    let mut args = vec![
        "audit", "witness", "--dir", &state, "--tiles", tiles, "--key", &vkey,
    ];
    args.extend_from_slice(extra);
    let o = bucket(&args, &[]);
    (o.status.code().unwrap_or(-1), text(&o))
}

/// Sum of a per-partition gauge in a metrics exposition.
fn gauge_sum(exposition: &str, name: &str) -> f64 {
    (0..PARTITIONS)
        .filter_map(|p| metric_value(exposition, &format!("{name}{{partition=\"{p}\"}}")))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tiles_survive_kill9_equal_a_rebuild_and_prove_decisions() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let producer = std::sync::Arc::new(
        IntentProducer::connect(&brokers(), &registry, &topics.intents)
            .await
            .unwrap(),
    );
    let name = sfx.trim_start_matches('.').to_string();
    let live = tmp_dir(&format!("{name}-live"));
    let rebuilt = tmp_dir(&format!("{name}-rebuilt"));
    let mut gate = spawn_gate(&sfx, &group, "g1");

    // Load in the background; the tiles service is killed -9 and restarted under it.
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let tiles_args = ["--follow", "--metrics-addr", &metrics_addr];
    let mut tiles = spawn_tiles(&format!("tiles{sfx}-0"), &sfx, &live, &tiles_args);
    let load = {
        let producer = producer.clone();
        tokio::spawn(async move {
            for seed in 0..6u64 {
                produce_all(&producer, mixed_workload(&producer, 1000, 40 + seed)).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let mut max_lag_records = 0f64;
    let mut max_behind_ms = 0f64;
    let mut kills = 0;
    let start = Instant::now();
    while !load.is_finished() || kills < 4 {
        tokio::time::sleep(Duration::from_millis(700 + 350 * (kills % 3))).await;
        let (status, body) = http_get(&format!("http://{metrics_addr}/metrics"), None).await;
        if status == 200 {
            max_lag_records = max_lag_records.max(gauge_sum(&body, "bucket_tlog_lag_records"));
            for p in 0..PARTITIONS {
                let s = format!("bucket_tlog_behind_ms{{partition=\"{p}\"}}");
                max_behind_ms = max_behind_ms.max(metric_value(&body, &s).unwrap_or(0.0));
            }
        }
        if kills < 4 {
            tiles.kill9();
            kills += 1;
            tiles = spawn_tiles(&format!("tiles{sfx}-{kills}"), &sfx, &live, &tiles_args);
        }
        assert!(start.elapsed() < Duration::from_secs(300), "load too slow");
    }
    load.await.unwrap();
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(180));
    let decided = Instant::now();
    // How long the live service takes to have every link once the gate is done.
    let links_now = read_committed(&topics.audit).len() as f64;
    let mut caught_up = None;
    while decided.elapsed() < Duration::from_secs(60) {
        let (_, body) = http_get(&format!("http://{metrics_addr}/metrics"), None).await;
        if gauge_sum(&body, "bucket_tlog_tree_size") >= links_now {
            caught_up = Some(decided.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "tiles under load: {kills} kill -9s; max lag {max_lag_records} records, max {max_behind_ms} ms \
         behind the gate's clock; caught up {caught_up:?} after the last decision"
    );
    assert!(gate.terminate(Duration::from_secs(30)), "gate exits 0");
    assert!(
        tiles.terminate(Duration::from_secs(30)),
        "tiles exit 0 on SIGTERM"
    );

    // Once more after a last kill -9 mid-run, then to the end; and a rebuild from scratch.
    let mut t = spawn_tiles(&format!("tiles{sfx}-last"), &sfx, &live, &[]);
    std::thread::sleep(Duration::from_millis(300));
    t.kill9();
    let vkey = demo_vkey();
    let live_s = live.display().to_string();
    let rebuilt_s = rebuilt.display().to_string();
    let env = [("BUCKET_TOPIC_SUFFIX", sfx.clone())];
    let o = bucket(&["audit", "tiles", "--dir", &live_s, "--key", &vkey], &env);
    assert!(o.status.success(), "{}", text(&o));
    let t0 = Instant::now();
    let o = bucket(
        &["audit", "tiles", "--dir", &rebuilt_s, "--key", &vkey],
        &env,
    );
    assert!(o.status.success(), "{}", text(&o));
    let rebuild_time = t0.elapsed();
    eprintln!(
        "rebuild: {rebuild_time:?}\n{}",
        String::from_utf8_lossy(&o.stdout)
    );

    let (a, b) = (snapshot(&live), snapshot(&rebuilt));
    let differ: Vec<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "the live tiles differ from the rebuild at {} paths, e.g. {:?}",
        differ.len(),
        &differ[..differ.len().min(10)]
    );
    let tiles_count = a.keys().filter(|k| k.contains("/tile/")).count();
    assert!(tiles_count > 50, "{tiles_count} tiles");

    // Every partition has a published checkpoint signed by the gate (its own notes).
    let audit = read_committed(&topics.audit);
    let mut links = std::collections::HashMap::<i32, u64>::new();
    for r in &audit {
        *links.entry(r.partition).or_default() += 1;
    }
    let mut published = std::collections::HashMap::new();
    for p in 0..PARTITIONS {
        let note = std::fs::read_to_string(live.join(p.to_string()).join("checkpoint"))
            .unwrap_or_else(|e| panic!("partition {p} has no published checkpoint: {e}"));
        let verifier = demo_note_signer().verifier();
        bhiv_bucket::tlog::note::open(&note, &[verifier]).expect("signed by the gate key");
        let size = checkpoint_size(&note);
        assert!(
            size > 0 && size <= links[&p],
            "p{p}: {size} of {}",
            links[&p]
        );
        published.insert(p, size);
    }

    // A decision covered by a checkpoint, of ai_assistant, and one of another product.
    let mut mine = None;
    let mut theirs = None;
    for r in &audit {
        let e = decode_audit(r.value.as_deref()).unwrap();
        let Some(d) = e.decision else { continue };
        if (e.seq as u64) >= published[&r.partition] || !d.accepted {
            continue;
        }
        let key = (
            d.intent_id.clone().unwrap(),
            d.product_id.clone().unwrap(),
            d.artifact_id.clone().unwrap(),
            d.version.unwrap(),
            r.partition,
            e.seq,
            r.value.clone().unwrap(),
        );
        if key.1 == "ai_assistant" && mine.is_none() {
            mine = Some(key);
        } else if key.1 == "ai_avatar" && theirs.is_none() {
            theirs = Some(key);
        }
    }
    let (intent, product, artifact, version, partition, seq, record) = mine.unwrap();
    let theirs = theirs.unwrap();

    // The CLI: by intent id, and by product + artifact + version.
    let prove = |args: &[&str]| {
        let o = bucket(
            &[&["audit", "prove", "--dir", &live_s][..], args].concat(),
            &[],
        );
        assert!(o.status.success(), "{}", text(&o));
        o
    };
    let bundle_file = live.join("../proof.json");
    let o = prove(&[
        "--intent-id",
        &intent,
        "--out",
        &bundle_file.display().to_string(),
    ]);
    eprintln!("{}", text(&o).trim());
    let bundle_json = std::fs::read_to_string(&bundle_file).unwrap();
    let bundle = bhiv_bucket::tlog::ProofBundle::from_json(&bundle_json).unwrap();
    assert_eq!(
        (bundle.index, &bundle.record),
        (seq as u64, &base64_of(&record))
    );
    let (ok, out) = check_proof(&bundle_file);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "is in {DEPLOYMENT}/bucket.audit/{partition} at tree size"
        )),
        "{out}"
    );
    let o = prove(&[
        "--product",
        &product,
        "--artifact",
        &artifact,
        "--version",
        &version.to_string(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        bundle_json.trim()
    );
    // The C2SP tlog-proof form: the same content, smaller, and check-proof reads it.
    let o = prove(&["--intent-id", &intent, "--format", "tlog-proof"]);
    let tlog_proof = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        tlog_proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{tlog_proof}"
    );
    assert!(tlog_proof.len() < bundle_json.len());
    let parsed = bhiv_bucket::tlog::ProofBundle::parse(&tlog_proof).unwrap();
    assert_eq!(
        (
            parsed.index,
            &parsed.record,
            &parsed.inclusion_proof,
            &parsed.checkpoint
        ),
        (
            bundle.index,
            &bundle.record,
            &bundle.inclusion_proof,
            &bundle.checkpoint
        )
    );
    let tlog_proof_file = live.join("../proof.tlog-proof");
    std::fs::write(&tlog_proof_file, &tlog_proof).unwrap();
    let (ok, out) = check_proof(&tlog_proof_file);
    assert!(ok, "{out}");
    let o = bucket(
        &[
            "audit",
            "prove",
            "--dir",
            &live_s,
            "--intent-id",
            "no-such-intent",
        ],
        &[],
    );
    assert!(!o.status.success());

    // The read API: tiles and checkpoints for any token, bundles for the product's own token.
    let db = fresh_database(&sfx).await;
    let o = bucket(&["sink", "migrate"], &[("BUCKET_PG_URL", db.clone())]);
    assert!(o.status.success(), "{}", text(&o));
    let (_api, base) = spawn_api_with_tlog(
        &format!("api{sfx}"),
        &url_as_role(&db, "bucket_reader"),
        &live,
    );
    let cp = format!("{base}/v1/audit/tlog/{partition}/checkpoint");
    let (s, body) = http_get(&cp, Some(TOKEN_B)).await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        std::fs::read_to_string(live.join(partition.to_string()).join("checkpoint")).unwrap()
    );
    assert_eq!(http_get(&cp, None).await.0, 401);
    let tile = format!("{base}/v1/audit/tlog/{partition}/tile/0/000");
    let r = reqwest::Client::new()
        .get(&tile)
        .bearer_auth(TOKEN_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        std::fs::read(live.join(partition.to_string()).join("tile/0/000")).unwrap()
    );
    let entries = format!("{base}/v1/audit/tlog/{partition}/tile/entries/000");
    assert_eq!(
        http_get(&entries, Some(TOKEN_A)).await.0,
        404,
        "entries are not served"
    );
    let (s, body) = http_get(&format!("{base}/v1/audit/tlog"), Some(TOKEN_A)).await;
    assert_eq!((s, body.as_str()), (200, r#"{"partitions":[0,1,2]}"#));

    let by_intent = format!("{base}/v1/products/{product}/decisions/{intent}/proof");
    let (s, body) = http_get(&by_intent, Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        bhiv_bucket::tlog::ProofBundle::from_json(&body).unwrap(),
        bundle
    );
    let by_version =
        format!("{base}/v1/products/{product}/artifacts/{artifact}/versions/{version}/proof");
    let (s, body) = http_get(&by_version, Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    let api_file = live.join("../api-proof.json");
    std::fs::write(&api_file, &body).unwrap();
    let (ok, out) = check_proof(&api_file);
    assert!(ok, "{out}");
    let (s, body) = http_get(&format!("{by_intent}?format=tlog-proof"), Some(TOKEN_A)).await;
    assert_eq!((s, body.as_str()), (200, tlog_proof.as_str()));
    let (s, _) = http_get(&format!("{by_intent}?format=yaml"), Some(TOKEN_A)).await;
    assert_eq!(s, 400);
    assert_eq!(
        http_get(&format!("{by_intent}?format=tlog-proof"), Some(TOKEN_B))
            .await
            .0,
        404
    );
    // No cross-product leaks: another product's token on this path, this token on another
    // product's path, this product's path with another product's decision: all 404.
    assert_eq!(http_get(&by_intent, Some(TOKEN_B)).await.0, 404);
    assert_eq!(http_get(&by_version, Some(TOKEN_B)).await.0, 404);
    let (t_intent, t_product, t_artifact, t_version, _, _, t_record) = theirs;
    let other_path = format!("{base}/v1/products/{t_product}/decisions/{t_intent}/proof");
    assert_eq!(http_get(&other_path, Some(TOKEN_A)).await.0, 404);
    assert_eq!(
        http_get(&other_path, Some(TOKEN_B)).await.0,
        200,
        "their own token"
    );
    let smuggled = format!("{base}/v1/products/{product}/decisions/{t_intent}/proof");
    assert_eq!(http_get(&smuggled, Some(TOKEN_A)).await.0, 404);
    // (Artifact ids repeat across products: a 200 here must be ai_assistant's own decision.)
    let smuggled =
        format!("{base}/v1/products/{product}/artifacts/{t_artifact}/versions/{t_version}/proof");
    let (s, body) = http_get(&smuggled, Some(TOKEN_A)).await;
    if s == 200 {
        let b = bhiv_bucket::tlog::ProofBundle::from_json(&body).unwrap();
        assert_ne!(
            b.record,
            base64_of(&t_record),
            "another product's record leaked"
        );
        let raw =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &b.record).unwrap();
        let d = decode_audit(Some(&raw)).unwrap().decision.unwrap();
        assert_eq!(d.product_id.as_deref(), Some(product.as_str()));
    } else {
        assert_eq!(s, 404);
    }

    // The witness: accepts the published checkpoints (from the directory, then over HTTP).
    let wstate = tmp_dir(&format!("{name}-witness"));
    let (code, out) = witness(&wstate, &live_s, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("accepted 0 ->").count(),
        PARTITIONS as usize,
        "{out}"
    );
    let (code, out) = witness(&wstate, &base, &["--token", TOKEN_B]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("unchanged at").count(),
        PARTITIONS as usize,
        "{out}"
    );

    // A log someone rewrote: partition's records with one decision changed, a few more
    // appended, re-signed with the real key. Also a fork (same size, another root) and a
    // shrunk log. Each one: exit 1 and an ALERT line; nothing accepted.
    let mut records: Vec<Vec<u8>> = audit
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.value.clone().unwrap())
        .collect();
    let size = published[&partition] as usize;
    records.truncate(size);
    let signer = demo_note_signer();
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "rewritten",
            {
                let mut r = records.clone();
                let last = r[seq as usize].len() - 1;
                r[seq as usize][last] ^= 1;
                r.push(b"appended".to_vec());
                r
            },
            "not consistent with the accepted tree",
        ),
        (
            "forked",
            {
                let mut r = records.clone();
                r[size - 1].push(0);
                r
            },
            "forked log",
        ),
        ("shrunk", records[..size - 1].to_vec(), "tree shrank"),
    ];
    for (what, recs, expect) in cases {
        let forged = tmp_dir(&format!("{name}-{what}"));
        write_log(&forged, partition, &recs, &signer);
        let ws = tmp_dir(&format!("{name}-witness-{what}"));
        for p in 0..PARTITIONS {
            let f = format!("{p}.checkpoint");
            std::fs::copy(wstate.join(&f), ws.join(&f)).unwrap();
        }
        let before = std::fs::read(ws.join(format!("{partition}.checkpoint"))).unwrap();
        let (code, out) = witness(&ws, &forged.display().to_string(), &[]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(
            out.contains("ALERT") && out.contains(expect),
            "{what}: {out}"
        );
        assert_eq!(
            std::fs::read(ws.join(format!("{partition}.checkpoint"))).unwrap(),
            before,
            "{what}: nothing accepted"
        );
    }
    // The same log honestly extended is accepted.
    let honest = tmp_dir(&format!("{name}-honest"));
    let mut more = records.clone();
    more.push(b"one more".to_vec());
    write_log(&honest, partition, &more, &signer);
    let ws = tmp_dir(&format!("{name}-witness-honest"));
    std::fs::copy(
        wstate.join(format!("{partition}.checkpoint")),
        ws.join(format!("{partition}.checkpoint")),
    )
    .unwrap();
    let (code, out) = witness(&ws, &honest.display().to_string(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("accepted {size} -> {}", size + 1)),
        "{out}"
    );
    // With --announce the alert also goes to bucket.control (TLOG_INCONSISTENT).
    let forged = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("tlog")
        .join(format!("{name}-rewritten"));
    let (code, out) = witness(
        &wstate,
        &forged.display().to_string(),
        &["--announce", "--topic-suffix", &sfx],
    );
    assert_eq!(code, 1, "{out}");
    let control = read_committed(&topics.control);
    assert!(
        control.iter().any(
            |r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                .contains("\"TLOG_INCONSISTENT\"")
        ),
        "no TLOG_INCONSISTENT on {}: {out}",
        topics.control
    );
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `bucket api` with `--tlog-dir`, on a free port, waiting until it listens.
fn spawn_api_with_tlog(name: &str, pg_url: &str, dir: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let tokens = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/api-tokens.toml");
    let dir = dir.display().to_string();
    let mut p = spawn(
        name,
        &[
            "api",
            "--listen",
            &listen,
            "--tokens",
            tokens,
            "--tlog-dir",
            &dir,
        ],
        &[("BUCKET_API_PG_URL", pg_url.to_string())],
    );
    wait_until(Duration::from_secs(30), "the read API to listen", || {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("bucket api exited early: {status}; see its log");
        }
        std::net::TcpStream::connect(&listen).is_ok()
    });
    (p, format!("http://{listen}"))
}
