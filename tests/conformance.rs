//! The producer conformance vectors in `docs/conformance/vectors.json`, checked against the
//! crate's own code so they cannot drift from the contract: every positive vector's Avro body
//! (`wire::intent::encode`), Confluent frame (`wire::framing`), both signature headers
//! (`core::signature`, verified with the shipped policy's keys) and murmur2 partitions
//! (`core::partitioner`); the positive vectors are then decided in order on one state by the pure
//! `decide` and must all be accepted; every negative vector is decided on a fresh state and must
//! get exactly its expected reason codes.
//!
//! `BUCKET_CONFORMANCE_REGEN=1 cargo test --test conformance` rewrites the file from the code
//! (then review the diff: a changed byte is a contract change for every producer).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bhiv_bucket::core::partitioner::{home_partition, murmur2};
use bhiv_bucket::core::signature::{self, SignKey, VerifyKey};
use bhiv_bucket::core::{
    ArtifactIntent, Envelope, Operation, Outcome, PartitionState, Policy, SignatureHeaders, decide,
};
use bhiv_bucket::wire::{framing, intent as intent_codec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The schema id every vector's frame carries (a real producer uses the registry's id).
const SCHEMA_ID: u32 = 7;
/// Partition counts each vector gives the murmur2 partition for.
const PARTITION_COUNTS: [i32; 3] = [1, 6, 24];
/// Values longer than this are given by length, SHA-256 and a prefix instead of hex.
const INLINE_MAX: usize = 4096;
/// The content cap of the code (`limits.max_content_bytes` may not exceed it).
const SIXTEEN_MIB: usize = 16 * 1024 * 1024;
/// First client time; each vector's is one second later than the previous one's.
const T0: i64 = 1_767_225_600_000;
/// The pattern large contents repeat (ASCII `0123456789abcdef`).
const PATTERN: &[u8] = b"0123456789abcdef";

fn vectors_path() -> String {
    format!("{ROOT}/docs/conformance/vectors.json")
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Content of `length` bytes repeating `pattern` (the generator rule of large contents).
fn pattern_content(pattern: &[u8], length: usize) -> Vec<u8> {
    pattern.iter().copied().cycle().take(length).collect()
}

/// The demo key files a vector signs with (deploy/demo/keys: DEMO KEYS, local stack only).
fn demo_seed(integration: &str) -> [u8; 32] {
    let text =
        std::fs::read_to_string(format!("{ROOT}/deploy/demo/keys/{integration}.ed1.ed25519"))
            .unwrap();
    STANDARD.decode(text.trim()).unwrap().try_into().unwrap()
}

fn demo_secret(integration: &str) -> Vec<u8> {
    std::fs::read_to_string(format!("{ROOT}/deploy/demo/keys/{integration}.hm1.hmac"))
        .unwrap()
        .trim()
        .as_bytes()
        .to_vec()
}

/// RFC 8410 PKCS#8 v1 prefix of an Ed25519 private key (the 32-byte seed follows).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// RFC 8410 SubjectPublicKeyInfo prefix of an Ed25519 public key (the 32-byte key follows).
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn key_entry(integration: &str) -> Value {
    let seed = demo_seed(integration);
    let public = SignKey::ed25519_from_seed(&seed).public_key().unwrap();
    let pkcs8 = [&PKCS8_ED25519_PREFIX[..], &seed].concat();
    let spki = [&SPKI_ED25519_PREFIX[..], &public].concat();
    json!({
        "integration_id": integration,
        "ed25519": {
            "key_id": "ed1",
            "seed_base64": STANDARD.encode(seed),
            "public_key_base64": STANDARD.encode(public),
            "pkcs8_der_base64": STANDARD.encode(&pkcs8),
            "pkcs8_pem": pem("PRIVATE KEY", &pkcs8),
            "spki_pem": pem("PUBLIC KEY", &spki),
        },
        "hmac-sha256": {
            "key_id": "hm1",
            "secret_utf8": String::from_utf8(demo_secret(integration)).unwrap(),
        },
    })
}

/// How a vector's content is written in the JSON.
enum Content {
    Null,
    Bytes(Vec<u8>),
    Pattern(usize),
}

struct Spec {
    name: &'static str,
    about: &'static str,
    intent: ArtifactIntent,
    content: Content,
}

fn base(n: i64, product: &str, artifact: &str, class: &str) -> ArtifactIntent {
    ArtifactIntent {
        intent_id: format!("00000000-0000-4000-8000-{:012}", n),
        product_id: product.into(),
        integration_id: format!("{product}-backend"),
        owner_id: "asha".into(),
        requester_id: "asha".into(),
        artifact_id: artifact.into(),
        artifact_class: class.into(),
        operation: Operation::Create,
        expected_version: None,
        content: None,
        content_type: "text/plain".into(),
        metadata: String::new(),
        purpose: "conformance vector".into(),
        client_time: T0 + n * 1000,
    }
}

/// The positive vectors, in the order they are decided on one state.
fn specs() -> Vec<Spec> {
    let mut out = Vec::new();
    let mut push = |name, about, mut intent: ArtifactIntent, content: Content| {
        intent.content = match &content {
            Content::Null => None,
            Content::Bytes(b) => Some(b.clone()),
            Content::Pattern(n) => Some(pattern_content(PATTERN, *n)),
        };
        out.push(Spec {
            name,
            about,
            intent,
            content,
        });
    };
    let mut i = base(1, "ai_assistant", "faq-1", "document");
    i.metadata = r#"{"lang":"en"}"#.into();
    push(
        "create",
        "CREATE with text content and a small metadata object",
        i,
        Content::Bytes(b"How do I reset my password?".to_vec()),
    );
    let mut i = base(2, "ai_assistant", "faq-1", "document");
    i.operation = Operation::Update;
    i.expected_version = Some(1);
    i.metadata = r#"{"lang":"en","rev":2}"#.into();
    i.purpose = "clarify the answer".into();
    push(
        "update",
        "UPDATE of faq-1 from version 1 (expected_version set)",
        i,
        Content::Bytes(b"How do I reset my password? Use the link.".to_vec()),
    );
    let mut i = base(3, "ai_assistant", "faq-1", "document");
    i.operation = Operation::Delete;
    i.expected_version = Some(2);
    i.content_type = "application/octet-stream".into();
    i.purpose = "retired".into();
    push(
        "delete",
        "DELETE of faq-1 at version 2: content null, default content_type",
        i,
        Content::Null,
    );
    let mut i = base(4, "gurukul", "पाठ-७/分数-🚀", "transcript");
    i.owner_id = "José Ñúñez".into();
    i.requester_id = "José Ñúñez".into();
    i.metadata =
        r#"{"lang":"hi","title":"पाठ ७: भिन्न","tags":["गणित","数学"],"emoji":"🚀"}"#.into();
    i.purpose = "क्लास रिकॉर्डिंग — lesson 7".into();
    i.content_type = "text/plain; charset=utf-8".into();
    push(
        "unicode",
        "Unicode ids, owner, purpose and metadata (UTF-8 in Avro strings, lengths in bytes)",
        i,
        Content::Bytes("पाठ ७: भिन्न — fractions ½ ¼".as_bytes().to_vec()),
    );
    let mut i = base(5, "workflow", "empty-state", "workflow_state");
    i.content_type = "application/json".into();
    push(
        "empty-content",
        "CREATE with empty content (zero bytes, not null) and empty metadata",
        i,
        Content::Bytes(Vec::new()),
    );
    let mut i = base(6, "ai_assistant", "nested-meta", "config");
    i.metadata =
        r#"{"source":{"system":"crm","ids":[1,2,3]},"note":"quote \" and backslash \\ and\nnewline","n":-1.5e3,"ok":true,"none":null}"#
            .into();
    i.content_type = "application/vnd.example+json".into();
    push(
        "metadata",
        "metadata with nesting, escapes, numbers, booleans and null",
        i,
        Content::Bytes(vec![0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]),
    );
    let i = base(7, "ai_assistant", "big-16mib", "document");
    push(
        "content-16mib",
        "content of exactly 16 MiB (16777216 bytes), the code's cap: accepted for ai_assistant",
        i,
        Content::Pattern(SIXTEEN_MIB),
    );
    out
}

fn content_json(c: &Content) -> Value {
    match c {
        Content::Null => Value::Null,
        Content::Bytes(b) => json!({ "hex": hex(b) }),
        Content::Pattern(n) => json!({
            "pattern_hex": hex(PATTERN),
            "length": n,
            "sha256": sha256(&pattern_content(PATTERN, *n)),
        }),
    }
}

fn intent_json(i: &ArtifactIntent, content: &Content) -> Value {
    json!({
        "intent_id": i.intent_id,
        "product_id": i.product_id,
        "integration_id": i.integration_id,
        "owner_id": i.owner_id,
        "requester_id": i.requester_id,
        "artifact_id": i.artifact_id,
        "artifact_class": i.artifact_class,
        "operation": i.operation.as_str(),
        "expected_version": i.expected_version,
        "content": content_json(content),
        "content_type": i.content_type,
        "metadata": i.metadata,
        "purpose": i.purpose,
        "client_time": i.client_time,
    })
}

/// Bytes as the vectors give them: inline hex when short, always length and SHA-256, and a
/// 64-byte hex prefix when long.
fn bytes_json(prefix: &str, b: &[u8], out: &mut serde_json::Map<String, Value>) {
    if b.len() <= INLINE_MAX {
        out.insert(format!("{prefix}_hex"), hex(b).into());
    } else {
        out.insert(format!("{prefix}_prefix_hex"), hex(&b[..64]).into());
    }
    out.insert(format!("{prefix}_length"), b.len().into());
    out.insert(format!("{prefix}_sha256"), sha256(b).into());
}

fn sign(integration: &str, value: &[u8]) -> (String, String) {
    let ed = SignKey::ed25519_from_seed(&demo_seed(integration)).header(integration, "ed1", value);
    let hm = SignKey::Hmac(demo_secret(integration)).header(integration, "hm1", value);
    (ed, hm)
}

fn partitions_json(key: &[u8]) -> Value {
    let mut m = serde_json::Map::new();
    for n in PARTITION_COUNTS {
        m.insert(n.to_string(), home_partition(key, n).into());
    }
    Value::Object(m)
}

fn positive_json(s: &Spec) -> Value {
    let body = intent_codec::encode(&s.intent).unwrap();
    let value = framing::frame(SCHEMA_ID, &body);
    let (ed, hm) = sign(&s.intent.integration_id, &value);
    let mut m = serde_json::Map::new();
    m.insert("name".into(), s.name.into());
    m.insert("about".into(), s.about.into());
    m.insert("intent".into(), intent_json(&s.intent, &s.content));
    bytes_json("avro_body", &body, &mut m);
    bytes_json("value", &value, &mut m);
    m.insert("key_hex".into(), hex(s.intent.product_id.as_bytes()).into());
    m.insert(
        "signatures".into(),
        json!({ "ed25519": ed, "hmac-sha256": hm }),
    );
    m.insert(
        "partitions".into(),
        partitions_json(s.intent.product_id.as_bytes()),
    );
    Value::Object(m)
}

/// A record that breaks one rule: what is sent and the reasons it must get.
struct Negative {
    name: &'static str,
    about: &'static str,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<String>,
    partition: i32,
    reasons: Vec<&'static str>,
}

const NEGATIVE_PARTITIONS: i32 = 6;

fn negatives() -> Vec<Negative> {
    let mut i = base(101, "gurukul", "neg-1", "transcript");
    i.metadata = r#"{"lang":"en"}"#.into();
    i.content = Some(b"Lesson 1".to_vec());
    let home = |i: &ArtifactIntent| home_partition(i.product_id.as_bytes(), NEGATIVE_PARTITIONS);
    let value = |i: &ArtifactIntent| framing::frame(SCHEMA_ID, &intent_codec::encode(i).unwrap());
    let good = |i: &ArtifactIntent| {
        let v = value(i);
        let (ed, _) = sign(&i.integration_id, &v);
        Negative {
            name: "",
            about: "",
            key: Some(i.product_id.clone().into_bytes()),
            value: v,
            headers: vec![ed],
            partition: home(i),
            reasons: Vec::new(),
        }
    };
    let mut out = Vec::new();

    // Signed, then re-serialised with the metadata written by another JSON encoder.
    let mut n = good(&i);
    let mut resent = i.clone();
    resent.metadata = r#"{"lang": "en"}"#.into();
    n.value = value(&resent);
    out.push(Negative {
        name: "signed-then-reserialised",
        about: "the signature covers the first serialisation; the value sent is a second one \
                (metadata re-encoded with a space): sign the exact bytes you send",
        reasons: vec!["SIGNATURE_INVALID"],
        ..n
    });

    let mut n = good(&i);
    let body = intent_codec::encode(&i).unwrap();
    n.headers = vec![sign(&i.integration_id, &body).0];
    out.push(Negative {
        name: "signed-body-not-frame",
        about: "the signature covers the Avro body only; it must cover the whole value \
                (0x00, schema id, body)",
        reasons: vec!["SIGNATURE_INVALID"],
        ..n
    });

    let mut n = good(&i);
    n.headers = vec![sign("ai_assistant-backend", &n.value).0];
    out.push(Negative {
        name: "header-of-another-integration",
        about: "a valid signature by another integration's key: the header's integration must \
                be the intent's integration_id",
        reasons: vec!["SIGNATURE_MISMATCH"],
        ..n
    });

    let mut other = i.clone();
    other.integration_id = "ai_assistant-backend".into();
    let n = good(&other);
    out.push(Negative {
        name: "integration-not-allowed",
        about: "intent and signature of ai_assistant-backend, for product gurukul: an \
                integration writes only for its own products",
        reasons: vec!["INTEGRATION_NOT_ALLOWED"],
        ..n
    });

    let mut n = good(&i);
    n.partition = (home(&i) + 1) % NEGATIVE_PARTITIONS;
    out.push(Negative {
        name: "wrong-partition",
        about: "produced on another partition than murmur2's (a CRC32 or FNV partitioner): \
                6 partitions, the home partition plus one",
        reasons: vec!["WRONG_PARTITION"],
        ..n
    });

    let mut n = good(&i);
    n.key = Some(b"Gurukul".to_vec());
    n.partition = home_partition(b"Gurukul", NEGATIVE_PARTITIONS);
    out.push(Negative {
        name: "key-not-product",
        about: "record key differs from product_id (case matters)",
        reasons: vec!["KEY_MISMATCH"],
        ..n
    });

    let mut n = good(&i);
    let second = n.headers[0].clone();
    n.headers.push(second);
    out.push(Negative {
        name: "signature-header-twice",
        about: "two bucket-signature headers, even two copies of a valid one: exactly one is \
                allowed",
        reasons: vec!["SIGNATURE_REPEATED"],
        ..n
    });

    let mut n = good(&i);
    n.headers = vec![n.headers[0].replacen(":ed1:", ":ed9:", 1)];
    out.push(Negative {
        name: "unknown-key-id",
        about: "a key id the integration does not have",
        reasons: vec!["UNKNOWN_KEY"],
        ..n
    });

    let mut n = good(&i);
    n.headers.clear();
    out.push(Negative {
        name: "unsigned",
        about: "no bucket-signature header (the shipped policy requires one)",
        reasons: vec!["SIGNATURE_MISSING"],
        ..n
    });

    let mut big = base(102, "gurukul", "neg-big", "transcript");
    big.content = Some(pattern_content(PATTERN, 8 * 1024 * 1024 + 1));
    let n = good(&big);
    out.push(Negative {
        name: "content-over-product-limit",
        about: "8 MiB + 1 byte of content for gurukul, whose limit is 8 MiB (content: 8388609 \
                bytes of the pattern)",
        reasons: vec!["CONTENT_TOO_LARGE"],
        ..n
    });
    out
}

fn negative_json(n: &Negative) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), n.name.into());
    m.insert("about".into(), n.about.into());
    m.insert("key_hex".into(), n.key.as_deref().map(hex).into());
    bytes_json("value", &n.value, &mut m);
    m.insert("signature_headers".into(), n.headers.clone().into());
    m.insert("partition".into(), n.partition.into());
    m.insert("partition_count".into(), NEGATIVE_PARTITIONS.into());
    m.insert("expected_reasons".into(), n.reasons.clone().into());
    Value::Object(m)
}

/// Keys whose murmur2 partitions every client's partitioner must reproduce.
const PARTITION_KEYS: [&str; 10] = [
    "ai_assistant",
    "ai_avatar",
    "gurukul",
    "enforcement_engine",
    "workflow",
    "",
    "a",
    "ürün-ürünü",
    "製品",
    "product-🚀-id",
];

fn generate() -> Value {
    let partitioner: Vec<Value> = PARTITION_KEYS
        .iter()
        .map(|k| {
            json!({
                "key_utf8": k,
                "key_hex": hex(k.as_bytes()),
                "murmur2": murmur2(k.as_bytes()),
                "partitions": partitions_json(k.as_bytes()),
            })
        })
        .collect();
    let keys: Vec<Value> = [
        "ai_assistant-backend",
        "gurukul-backend",
        "workflow-backend",
    ]
    .iter()
    .map(|i| key_entry(i))
    .collect();
    let vectors: Vec<Value> = specs().iter().map(positive_json).collect();
    let negative: Vec<Value> = negatives().iter().map(negative_json).collect();
    json!({
        "format": 1,
        "about": "BHIV Bucket producer conformance vectors; see README.md beside this file. \
                  Generated by tests/conformance.rs from the gate's own code.",
        "schema_id": SCHEMA_ID,
        "content_pattern_rule": "content of N bytes given as {pattern_hex, length, sha256}: \
                  the pattern's bytes repeated, cut at N",
        "keys": keys,
        "vectors": vectors,
        "negative": negative,
        "partitioner": partitioner,
    })
}

fn shipped_policy() -> Policy {
    bhiv_bucket::policy::file::load(Path::new(&format!("{ROOT}/deploy/policy.toml")))
        .unwrap()
        .0
}

/// With `BUCKET_CONFORMANCE_REGEN` set, (re)writes the file once, before any test reads it.
fn regenerate_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("BUCKET_CONFORMANCE_REGEN").is_some() {
            let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
            std::fs::write(vectors_path(), text).unwrap();
        }
    });
}

fn stored() -> Value {
    regenerate_if_asked();
    let text = std::fs::read_to_string(vectors_path()).expect("docs/conformance/vectors.json");
    serde_json::from_str(&text).unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn str_of(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string()
}

/// The intent a vector describes, read from its JSON (not from the generator).
fn intent_of(v: &Value) -> ArtifactIntent {
    let content = match &v["content"] {
        Value::Null => None,
        c if c.get("hex").is_some() => Some(unhex(&c["hex"])),
        c => {
            let bytes = pattern_content(
                &unhex(&c["pattern_hex"]),
                c["length"].as_u64().unwrap() as usize,
            );
            assert_eq!(sha256(&bytes), c["sha256"].as_str().unwrap());
            Some(bytes)
        }
    };
    let operation = match v["operation"].as_str().unwrap() {
        "CREATE" => Operation::Create,
        "UPDATE" => Operation::Update,
        "DELETE" => Operation::Delete,
        other => panic!("operation {other}"),
    };
    ArtifactIntent {
        intent_id: str_of(v, "intent_id"),
        product_id: str_of(v, "product_id"),
        integration_id: str_of(v, "integration_id"),
        owner_id: str_of(v, "owner_id"),
        requester_id: str_of(v, "requester_id"),
        artifact_id: str_of(v, "artifact_id"),
        artifact_class: str_of(v, "artifact_class"),
        operation,
        expected_version: v["expected_version"].as_i64(),
        content,
        content_type: str_of(v, "content_type"),
        metadata: str_of(v, "metadata"),
        purpose: str_of(v, "purpose"),
        client_time: v["client_time"].as_i64().unwrap(),
    }
}

/// Checks bytes against a vector's `<prefix>_hex` (or prefix) and its length and SHA-256.
fn check_bytes(name: &str, prefix: &str, v: &Value, b: &[u8]) {
    if let Some(h) = v.get(format!("{prefix}_hex")) {
        assert_eq!(hex(b), h.as_str().unwrap(), "{name}: {prefix}_hex");
    } else {
        let p = v[format!("{prefix}_prefix_hex")].as_str().unwrap();
        assert!(hex(b).starts_with(p), "{name}: {prefix}_prefix_hex");
    }
    assert_eq!(
        v[format!("{prefix}_length")].as_u64(),
        Some(b.len() as u64),
        "{name}: {prefix}_length"
    );
    assert_eq!(
        v[format!("{prefix}_sha256")].as_str().unwrap(),
        sha256(b),
        "{name}: {prefix}_sha256"
    );
}

fn policy_key<'p>(policy: &'p Policy, header: &str) -> (&'p VerifyKey, Vec<u8>) {
    let h = signature::parse(header.as_bytes()).unwrap();
    let key = &policy.integrations[&h.integration_id].keys[&h.key_id].key;
    assert_eq!(key.alg(), h.alg, "{header}");
    (key, h.signature)
}

#[test]
fn the_vectors_file_is_what_the_code_generates() {
    let generated = generate();
    let stored = stored();
    for section in ["vectors", "negative", "partitioner", "keys"] {
        let (a, b) = (
            stored[section].as_array().unwrap(),
            generated[section].as_array().unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{section}: number of entries");
        for (s, g) in a.iter().zip(b) {
            assert_eq!(s, g, "{section} entry differs from what the code generates");
        }
    }
    assert_eq!(stored, generated, "top-level fields");
}

#[test]
fn positive_vectors_encode_sign_partition_and_are_accepted_in_order() {
    let policy = shipped_policy();
    let doc = stored();
    let schema_id = doc["schema_id"].as_u64().unwrap() as u32;
    let mut state = PartitionState::default();
    let vectors = doc["vectors"].as_array().unwrap();
    let operations: std::collections::BTreeSet<&str> = vectors
        .iter()
        .map(|v| v["intent"]["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations.len(), 3, "every operation has a vector");
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let intent = intent_of(&v["intent"]);
        let body = intent_codec::encode(&intent).unwrap();
        check_bytes(name, "avro_body", v, &body);
        assert_eq!(intent_codec::decode(&body).unwrap(), intent, "{name}");
        let value = framing::frame(schema_id, &body);
        check_bytes(name, "value", v, &value);
        assert_eq!(
            framing::unframe(Some(&value)).unwrap(),
            (schema_id, &body[..])
        );
        let key = unhex(&v["key_hex"]);
        assert_eq!(key, intent.product_id.as_bytes(), "{name}: key");
        for n in PARTITION_COUNTS {
            assert_eq!(
                v["partitions"][n.to_string()].as_i64(),
                Some(i64::from(home_partition(&key, n))),
                "{name}: partition of {n}"
            );
        }
        for alg in ["ed25519", "hmac-sha256"] {
            let header = v["signatures"][alg].as_str().unwrap();
            let (k, sig) = policy_key(&policy, header);
            assert!(signature::verify(k, &value, &sig), "{name}: {alg}");
            assert!(
                !signature::verify(k, &body, &sig),
                "{name}: {alg} over the body"
            );
        }
        // Decided as the gate would, on the home partition of 6: accepted with either header
        // on the same state; the Ed25519 decision is kept and the next vector builds on it.
        let decide_with = |alg: &str| {
            let header = v["signatures"][alg].as_str().unwrap();
            let env = Envelope {
                key: Some(&key),
                partition: home_partition(&key, 6),
                partition_count: 6,
                payload: Ok(&intent),
                value: &value,
                signature: SignatureHeaders::One(header.as_bytes()),
            };
            decide(&env, &state, &policy, intent.client_time)
        };
        let hm = decide_with("hmac-sha256");
        assert_eq!(
            hm.outcome,
            Outcome::Accepted,
            "{name} hmac: {:?}",
            hm.findings
        );
        let ed = decide_with("ed25519");
        assert_eq!(
            ed.outcome,
            Outcome::Accepted,
            "{name} ed25519: {:?}",
            ed.findings
        );
        state.record(&ed, policy.limits.replay_window);
    }
}

#[test]
fn negative_vectors_get_their_reason_codes() {
    let policy = shipped_policy();
    let doc = stored();
    let negatives = doc["negative"].as_array().unwrap();
    assert!(negatives.len() >= 8);
    for v in negatives {
        let name = v["name"].as_str().unwrap();
        let value = match v.get("value_hex") {
            Some(h) => unhex(h),
            None => {
                // The large one: rebuilt from the same rule as the generator, then checked.
                let n = negatives_by_name(name);
                n.value
            }
        };
        check_bytes(name, "value", v, &value);
        let (_, body) = framing::unframe(Some(&value)).unwrap();
        let intent = intent_codec::decode(body).unwrap();
        let key = v["key_hex"].as_str().map(|h| hex::decode(h).unwrap());
        let headers: Vec<String> = v["signature_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect();
        let env = Envelope {
            key: key.as_deref(),
            partition: v["partition"].as_i64().unwrap() as i32,
            partition_count: v["partition_count"].as_i64().unwrap() as i32,
            payload: Ok(&intent),
            value: &value,
            signature: SignatureHeaders::of(headers.iter().map(|h| h.as_bytes())),
        };
        let d = decide(
            &env,
            &PartitionState::default(),
            &policy,
            intent.client_time,
        );
        let got: Vec<&str> = d.reasons().iter().map(|r| r.as_str()).collect();
        let want: Vec<&str> = v["expected_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{name}: {:?}", d.findings);
    }
}

fn negatives_by_name(name: &str) -> Negative {
    negatives().into_iter().find(|n| n.name == name).unwrap()
}

#[test]
fn partitioner_table_matches_murmur2_and_ed25519_keys_are_consistent() {
    let doc = stored();
    for p in doc["partitioner"].as_array().unwrap() {
        let key = unhex(&p["key_hex"]);
        assert_eq!(key, p["key_utf8"].as_str().unwrap().as_bytes());
        assert_eq!(p["murmur2"].as_i64(), Some(i64::from(murmur2(&key))));
        for n in PARTITION_COUNTS {
            assert_eq!(
                p["partitions"][n.to_string()].as_i64(),
                Some(i64::from(home_partition(&key, n)))
            );
        }
    }
    let policy = shipped_policy();
    for k in doc["keys"].as_array().unwrap() {
        let ed = &k["ed25519"];
        let seed: [u8; 32] = STANDARD
            .decode(ed["seed_base64"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let der = STANDARD
            .decode(ed["pkcs8_der_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(der, [&PKCS8_ED25519_PREFIX[..], &seed].concat());
        let public = SignKey::ed25519_from_seed(&seed).public_key().unwrap();
        let integration = k["integration_id"].as_str().unwrap();
        let want = &policy.integrations[integration].keys["ed1"].key;
        assert_eq!(
            format!("{want:?}"),
            format!("Ed25519({})", STANDARD.encode(public)),
            "{integration}: the policy's public key is the seed's"
        );
    }
}
