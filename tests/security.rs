//! Kafka security against the real broker's SASL_SSL listener (SCRAM-SHA-512 over TLS, the
//! local CA of deploy/local/kafka.sh, ACLs from deploy/acls.toml applied by `bucket acls
//! apply`): the gate as `gate` decides an intent produced by `product-demo`; the product cannot
//! write the gate's topics; a wrong password and plaintext to the SASL port are refused; secrets
//! supplied by reference never reach the logs.
//!
//! PostgreSQL TLS (deploy/local/postgres.sh: hostssl only, server certificate from the same
//! local CA): plaintext TCP is refused by the server; `verify-full` and `verify-ca` refuse a
//! server certificate that does not chain to the configured CA; `verify-full` also refuses a
//! host name the certificate does not carry; with the right CA the session is encrypted
//! (`pg_stat_ssl`), and the binary's own clients behave the same.
//!
//! Environment (as deploy/local/env.sh): `BUCKET_STACK_DIR` (CA in `kafka/tls/ca.crt`, SCRAM
//! passwords in `kafka/secrets/<user>.password`), `BUCKET_KAFKA_SASL_PORT` (9094),
//! `BUCKET_PG_URL` (owner URL; default the local stack with `sslmode=verify-full`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn stack_dir() -> PathBuf {
    std::env::var("BUCKET_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(REPO).join(".stack"))
}

fn sasl_brokers() -> String {
    let port = std::env::var("BUCKET_KAFKA_SASL_PORT").unwrap_or_else(|_| "9094".into());
    format!("127.0.0.1:{port}")
}

fn ca() -> String {
    stack_dir()
        .join("kafka/tls/ca.crt")
        .to_string_lossy()
        .into_owned()
}

fn password_file(user: &str) -> PathBuf {
    stack_dir().join(format!("kafka/secrets/{user}.password"))
}

fn password(user: &str) -> String {
    std::fs::read_to_string(password_file(user))
        .unwrap_or_else(|e| panic!("{}: {e}", password_file(user).display()))
        .trim()
        .to_string()
}

/// Environment that makes a `bucket` process authenticate as `user` over SASL_SSL.
fn sasl_env(user: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BUCKET_BROKERS", sasl_brokers()),
        ("BUCKET_KAFKA_SECURITY_PROTOCOL", "sasl_ssl".into()),
        ("BUCKET_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
        ("BUCKET_KAFKA_SASL_USERNAME", user.into()),
        (
            "BUCKET_KAFKA_SASL_PASSWORD",
            format!("file:{}", password_file(user).display()),
        ),
        ("BUCKET_KAFKA_SSL_CA", ca()),
    ]
}

/// An rdkafka config for `user` with `password` over SASL_SSL.
fn sasl_config(user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", sasl_brokers())
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("ssl.ca.location", ca());
    c
}

/// Runs `bucket <args>` to completion with `env`; returns (success, stdout + stderr).
fn bucket(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucket"));
    cmd.current_dir(REPO)
        .args(args)
        .env("BUCKET_REGISTRY_URL", registry_url())
        .env("RUST_LOG", "info,rdkafka=warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Topics for the test plus the ACLs of deploy/acls.toml for them, applied as `admin` over
/// SASL_SSL by `bucket acls apply`.
async fn topics_with_acls(partitions: i32) -> (String, bhiv_bucket::gate::TopicNames) {
    let sfx = suffix();
    let topics = create_topics(&sfx, partitions).await;
    let (ok, out) = bucket(
        &["acls", "apply", "--topic-suffix", &sfx],
        &sasl_env("admin"),
    );
    assert!(ok, "bucket acls apply failed:\n{out}");
    assert!(out.contains("applied"), "{out}");
    (sfx, topics)
}

/// Collects the errors and log lines a client reports (authentication, transport).
#[derive(Default)]
struct Errors(Mutex<Vec<String>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("{error:?} {reason}"));
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("log {fac}: {message}"));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Errors {}

impl Errors {
    fn seen(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Metadata through `c`; the client's own error reports on failure.
fn metadata(c: &ClientConfig) -> (Result<usize, KafkaError>, Vec<String>) {
    let consumer: BaseConsumer<Errors> = match c.create_with_context(Errors::default()) {
        Ok(c) => c,
        Err(e) => return (Err(e), Vec::new()),
    };
    let r = consumer
        .fetch_metadata(None, Duration::from_secs(8))
        .map(|m| m.brokers().len());
    // Error events reach the context or come back from poll only while the client is polled.
    let mut polled = Vec::new();
    for _ in 0..10 {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
            polled.push(format!("{e:?} {e}"));
        }
    }
    let mut seen = consumer.context().seen();
    seen.extend(polled);
    (r, seen)
}

/// Writes the JSON lines of `n` HMAC-signed creates for `ai_assistant` to a temp file.
fn intents_file(name: &str, n: usize) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.jsonl"));
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "product_id": "ai_assistant",
                "artifact_id": format!("sec-{}-{i}", uuid::Uuid::new_v4().simple()),
                "artifact_class": "document",
                "content": format!("document {i} produced over SASL_SSL"),
                "content_type": "text/plain",
                "owner_id": "asha",
                "purpose": "security test",
            })
            .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// `bucket produce` as `product-demo` over SASL_SSL (HMAC-signed with the demo keys).
fn produce_as_product(sfx: &str, file: &std::path::Path) {
    let mut env = sasl_env("product-demo");
    env.push(("BUCKET_TOPIC_SUFFIX", sfx.to_string()));
    let keys = format!("{REPO}/deploy/demo/keys");
    let (ok, out) = bucket(
        &[
            "produce",
            "--keys-dir",
            &keys,
            "--hmac",
            "--file",
            &file.to_string_lossy(),
        ],
        &env,
    );
    assert!(ok, "bucket produce as product-demo failed:\n{out}");
}

fn gate_log(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("logs/{name}.log"));
    std::fs::read_to_string(&path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_as_gate_decides_an_intent_from_a_product_and_products_cannot_write_gate_topics() {
    let (sfx, topics) = topics_with_acls(2).await;
    let group = format!("bucket-gate{sfx}");
    let name = format!("gate{sfx}-sasl");
    let mut env = sasl_env("gate");
    env.push(("BUCKET_TOPIC_SUFFIX", sfx.clone()));
    let _gate = spawn(
        &name,
        &[
            "gate",
            "--gate-id",
            "g1",
            "--group",
            &group,
            "--commit-interval-ms",
            "100",
        ],
        &env,
    );
    produce_as_product(&sfx, &intents_file(&format!("intents{sfx}"), 3));
    wait_until(Duration::from_secs(120), "3 accepted over SASL_SSL", || {
        read_committed(&topics.accepted).len() == 3
    });
    assert!(read_committed(&topics.audit).len() >= 3);
    assert!(read_committed(&topics.rejected).is_empty());

    // The product principal may write intents only.
    let product: FutureProducer = sasl_config("product-demo", &password("product-demo"))
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    for topic in [&topics.audit, &topics.accepted, &topics.rejected] {
        let r = product
            .send(
                FutureRecord::to(topic)
                    .key("ai_assistant")
                    .payload("forged decision"),
                Duration::from_secs(10),
            )
            .await;
        match r {
            Err((KafkaError::MessageProduction(code), _)) => assert_eq!(
                code,
                RDKafkaErrorCode::TopicAuthorizationFailed,
                "writing {topic}"
            ),
            other => panic!("product wrote {topic}: {other:?}"),
        }
    }
    // ...and cannot read the accepted topic either.
    let reader: BaseConsumer = sasl_config("product-demo", &password("product-demo"))
        .set("group.id", format!("bucket-gate{sfx}-thief"))
        .create()
        .unwrap();
    reader.subscribe(&[&topics.accepted]).unwrap();
    let denied = (0..40).find_map(|_| match reader.poll(Duration::from_millis(250)) {
        Some(Err(e)) => Some(e),
        Some(Ok(m)) => panic!("product read {:?}", m.payload()),
        None => None,
    });
    assert!(
        denied.is_some(),
        "reading accepted as a product was not refused"
    );
    assert!(
        read_committed(&topics.accepted).len() == 3,
        "no forged record landed"
    );
}

#[test]
fn a_wrong_password_fails_authentication() {
    let (r, errors) = metadata(&sasl_config("product-demo", "not-the-password"));
    assert!(r.is_err(), "metadata with a wrong password: {r:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.to_ascii_lowercase().contains("authentication")),
        "no authentication error reported: {errors:?}"
    );
    // Control: the right password works on the same listener.
    let (ok, _) = metadata(&sasl_config("product-demo", &password("product-demo")));
    assert!(ok.is_ok(), "{ok:?}");
    // The binary refuses an inline password before connecting at all.
    let mut env = sasl_env("product-demo");
    env.push(("BUCKET_KAFKA_SASL_PASSWORD", "not-the-password".into()));
    let (ok, out) = bucket(&["topics", "apply", "--profile", "local"], &env);
    assert!(!ok && out.contains("reference"), "{out}");
}

#[test]
fn plaintext_and_untrusted_tls_to_the_sasl_port_fail() {
    let mut plain = ClientConfig::new();
    plain.set("bootstrap.servers", sasl_brokers());
    let (r, _) = metadata(&plain);
    assert!(r.is_err(), "plaintext to the SASL_SSL port: {r:?}");
    // Control: the same plaintext client works on the PLAINTEXT listener of the local stack.
    plain.set("bootstrap.servers", brokers());
    assert!(metadata(&plain).0.is_ok());
    // TLS trusting the system CAs only, not the local CA: the broker certificate is refused.
    let mut untrusted = sasl_config("product-demo", &password("product-demo"));
    untrusted.set("ssl.ca.location", "/etc/ssl/certs/ca-certificates.crt");
    let (r, errors) = metadata(&untrusted);
    assert!(
        r.is_err(),
        "untrusted certificate accepted: {r:?} {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_given_by_reference_never_reach_the_logs() {
    let (sfx, topics) = topics_with_acls(1).await;
    let group = format!("bucket-gate{sfx}");
    let name = format!("gate{sfx}-debug");
    let mut env = sasl_env("gate");
    env.push(("BUCKET_TOPIC_SUFFIX", sfx.clone()));
    // Everything at debug (rdkafka targets included); the SASL password and the policy's HMAC secrets
    // are given as file: references.
    env.push(("RUST_LOG", "debug".into()));
    let _gate = spawn(
        &name,
        &[
            "gate",
            "--gate-id",
            "g1",
            "--group",
            &group,
            "--commit-interval-ms",
            "100",
        ],
        &env,
    );
    produce_as_product(&sfx, &intents_file(&format!("debug{sfx}"), 5));
    wait_until(Duration::from_secs(120), "5 accepted", || {
        read_committed(&topics.accepted).len() == 5
    });
    let log = gate_log(&name);
    assert!(log.contains("DEBUG"), "the gate did not log at debug level");
    let hmac = std::fs::read_to_string(format!(
        "{REPO}/deploy/demo/keys/ai_assistant-backend.hm1.hmac"
    ))
    .unwrap();
    let secrets = [
        ("SASL password", password("gate")),
        ("HMAC secret", hmac.trim().to_string()),
    ];
    for (what, value) in &secrets {
        assert!(value.len() >= 16, "{what} too short to search for");
        assert!(
            !log.contains(value.as_str()),
            "{what} found in the gate log"
        );
    }
}

/// Sends one record to `topic` as the product principal; Ok when the broker took it.
async fn write_as_product(topic: &str) -> Result<(), KafkaError> {
    let product: FutureProducer = sasl_config("product-demo", &password("product-demo"))
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    product
        .send(
            FutureRecord::to(topic).key("ai_assistant").payload("x"),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// ACL drift: a grant made behind the declaration's back (a product allowed to write the
/// accepted topic) is reported by `bucket acls apply`, removed by `--prune`, and the product
/// is refused again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_beyond_the_declaration_are_reported_and_pruned() {
    let (sfx, topics) = topics_with_acls(1).await;
    let admin = sasl_env("admin");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/acls.toml");
    let dir = tempfile::tempdir().unwrap();
    let widened = dir.path().join("acls.toml");
    let text = std::fs::read_to_string(shipped).unwrap()
        + "\n[[grant]]\nprincipals = [\"User:product-demo\"]\nresource = \"topic\"\n\
           names = [\"bucket.accepted\"]\noperations = [\"Write\"]\n";
    std::fs::write(&widened, text).unwrap();
    let widened = widened.to_str().unwrap().to_string();
    let (ok, out) = bucket(
        &["acls", "apply", "--topic-suffix", &sfx, "--file", &widened],
        &admin,
    );
    assert!(ok, "{out}");
    assert!(
        write_as_product(&topics.accepted).await.is_ok(),
        "the widened grant did not take effect; the test proves nothing"
    );

    let stray = format!("ALLOW User:product-demo WRITE on TOPIC {}", topics.accepted);
    let (ok, out) = bucket(&["acls", "apply", "--topic-suffix", &sfx], &admin);
    assert!(ok, "{out}");
    let reported: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("not declared"))
        .collect();
    assert_eq!(reported.len(), 1, "{out}");
    assert!(reported[0].contains(&stray), "{out}");
    assert!(out.contains("--prune"), "{out}");
    assert!(
        write_as_product(&topics.accepted).await.is_ok(),
        "a report must not change the cluster"
    );

    let (ok, out) = bucket(
        &["acls", "apply", "--topic-suffix", &sfx, "--prune"],
        &admin,
    );
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("removed")), "{out}");
    match write_as_product(&topics.accepted).await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)) => {}
        other => panic!("the product can still write {}: {other:?}", topics.accepted),
    }
    let (ok, out) = bucket(&["acls", "apply", "--topic-suffix", &sfx], &admin);
    assert!(ok, "{out}");
    assert!(out.contains("hold no ACLs beyond"), "{out}");
}

// ---- PostgreSQL TLS -----------------------------------------------------------------------

/// The owner URL of the local PostgreSQL without its query, for tests that pick their own TLS.
fn pg_base() -> String {
    let url = pg_owner_url();
    url.split_once('?')
        .map_or(url.clone(), |(b, _)| b.to_string())
}

/// A throwaway CA (PEM) that signed nothing the server presents.
fn throwaway_ca(dir: &std::path::Path) -> PathBuf {
    let ca = dir.join("wrong-ca.crt");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not the bhiv-bucket local CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(dir.join("wrong-ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca
}

/// `SELECT ssl FROM pg_stat_ssl` for the session at `url`.
async fn session_is_tls(url: &str) -> Result<bool, String> {
    let (client, conn) = bhiv_bucket::sink::store::pg::tls::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| bhiv_bucket::sink::store::pg::tls::describe(&e))?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_plaintext_tcp() {
    let base = pg_base();
    let err = bhiv_bucket::sink::store::pg::tls::connect(&format!(
        "{base}?sslmode=disable&connect_timeout=5"
    ))
    .await
    .err()
    .expect("the server accepted a plaintext TCP connection");
    let msg = err.to_string();
    assert!(
        msg.contains("no pg_hba.conf entry") && msg.contains("no encryption"),
        "plaintext refused for another reason: {msg}"
    );
    // The binary's own clients (here `sink migrate`) get the same answer from the server.
    let (ok, out) = bucket(
        &["sink", "migrate"],
        &[("BUCKET_PG_URL", format!("{base}?sslmode=disable"))],
    );
    assert!(!ok && out.contains("no pg_hba.conf entry"), "{out}");
    // Control: the same role over TLS gets in.
    assert_eq!(
        session_is_tls(&format!("{base}?sslmode=require")).await,
        Ok(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_certificate_from_another_ca_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = throwaway_ca(dir.path());
    let base = pg_base();
    for mode in ["verify-full", "verify-ca"] {
        let url = format!(
            "{base}?sslmode={mode}&sslrootcert={}&connect_timeout=5",
            wrong.display()
        );
        let err = session_is_tls(&url)
            .await
            .expect_err("a certificate from another CA was accepted");
        assert!(
            err.contains("certificate") && err.contains("UnknownIssuer"),
            "{mode}: refused for another reason: {err}"
        );
    }
    // The binary refuses it too, before sending a password.
    let (ok, out) = bucket(
        &["sink", "migrate"],
        &[(
            "BUCKET_PG_URL",
            format!("{base}?sslmode=verify-full&sslrootcert={}", wrong.display()),
        )],
    );
    assert!(!ok && out.contains("UnknownIssuer"), "{out}");
    // require checks nothing (libpq): encrypted, any certificate.
    assert_eq!(
        session_is_tls(&format!("{base}?sslmode=require")).await,
        Ok(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_with_the_local_ca_is_encrypted_and_checks_the_host_name() {
    let base = pg_base();
    let ca = ca();
    let url = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(session_is_tls(&url).await, Ok(true), "{url}");
    // verify-full checks the name connected to: the certificate names 127.0.0.1 and localhost,
    // not db.invalid (reached here at 127.0.0.1 through hostaddr)...
    let (scheme_user, rest) = base.rsplit_once('@').expect("owner URL has user info");
    let (host_port, db) = rest.split_once('/').expect("owner URL has a database");
    let port = host_port.rsplit_once(':').map_or("5432", |(_, p)| p);
    let other_name = format!(
        "{scheme_user}@db.invalid:{port}/{db}?hostaddr=127.0.0.1&sslrootcert={ca}&connect_timeout=5"
    );
    let err = session_is_tls(&format!("{other_name}&sslmode=verify-full"))
        .await
        .expect_err("verify-full accepted a host name the certificate does not carry");
    assert!(err.contains("not valid for name \"db.invalid\""), "{err}");
    // ...while verify-ca checks only the chain.
    assert_eq!(
        session_is_tls(&format!("{other_name}&sslmode=verify-ca")).await,
        Ok(true)
    );
    // localhost is in the certificate too.
    let localhost =
        format!("{scheme_user}@localhost:{port}/{db}?sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(session_is_tls(&localhost).await, Ok(true), "{localhost}");
}
