//! The attack catalogue, end to end through Kafka: each case produces crafted bytes and checks
//! the exact reason code (and threat id) in `bucket.audit`, with the original bytes on
//! `bucket.rejected`. Control cases must be accepted, and a sink stores exactly what was
//! accepted (`bucket sink reconcile` clean), including another product's intent id.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bhiv_bucket::core::partitioner::home_partition;
use bhiv_bucket::core::{ArtifactIntent, Operation};
use bhiv_bucket::produce::IntentProducer;
use bhiv_bucket::wire::framing;
use bhiv_bucket::wire::schemas::INTENT_AVSC;
use common::*;

const PARTITIONS: i32 = 3;

fn base(product: &str, artifact: &str) -> ArtifactIntent {
    let class = match product {
        "ai_avatar" => "media",
        "workflow" => "workflow_state",
        "enforcement_engine" => "config",
        "gurukul" => "transcript",
        _ => "document",
    };
    ArtifactIntent {
        content: Some(b"content".to_vec()),
        purpose: "attack catalogue".into(),
        ..create_intent(product, class, artifact)
    }
}

fn with(mut i: ArtifactIntent, f: impl FnOnce(&mut ArtifactIntent)) -> ArtifactIntent {
    f(&mut i);
    i
}

fn header(r: &mut RawRecord, value: String) {
    r.headers.retain(|(k, _)| k != "bucket-signature");
    r.headers
        .push(("bucket-signature".into(), value.into_bytes()));
}

/// Expected reason and threat id; None means accepted.
type Expect = Option<(&'static str, Option<&'static str>)>;

/// One catalogue entry: a name, the record, the expected reason and threat.
struct Case {
    name: &'static str,
    record: RawRecord,
    partition: Option<i32>,
    expect: Expect,
}

fn case(
    name: &'static str,
    record: RawRecord,
    reason: &'static str,
    threat: Option<&'static str>,
) -> Case {
    Case {
        name,
        record,
        partition: None,
        expect: Some((reason, threat)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_catalogue_is_refused_with_exact_reasons() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let group = format!("gate{sfx}");
    let registry = registry();
    let p = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let _gate = spawn_gate(&sfx, &group, "g1");
    let db = fresh_database(&sfx).await;
    let _sink = spawn(
        &format!("sink{sfx}"),
        &["sink", "--migrate", "--group", &format!("sink{sfx}")],
        &[
            ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
            ("BUCKET_PG_URL", db.clone()),
        ],
    );

    // Baseline state the attacks run against.
    let doc = base("ai_assistant", "doc");
    let ckpt = with(base("ai_assistant", "ckpt"), |i| {
        i.artifact_class = "model_checkpoint".into()
    });
    let first = signed(&p, &doc);
    let mut produced = produce_all(&p, vec![first.clone(), signed(&p, &ckpt)]).await;
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(90));

    let update = |f: fn(&mut ArtifactIntent)| {
        let mut i = base("ai_assistant", "doc");
        i.operation = Operation::Update;
        i.expected_version = Some(1);
        f(&mut i);
        i
    };
    let rogue_text = INTENT_AVSC.replacen(
        "\"fields\": [",
        "\"fields\": [{\"name\": \"x\", \"type\": \"string\", \"default\": \"\"},",
        1,
    );
    let rogue_id = registry
        .register_as(&format!("rogue{sfx}-value"), &rogue_text)
        .await
        .unwrap();
    let good = signed(&p, &base("gurukul", "g1"));
    let good_value = good.value.clone().unwrap();
    let body = good_value[framing::HEADER_LEN..].to_vec();
    let raw = |value: Option<Vec<u8>>| RawRecord {
        key: Some(b"gurukul".to_vec()),
        value,
        headers: Vec::new(),
    };
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo/keys");
    let sign_with =
        |integration: &str, key_id: &str, value: &[u8]| {
            let path = format!("{demo}/{integration}.{key_id}.ed25519");
            use base64::Engine;
            let seed = base64::engine::general_purpose::STANDARD
                .decode(std::fs::read_to_string(path).unwrap().trim())
                .unwrap();
            bhiv_bucket::core::signature::SignKey::ed25519_from_seed(&seed.try_into().unwrap())
                .header(integration, key_id, value)
        };

    let mut cases = vec![
        case(
            "garbage bytes",
            raw(Some(b"\x13garbage".to_vec())),
            "MALFORMED_RECORD",
            None,
        ),
        case("null value", raw(None), "MALFORMED_RECORD", None),
        case(
            "truncated avro",
            raw(Some(good_value[..good_value.len() - 4].to_vec())),
            "MALFORMED_AVRO",
            None,
        ),
        case(
            "unknown schema id",
            raw(Some(framing::frame(1_999_999_999, &body))),
            "UNKNOWN_SCHEMA_ID",
            Some("T3"),
        ),
        case(
            "schema behind our back",
            raw(Some(framing::frame(rogue_id, &body))),
            "SCHEMA_NOT_APPROVED",
            Some("T3"),
        ),
        case(
            "intent id not a uuid",
            signed(
                &p,
                &with(base("gurukul", "a1"), |i| i.intent_id = "42".into()),
            ),
            "INVALID_FIELD",
            None,
        ),
        case(
            "metadata not an object",
            signed(
                &p,
                &with(base("gurukul", "a2"), |i| i.metadata = "[1]".into()),
            ),
            "INVALID_FIELD",
            None,
        ),
        case(
            "version set on create",
            signed(
                &p,
                &with(base("gurukul", "a3"), |i| i.expected_version = Some(7)),
            ),
            "INVALID_FIELD",
            None,
        ),
        case(
            "unknown integration",
            signed(
                &p,
                &with(base("gurukul", "a4"), |i| {
                    i.integration_id = "shadow-it".into()
                }),
            ),
            "UNKNOWN_INTEGRATION",
            Some("T2"),
        ),
        case(
            "revoked integration",
            signed(
                &p,
                &with(base("gurukul", "a5"), |i| {
                    i.integration_id = "legacy-importer".into()
                }),
            ),
            "INTEGRATION_REVOKED",
            Some("T2"),
        ),
        case(
            "integration for another product",
            signed(
                &p,
                &with(base("ai_assistant", "a6"), |i| {
                    i.integration_id = "gurukul-backend".into()
                }),
            ),
            "INTEGRATION_NOT_ALLOWED",
            Some("T7"),
        ),
        case(
            "no signature",
            {
                let mut r = signed(&p, &base("gurukul", "a7"));
                r.headers.clear();
                r
            },
            "SIGNATURE_MISSING",
            Some("T2"),
        ),
        case(
            "malformed signature",
            {
                let mut r = signed(&p, &base("gurukul", "a8"));
                header(&mut r, "v1:gurukul-backend".into());
                r
            },
            "SIGNATURE_MALFORMED",
            Some("T2"),
        ),
        case(
            "signature header twice (an appending proxy)",
            {
                let mut r = signed(&p, &base("gurukul", "a8b"));
                let again = r.headers[0].clone();
                r.headers.push(again);
                r
            },
            "SIGNATURE_REPEATED",
            Some("T2"),
        ),
        case(
            "forged header before a valid one",
            {
                let mut r = signed(&p, &base("gurukul", "a8c"));
                r.headers.insert(
                    0,
                    (
                        "bucket-signature".into(),
                        b"v1:gurukul-backend:ed1:ed25519:AAAA".to_vec(),
                    ),
                );
                r
            },
            "SIGNATURE_REPEATED",
            Some("T2"),
        ),
        case(
            "signed by another integration",
            {
                let mut r = signed(&p, &base("gurukul", "a9"));
                let v = r.value.clone().unwrap();
                header(&mut r, sign_with("ai_avatar-backend", "ed1", &v));
                r
            },
            "SIGNATURE_MISMATCH",
            Some("T2"),
        ),
        case(
            "unknown key id",
            {
                let mut r = signed(&p, &base("gurukul", "a10"));
                let v = r.value.clone().unwrap();
                header(
                    &mut r,
                    sign_with("gurukul-backend", "ed1", &v).replacen(":ed1:", ":ed9:", 1),
                );
                r
            },
            "UNKNOWN_KEY",
            Some("T2"),
        ),
        case(
            "revoked key",
            {
                let i = base("ai_assistant", "a11");
                let mut r = signed(&p, &i);
                let v = r.value.clone().unwrap();
                header(&mut r, sign_with("ai_assistant-backend", "old", &v));
                r
            },
            "KEY_REVOKED",
            Some("T2"),
        ),
        case(
            "signature over other bytes",
            {
                let mut r = signed(&p, &base("gurukul", "a12"));
                header(&mut r, sign_with("gurukul-backend", "ed1", b"other"));
                r
            },
            "SIGNATURE_INVALID",
            Some("T2"),
        ),
        case(
            "value tampered after signing",
            {
                let mut r = signed(&p, &base("gurukul", "a13"));
                if let Some(v) = r.value.as_mut() {
                    let n = v.len();
                    v[n - 12] ^= 1;
                }
                r
            },
            "SIGNATURE_INVALID",
            Some("T2"),
        ),
        case(
            "replay of an accepted intent",
            first.clone(),
            "REPLAYED_INTENT",
            Some("T2"),
        ),
        case(
            "key is another product",
            {
                let mut r = signed(&p, &base("gurukul", "a14"));
                r.key = Some(b"ai_assistant".to_vec());
                r
            },
            "KEY_MISMATCH",
            Some("T7"),
        ),
        case(
            "unknown product",
            signed(
                &p,
                &with(base("gurukul", "a16"), |i| i.product_id = "shadow".into()),
            ),
            "UNKNOWN_PRODUCT",
            Some("T7"),
        ),
        case(
            "class not allowed",
            signed(
                &p,
                &with(base("gurukul", "a17"), |i| {
                    i.artifact_class = "model_checkpoint".into()
                }),
            ),
            "CLASS_NOT_ALLOWED",
            Some("T7"),
        ),
        case(
            "update an immutable checkpoint",
            signed(
                &p,
                &with(base("ai_assistant", "ckpt"), |i| {
                    i.artifact_class = "model_checkpoint".into();
                    i.operation = Operation::Update;
                    i.expected_version = Some(1);
                }),
            ),
            "OPERATION_NOT_ALLOWED",
            Some("T5"),
        ),
        case(
            "delete an immutable checkpoint",
            signed(
                &p,
                &with(base("ai_assistant", "ckpt"), |i| {
                    i.artifact_class = "model_checkpoint".into();
                    i.operation = Operation::Delete;
                    i.expected_version = Some(1);
                    i.content = None;
                }),
            ),
            "OPERATION_NOT_ALLOWED",
            Some("T5"),
        ),
        case(
            "delete by a non-owner",
            signed(
                &p,
                &update(|i| {
                    i.operation = Operation::Delete;
                    i.content = None;
                    i.requester_id = "mallory".into();
                }),
            ),
            "NOT_OWNER",
            Some("T5"),
        ),
        case(
            "create over an existing id",
            signed(&p, &base("ai_assistant", "doc")),
            "ARTIFACT_EXISTS",
            Some("T4"),
        ),
        case(
            "update a missing artifact",
            signed(
                &p,
                &with(base("gurukul", "nothing"), |i| {
                    i.operation = Operation::Update;
                    i.expected_version = Some(1);
                }),
            ),
            "ARTIFACT_NOT_FOUND",
            None,
        ),
        case(
            "update without expected version",
            signed(&p, &update(|i| i.expected_version = None)),
            "EXPECTED_VERSION_MISSING",
            None,
        ),
        case(
            "stale expected version",
            signed(&p, &update(|i| i.expected_version = Some(5))),
            "VERSION_CONFLICT",
            Some("T4"),
        ),
        case(
            "create without content",
            signed(&p, &with(base("gurukul", "a18"), |i| i.content = None)),
            "CONTENT_MISSING",
            None,
        ),
        case(
            "delete carrying content",
            signed(&p, &update(|i| i.operation = Operation::Delete)),
            "CONTENT_NOT_ALLOWED",
            None,
        ),
        case(
            "content over the product limit",
            signed(
                &p,
                &with(base("enforcement_engine", "a19"), |i| {
                    i.content = Some(vec![b'x'; 1024 * 1024 + 1])
                }),
            ),
            "CONTENT_TOO_LARGE",
            Some("T1"),
        ),
        case(
            "metadata too large",
            signed(
                &p,
                &with(base("gurukul", "a20"), |i| {
                    i.metadata = format!("{{\"a\":\"{}\"}}", "x".repeat(70_000))
                }),
            ),
            "METADATA_TOO_LARGE",
            Some("T1"),
        ),
        case(
            "ids of 2 MiB (the audit link must stay a bounded C2SP entry)",
            signed(
                &p,
                &with(base("gurukul", "a20b"), |i| {
                    let huge = "i".repeat(2 << 20);
                    i.intent_id = huge.clone();
                    i.artifact_id = huge.clone();
                    i.requester_id = huge;
                }),
            ),
            "INVALID_FIELD",
            None,
        ),
        case(
            "metadata too deep",
            signed(
                &p,
                &with(base("gurukul", "a21"), |i| {
                    i.metadata = format!("{}1{}", "{\"a\":".repeat(12), "}".repeat(12))
                }),
            ),
            "METADATA_TOO_DEEP",
            Some("T1"),
        ),
        case(
            "metadata key explosion",
            signed(
                &p,
                &with(base("gurukul", "a22"), |i| {
                    i.metadata = format!(
                        "{{{}}}",
                        (0..400)
                            .map(|n| format!("\"k{n}\":1"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }),
            ),
            "METADATA_TOO_MANY_KEYS",
            Some("T1"),
        ),
        case(
            "server-owned field in metadata",
            signed(
                &p,
                &with(base("gurukul", "a23"), |i| {
                    i.metadata = "{\"policy_version\":\"forged\"}".into()
                }),
            ),
            "RESERVED_METADATA_KEY",
            Some("T2"),
        ),
        case(
            "back-dated client time",
            signed(
                &p,
                &with(base("gurukul", "a24"), |i| i.client_time -= 86_400_000),
            ),
            "CLOCK_SKEW",
            Some("T2"),
        ),
        case(
            "future client time",
            signed(
                &p,
                &with(base("gurukul", "a25"), |i| i.client_time += 86_400_000),
            ),
            "CLOCK_SKEW",
            Some("T2"),
        ),
        case(
            "no purpose",
            signed(
                &p,
                &with(base("gurukul", "a26"), |i| i.purpose = String::new()),
            ),
            "PURPOSE_MISSING",
            Some("T10"),
        ),
        case(
            "forged owner on update",
            signed(&p, &update(|i| i.owner_id = "mallory".into())),
            "OWNER_MISMATCH",
            Some("T2"),
        ),
        case(
            "private key in content",
            signed(
                &p,
                &with(base("gurukul", "a27"), |i| {
                    i.content = Some(b"-----BEGIN EC PRIVATE KEY-----\nMHc".to_vec())
                }),
            ),
            "SECRET_IN_CONTENT",
            Some("T5"),
        ),
        case(
            "cloud key in metadata",
            signed(
                &p,
                &with(base("gurukul", "a28"), |i| {
                    i.metadata = "{\"k\":\"AKIAIOSFODNN7EXAMPLE\"}".into()
                }),
            ),
            "SECRET_IN_METADATA",
            Some("T2"),
        ),
        case(
            "NUL in content type (storage text cannot hold it)",
            signed(
                &p,
                &with(base("gurukul", "a29"), |i| {
                    i.content_type = "text/plain\0".into()
                }),
            ),
            "INVALID_FIELD",
            None,
        ),
        case(
            "NUL in purpose (storage text cannot hold it)",
            signed(
                &p,
                &with(base("gurukul", "a30"), |i| {
                    i.purpose = "audit\0trail".into()
                }),
            ),
            "INVALID_FIELD",
            None,
        ),
        case(
            FORGED_HEADERS,
            {
                let mut r = signed(
                    &p,
                    &with(base("gurukul", "a31"), |i| i.purpose = String::new()),
                );
                for (k, v) in FORGED {
                    r.headers.insert(0, (k.to_string(), v.as_bytes().to_vec()));
                }
                r
            },
            "PURPOSE_MISSING",
            Some("T10"),
        ),
    ];
    // Wrong partition: the right key, produced to a partition that is not the product's home.
    let home = home_partition(b"gurukul", PARTITIONS);
    cases.push(Case {
        name: "product off its home partition",
        record: signed(&p, &base("gurukul", "a15")),
        partition: Some((home + 1) % PARTITIONS),
        expect: Some(("WRONG_PARTITION", Some("T7"))),
    });
    // Controls: a valid HMAC-signed intent and a valid update are accepted.
    let mut hmac_signed = signed(&p, &base("workflow", "c1"));
    let v = hmac_signed.value.clone().unwrap();
    let secret = std::fs::read_to_string(format!("{demo}/workflow-backend.hm1.hmac")).unwrap();
    header(
        &mut hmac_signed,
        bhiv_bucket::core::signature::SignKey::Hmac(secret.trim().as_bytes().to_vec()).header(
            "workflow-backend",
            "hm1",
            &v,
        ),
    );
    cases.push(Case {
        name: "control: hmac-signed create",
        record: hmac_signed,
        partition: None,
        expect: None,
    });
    cases.push(Case {
        name: "control: ed25519 create",
        record: good,
        partition: None,
        expect: None,
    });
    // Replay protection is per product: another product may use the same intent id, here on
    // an artifact id that also exists in the first product. Accepted, and it must be stored.
    cases.push(Case {
        name: "control: another product's intent id and artifact id",
        record: signed(
            &p,
            &with(base("gurukul", "doc"), |i| {
                i.intent_id = doc.intent_id.clone()
            }),
        ),
        partition: None,
        expect: None,
    });
    assert!(cases.len() >= 30);

    let mut expected: HashMap<(i32, i64), (&str, Expect)> = HashMap::new();
    for c in cases {
        let headers: Vec<(&str, &[u8])> = c
            .record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let d = p
            .send_raw_to(
                c.partition,
                c.record.key.as_deref(),
                c.record.value.as_deref(),
                &headers,
            )
            .await
            .unwrap();
        produced.insert((d.partition, d.offset), c.record.value.clone());
        expected.insert((d.partition, d.offset), (c.name, c.expect));
    }
    wait_all_decided(&group, &topics, PARTITIONS, Duration::from_secs(120));
    check_invariants(&produced, &topics);
    let mut seen = 0;
    for r in read_committed(&topics.audit) {
        let len = r.value.as_ref().map_or(0, Vec::len);
        assert!(
            len <= 65_535,
            "an audit link of {len} bytes cannot be a C2SP entry"
        );
        let e = common::decode_audit(r.value.as_deref()).unwrap();
        let Some(d) = e.decision else { continue };
        let Some((name, expect)) = expected.get(&(d.source_partition, d.source_offset)) else {
            continue;
        };
        seen += 1;
        match expect {
            None => assert!(
                d.accepted,
                "{name}: expected accept, got {:?} {}",
                d.reasons, d.detail
            ),
            Some((reason, threat)) => {
                assert!(!d.accepted, "{name}: accepted");
                assert!(
                    d.reasons.iter().any(|r| r == reason),
                    "{name}: expected {reason}, got {:?} ({})",
                    d.reasons,
                    d.detail
                );
                if let Some(t) = threat {
                    assert!(
                        d.threats.iter().any(|x| x == t),
                        "{name}: expected threat {t}, got {:?}",
                        d.threats
                    );
                }
            }
        }
    }
    assert_eq!(seen, expected.len(), "every case has a decision");

    // The rejected copy of the forged-header case: the gate's verdict is the only
    // `bucket.errors.reason` (any case), the producer's words are kept under a foreign name,
    // and the value is byte for byte the original.
    let forged_at = expected
        .iter()
        .find(|(_, (name, _))| *name == FORGED_HEADERS)
        .map(|(at, _)| *at)
        .unwrap();
    let rejected = read_committed(&topics.rejected)
        .into_iter()
        .find(|r| {
            r.headers.get("bucket.errors.partition") == Some(&forged_at.0.to_string().into_bytes())
                && r.headers.get("bucket.errors.offset")
                    == Some(&forged_at.1.to_string().into_bytes())
        })
        .expect("the forged-header intent is on the rejected topic");
    let named = |name: &str| -> Vec<&[u8]> {
        rejected
            .header_list
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    assert_eq!(named("bucket.errors.reason"), vec![&b"PURPOSE_MISSING"[..]]);
    assert_eq!(named("bucket.errors.policy.version").len(), 1);
    assert_ne!(named("bucket.errors.policy.version"), vec![&b"forged"[..]]);
    for (k, v) in FORGED {
        let foreign = format!("producer.{k}");
        let kept: Vec<&[u8]> = rejected
            .header_list
            .iter()
            .filter(|(name, _)| *name == foreign)
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(
            kept,
            vec![v.as_bytes()],
            "producer header {k} kept as {foreign}"
        );
    }
    assert_eq!(
        rejected.value, produced[&forged_at],
        "original bytes unchanged"
    );

    // Accepted means stored: storage equals the accepted topic, the shared intent id included.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (clean, report) = reconcile(&sfx, &db);
        if clean {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "storage differs from bucket.accepted:\n{report}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let stored = pg_count(
        &db,
        "SELECT count(*) FROM artifact_versions WHERE artifact_id = 'doc' AND product_id = 'gurukul'",
    )
    .await;
    assert_eq!(
        stored, 1,
        "the other product's version with the shared intent id is stored"
    );
}

/// Name of the forged-header case.
const FORGED_HEADERS: &str = "producer headers that impersonate the gate";

/// Headers a producer sets to impersonate the gate's verdict (case variants included).
const FORGED: [(&str, &str); 3] = [
    ("bucket.errors.reason", "ACCEPTED"),
    ("BUCKET.ERRORS.REASON", "NONE"),
    ("bucket.errors.policy.version", "forged"),
];
