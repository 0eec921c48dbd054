use super::encode::HASH_FIELD_LEN;
use apache_avro::Schema;
use sha2::{Digest, Sha256};

use super::*;
use crate::wire::avro_write;

fn event(seq: i64, prev: &str) -> AuditEvent {
    AuditEvent {
        seq,
        prev_hash: prev.to_string(),
        hash: String::new(),
        recorded_at: 5,
        gate_id: "g".into(),
        policy_version: "p".into(),
        decision: Some(DecisionRecord {
            source_offset: seq,
            reasons: vec!["KEY_MISMATCH".into()],
            product_id: Some("ai_assistant".into()),
            facts: Some(StateFacts {
                artifact_delta: 1,
                counted_rejection: true,
                rate_tat_us: Some(17),
                offender: Some(OffenderFacts {
                    integration_id: "i".into(),
                    rejections_ms: vec![3, 4],
                    cooling_until_ms: None,
                }),
                offender_change: None,
            }),
            ..Default::default()
        }),
        governance: None,
    }
}

fn reader() -> AuditReader {
    AuditReader::with_ids([(7, 1), (9, 2)])
}

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    super::super::framing::frame(id, body)
}

#[test]
fn every_version_starts_with_seq_prev_hash_hash() {
    for (i, s) in APPROVED.audit_versions.iter().enumerate() {
        let Schema::Record(r) = &s.schema else {
            panic!("version {} is not a record", i + 1)
        };
        let names: Vec<&str> = r.fields.iter().take(3).map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["seq", "prev_hash", "hash"], "version {}", i + 1);
    }
}

#[test]
fn version_1_hash_is_the_original_definition() {
    // Before versions existed: SHA-256(prev_hash || v1 body with hash ""), in hex.
    let e = event(3, GENESIS_HASH);
    let sealed = e.clone().seal_as(1).unwrap();
    let canonical = encode_as(&e, 1).unwrap();
    let mut h = Sha256::new();
    h.update(GENESIS_HASH.as_bytes());
    h.update(&canonical);
    assert_eq!(sealed.event.hash, hex::encode(h.finalize()));
    assert_eq!(sealed.body, encode_as(&sealed.event, 1).unwrap());
}

#[test]
fn each_version_round_trips_and_hashes_its_stored_bytes() {
    let a = event(0, GENESIS_HASH).seal_as(1).unwrap();
    let b = event(1, &a.event.hash).seal_as(2).unwrap();
    let r = reader();
    let la = r.read(Some(&framed(7, &a.body))).unwrap();
    let lb = r.read(Some(&framed(9, &b.body))).unwrap();
    assert!(la.hash_ok() && lb.hash_ok());
    assert_eq!((la.version, lb.version), (1, 2));
    // Version 1 has no facts; everything else survives.
    let mut without_facts = a.event.clone();
    without_facts.decision.as_mut().unwrap().facts = None;
    assert_eq!(la.event, without_facts);
    assert_eq!(lb.event, b.event);
    assert_eq!(lb.event.prev_hash, la.event.hash);
    // The hash of a v2 link is over v2 bytes: a v1 encoding of the same event differs.
    assert_ne!(
        event(1, &a.event.hash).seal_as(1).unwrap().event.hash,
        b.event.hash
    );
}

#[test]
fn a_changed_byte_or_a_wrong_writer_schema_is_caught() {
    let b = event(1, GENESIS_HASH).seal_as(2).unwrap();
    let mut tampered = b.event.clone();
    tampered.decision.as_mut().unwrap().reasons.clear();
    let body = encode_as(&tampered, 2).unwrap();
    let link = reader().read(Some(&framed(9, &body))).unwrap();
    assert!(!link.hash_ok());
    // Decoding v2 bytes as v1 is refused, not silently misread.
    assert!(reader().read(Some(&framed(7, &b.body))).is_err());
    assert!(matches!(
        reader().read(Some(&framed(8, &b.body))),
        Err(WireError::UnknownWriterSchema(8))
    ));
}

use crate::wire::accepted::tests::{int, long, text};
use crate::wire::value_oracle;
use proptest::prelude::*;

fn arb_facts() -> BoxedStrategy<StateFacts> {
    let offender = (
        text(),
        proptest::collection::vec(long(), 0..4),
        proptest::option::of(long()),
    )
        .prop_map(
            |(integration_id, rejections_ms, cooling_until_ms)| OffenderFacts {
                integration_id,
                rejections_ms,
                cooling_until_ms,
            },
        );
    let change = (
        text(),
        long(),
        proptest::option::of(long()),
        proptest::option::of(long()),
    )
        .prop_map(|(integration_id, dropped, added_ms, cooling_until_ms)| {
            OffenderChangeFacts {
                integration_id,
                dropped,
                added_ms,
                cooling_until_ms,
            }
        });
    (
        long(),
        any::<bool>(),
        proptest::option::of(long()),
        proptest::option::of(offender),
        proptest::option::of(change),
    )
        .prop_map(
            |(artifact_delta, counted_rejection, rate_tat_us, offender, offender_change)| {
                StateFacts {
                    artifact_delta,
                    counted_rejection,
                    rate_tat_us,
                    offender,
                    offender_change,
                }
            },
        )
        .boxed()
}

fn arb_decision() -> BoxedStrategy<DecisionRecord> {
    let opt = || proptest::option::of(text());
    let head = (
        int(),
        long(),
        text(),
        any::<bool>(),
        proptest::collection::vec(text(), 0..4),
        proptest::collection::vec(text(), 0..3),
        text(),
    );
    let ids = (opt(), opt(), opt(), opt(), opt(), opt(), opt(), opt());
    let tail = (
        proptest::option::of(long()),
        any::<bool>(),
        long(),
        long(),
        opt(),
        any::<bool>(),
        proptest::option::of(arb_facts()),
    );
    (head, ids, tail)
        .prop_map(|(head, ids, tail)| {
            let (
                source_partition,
                source_offset,
                value_sha256,
                accepted,
                reasons,
                threats,
                detail,
            ) = head;
            let (
                intent_id,
                product_id,
                integration_id,
                owner_id,
                requester_id,
                artifact_id,
                artifact_class,
                operation,
            ) = ids;
            let (
                version,
                deleted,
                content_size,
                size_delta,
                content_sha256,
                authenticated,
                facts,
            ) = tail;
            DecisionRecord {
                source_partition,
                source_offset,
                value_sha256,
                accepted,
                reasons,
                threats,
                detail,
                intent_id,
                product_id,
                integration_id,
                owner_id,
                requester_id,
                artifact_id,
                artifact_class,
                operation,
                version,
                deleted,
                content_size,
                size_delta,
                content_sha256,
                authenticated,
                facts,
            }
        })
        .boxed()
}

fn arb_event() -> BoxedStrategy<AuditEvent> {
    let governance =
        (text(), text()).prop_map(|(event_type, detail)| GovernanceRecord { event_type, detail });
    let prev = prop_oneof![Just(GENESIS_HASH.to_string()), "[0-9a-f]{64}", text()];
    (
        long(),
        prev,
        prop_oneof![Just(String::new()), "[0-9a-f]{64}", text()],
        long(),
        text(),
        text(),
        proptest::option::of(arb_decision()),
        proptest::option::of(governance),
    )
        .prop_map(
            |(seq, prev_hash, hash, recorded_at, gate_id, policy_version, decision, governance)| {
                AuditEvent {
                    seq,
                    prev_hash,
                    hash,
                    recorded_at,
                    gate_id,
                    policy_version,
                    decision,
                    governance,
                }
            },
        )
        .boxed()
}

/// What a version keeps of an event: version 1 has no facts, version 2 no offender
/// change, version 3 no whole offender state.
fn as_stored(e: &AuditEvent, version: u8) -> AuditEvent {
    let mut e = e.clone();
    if let Some(d) = e.decision.as_mut() {
        match version {
            1 => d.facts = None,
            2 => d.facts.iter_mut().for_each(|f| f.offender_change = None),
            _ => d.facts.iter_mut().for_each(|f| f.offender = None),
        }
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every version: the direct bytes are `apache-avro`'s, decode back, and sealing gives
    /// the old hash and body, a hash that checks against the stored bytes.
    #[test]
    fn direct_encoding_and_sealing_are_apache_avros(e in arb_event()) {
        for version in 1..=LATEST_VERSION {
            let direct = encode_as(&e, version).unwrap();
            prop_assert_eq!(&direct, &value_oracle::audit_encode_as(&e, version).unwrap());
            prop_assert_eq!(decode_as(&direct, version).unwrap(), as_stored(&e, version));

            let sealed = e.clone().seal_as(version).unwrap();
            let old = value_oracle::audit_seal_as(e.clone(), version).unwrap();
            prop_assert_eq!(&sealed.event.hash, &old.event.hash);
            prop_assert_eq!(&sealed.body, &old.body);
            prop_assert_eq!(&sealed.event, &old.event);
            prop_assert_eq!(link_hash(&e.prev_hash, &sealed.body).unwrap(), sealed.event.hash.clone());
            prop_assert_eq!(&sealed.body, &encode_as(&sealed.event, version).unwrap());
            prop_assert_eq!(
                decode_as(&sealed.body, version).unwrap(),
                as_stored(&sealed.event, version)
            );

            // Appending: what the buffer held stays, the body follows it.
            let mut event = e.clone();
            let mut framed = vec![0, 0, 0, 0, 3];
            event.seal_into(version, &mut framed).unwrap();
            prop_assert_eq!(&framed[..5], &[0, 0, 0, 0, 3]);
            prop_assert_eq!(&framed[5..], &sealed.body[..]);
            prop_assert_eq!(&event, &sealed.event);
            let mut framed = vec![1, 2];
            encode_as_into(&e, version, &mut framed).unwrap();
            prop_assert_eq!(&framed[2..], &direct[..]);
        }
        let latest = value_oracle::audit_seal_as(e.clone(), LATEST_VERSION).unwrap();
        prop_assert_eq!(chain_hash(&e).unwrap(), latest.event.hash);
    }
}

#[test]
fn every_approved_version_has_a_direct_encoder_and_no_other_does() {
    let approved = u8::try_from(APPROVED.audit_versions.len()).unwrap();
    for version in 1..=approved {
        assert!(facts_layout(version).is_ok(), "version {version}");
    }
    for version in [0, approved + 1, u8::MAX] {
        let e = event(0, GENESIS_HASH);
        assert!(e.clone().seal_as(version).is_err(), "version {version}");
        assert!(encode_as(&e, version).is_err(), "version {version}");
        assert!(value_oracle::audit_seal_as(e, version).is_err());
    }
}

#[test]
fn the_hash_field_of_a_sealed_link_is_66_bytes() {
    let mut field = Vec::new();
    avro_write::string(&mut field, GENESIS_HASH);
    assert_eq!(field.len(), HASH_FIELD_LEN);
}

#[test]
fn learning_an_id_needs_an_approved_fingerprint() {
    let mut r = AuditReader::default();
    assert!(!r.learn(1, &APPROVED.intent.fingerprint));
    assert!(r.learn(2, &APPROVED.audit_versions[1].fingerprint));
    assert_eq!(r.ids(), vec![(2, 2)]);
}
