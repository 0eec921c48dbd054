//! `ArtifactIntent` codec: Avro body ⇄ [`ArtifactIntent`].

use apache_avro::types::Value;

use super::WireError;
use super::avro_read::{Malformed, Reader};
use super::fields::{Fields, operation, operation_value, opt, read_datum, record, write_datum};
use super::schemas::APPROVED;
use crate::core::{ArtifactIntent, Operation};

/// Encodes an intent as an Avro body (no Confluent header) with the approved schema.
pub fn encode(i: &ArtifactIntent) -> Result<Vec<u8>, WireError> {
    let value = record(vec![
        ("intent_id", Value::String(i.intent_id.clone())),
        ("product_id", Value::String(i.product_id.clone())),
        ("integration_id", Value::String(i.integration_id.clone())),
        ("owner_id", Value::String(i.owner_id.clone())),
        ("requester_id", Value::String(i.requester_id.clone())),
        ("artifact_id", Value::String(i.artifact_id.clone())),
        ("artifact_class", Value::String(i.artifact_class.clone())),
        ("operation", operation_value(i.operation)),
        ("expected_version", opt(i.expected_version, Value::Long)),
        ("content", opt(i.content.clone(), Value::Bytes)),
        ("content_type", Value::String(i.content_type.clone())),
        ("metadata", Value::String(i.metadata.clone())),
        ("purpose", Value::String(i.purpose.clone())),
        ("client_time", Value::TimestampMillis(i.client_time)),
    ]);
    write_datum(&APPROVED.intent.schema, value)
}

/// Decodes an Avro body written with the approved intent schema.
///
/// Reads the body directly (no `Value` tree). Bytes the direct reader refuses are decoded again
/// by `apache-avro`, whose error is returned: malformed input gets exactly the error (variant
/// and text) it always got, which `gate::decode` maps to a reason code and the audit detail.
pub fn decode(body: &[u8]) -> Result<ArtifactIntent, WireError> {
    match decode_direct(body) {
        Ok(i) => Ok(i),
        Err(Malformed) => decode_value(body),
    }
}

/// The intent schema's fields in order, read straight from the bytes; at least as strict as
/// [`decode_value`] (see `avro_read`), and equal to it where both succeed (property tests).
fn decode_direct(body: &[u8]) -> Result<ArtifactIntent, Malformed> {
    let mut r = Reader::new(body);
    let intent = ArtifactIntent {
        intent_id: r.string()?,
        product_id: r.string()?,
        integration_id: r.string()?,
        owner_id: r.string()?,
        requester_id: r.string()?,
        artifact_id: r.string()?,
        artifact_class: r.string()?,
        operation: *OPERATIONS
            .get(r.enum_index(OPERATIONS.len())?)
            .ok_or(Malformed)?,
        expected_version: if r.union_null()? {
            Some(r.long()?)
        } else {
            None
        },
        content: if r.union_null()? {
            Some(r.bytes()?.to_vec())
        } else {
            None
        },
        content_type: r.string()?,
        metadata: r.string()?,
        purpose: r.string()?,
        client_time: r.long()?, // timestamp-millis
    };
    r.finish()?;
    Ok(intent)
}

/// The `Operation` enum's symbols in schema order (CREATE, UPDATE, DELETE).
const OPERATIONS: [Operation; 3] = [Operation::Create, Operation::Update, Operation::Delete];

/// The `apache-avro` decoder: a `Value` tree read with the writer's schema, then its fields.
pub(super) fn decode_value(body: &[u8]) -> Result<ArtifactIntent, WireError> {
    let mut f = Fields::of(read_datum(&APPROVED.intent.schema, body)?)?;
    Ok(ArtifactIntent {
        intent_id: f.string("intent_id")?,
        product_id: f.string("product_id")?,
        integration_id: f.string("integration_id")?,
        owner_id: f.string("owner_id")?,
        requester_id: f.string("requester_id")?,
        artifact_id: f.string("artifact_id")?,
        artifact_class: f.string("artifact_class")?,
        operation: operation(&mut f)?,
        expected_version: f.opt_long("expected_version")?,
        content: f.opt_bytes("content")?,
        content_type: f.string("content_type")?,
        metadata: f.string("metadata")?,
        purpose: f.string("purpose")?,
        client_time: f.long("client_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Operation;
    use proptest::prelude::*;

    pub(crate) fn sample() -> ArtifactIntent {
        ArtifactIntent {
            intent_id: "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f".into(),
            product_id: "ai_assistant".into(),
            integration_id: "assistant-backend".into(),
            owner_id: "alice".into(),
            requester_id: "alice".into(),
            artifact_id: "doc-1".into(),
            artifact_class: "document".into(),
            operation: Operation::Update,
            expected_version: Some(3),
            content: Some(vec![1, 2, 3]),
            content_type: "text/plain".into(),
            metadata: "{\"a\":1}".into(),
            purpose: "because".into(),
            client_time: 1_700_000_000_123,
        }
    }

    #[test]
    fn round_trip() {
        let i = sample();
        assert_eq!(decode(&encode(&i).unwrap()).unwrap(), i);
    }

    #[test]
    fn truncated_and_trailing_bytes_fail() {
        let body = encode(&sample()).unwrap();
        assert!(decode(&body[..body.len() - 1]).is_err());
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }

    use crate::wire::accepted::tests::{long, text};
    use crate::wire::avro_write;

    /// The differential property: the direct reader accepts exactly what `apache-avro` accepts,
    /// with the same intent; and `decode` answers exactly as `apache-avro` did, errors included
    /// (variant, so the gate's reason code, and text).
    fn agree(body: &[u8]) -> Result<(), TestCaseError> {
        let old = decode_value(body);
        match (decode_direct(body), &old) {
            (Ok(a), Ok(b)) => prop_assert_eq!(&a, b),
            (Err(Malformed), Err(_)) => {}
            (direct, old) => {
                prop_assert!(false, "direct {direct:?}, apache-avro {old:?}: {body:?}")
            }
        }
        match (decode(body), old) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => {
                let field = |e: &WireError| matches!(e, WireError::Field { .. });
                prop_assert_eq!(field(&a), field(&b));
                prop_assert_eq!(a.to_string(), b.to_string());
            }
            (new, old) => prop_assert!(false, "decode {new:?}, apache-avro {old:?}: {body:?}"),
        }
        Ok(())
    }

    fn arb_intent() -> impl Strategy<Value = ArtifactIntent> {
        let op = prop_oneof![
            Just(Operation::Create),
            Just(Operation::Update),
            Just(Operation::Delete)
        ];
        (
            (text(), text(), text(), text(), text(), text(), text()),
            op,
            proptest::option::of(long()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            (text(), text(), text()),
            long(),
        )
            .prop_map(
                |(ids, operation, expected_version, content, texts, client_time)| ArtifactIntent {
                    intent_id: ids.0,
                    product_id: ids.1,
                    integration_id: ids.2,
                    owner_id: ids.3,
                    requester_id: ids.4,
                    artifact_id: ids.5,
                    artifact_class: ids.6,
                    operation,
                    expected_version,
                    content,
                    content_type: texts.0,
                    metadata: texts.1,
                    purpose: texts.2,
                    client_time,
                },
            )
    }

    /// One edit of a body: overwrite, xor, insert, delete, truncate (positions taken modulo).
    #[derive(Debug, Clone)]
    enum Edit {
        Set(usize, u8),
        Xor(usize, u8),
        Insert(usize, Vec<u8>),
        Delete(usize, usize),
        Truncate(usize),
    }

    fn arb_edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
            3 => (any::<usize>(), 1u8..).prop_map(|(i, b)| Edit::Xor(i, b)),
            2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..12))
                .prop_map(|(i, b)| Edit::Insert(i, b)),
            2 => (any::<usize>(), 1usize..12).prop_map(|(i, n)| Edit::Delete(i, n)),
            1 => any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(body: &mut Vec<u8>, edit: &Edit) {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match edit {
            Edit::Set(i, b) if !body.is_empty() => {
                let i = at(*i, body.len());
                body[i] = *b;
            }
            Edit::Xor(i, b) if !body.is_empty() => {
                let i = at(*i, body.len());
                body[i] ^= *b;
            }
            Edit::Insert(i, bytes) => {
                let i = at(*i, body.len() + 1);
                body.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) if !body.is_empty() => {
                let i = at(*i, body.len());
                let end = (i + n).min(body.len());
                body.drain(i..end);
            }
            Edit::Truncate(i) => body.truncate(at(*i, body.len() + 1)),
            _ => {}
        }
    }

    /// A varint of `z` padded to `pad` more bytes with zero groups (apache-avro reads up to 10
    /// bytes, so padded encodings of small numbers are valid), or 10 arbitrary bytes.
    fn arb_varint(z: impl Strategy<Value = i64>) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            24 => z.prop_map(|n| {
                let mut out = Vec::new();
                avro_write::long(&mut out, n);
                out
            }),
            1 => (any::<i64>(), 0usize..11).prop_map(|(n, pad)| {
                let mut out = Vec::new();
                avro_write::long(&mut out, n);
                if pad > 0 {
                    if let Some(last) = out.last_mut() {
                        *last |= 0x80;
                    }
                    out.extend(std::iter::repeat_n(0x80, pad - 1));
                    out.push(0);
                }
                out
            }),
            1 => proptest::collection::vec(any::<u8>(), 10..=11).prop_map(|mut b| {
                for x in &mut b[..9] {
                    *x |= 0x80;
                }
                b
            }),
        ]
    }

    fn small_or_any() -> impl Strategy<Value = i64> {
        prop_oneof![
            -3i64..4,
            Just(i64::from(i32::MAX) + 1),
            Just(i64::from(i32::MIN) - 1),
            any::<i64>()
        ]
    }

    /// A `string` or `bytes` field: valid, not UTF-8, a length that lies, or a bad length.
    fn arb_text_field(utf8: bool) -> impl Strategy<Value = Vec<u8>> {
        let with_len = |len: Vec<u8>, body: &[u8]| {
            let mut out = len;
            out.extend_from_slice(body);
            out
        };
        let valid = text().prop_map(move |s| {
            let mut out = Vec::new();
            avro_write::string(&mut out, &s);
            out
        });
        let any_bytes = proptest::collection::vec(any::<u8>(), 0..8).prop_map(move |b| {
            let mut out = Vec::new();
            avro_write::bytes(&mut out, &b);
            out
        });
        let lying = (
            arb_varint(small_or_any()),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(move |(len, b)| with_len(len, &b));
        if utf8 {
            prop_oneof![30 => valid, 1 => any_bytes, 1 => lying].boxed()
        } else {
            prop_oneof![30 => any_bytes, 1 => valid, 1 => lying].boxed()
        }
    }

    /// Bodies built field by field, each field usually well formed and sometimes not: deep
    /// into the record, where random edits of a valid body rarely reach.
    fn arb_structured_body() -> impl Strategy<Value = Vec<u8>> {
        let s = || arb_text_field(true);
        let union = |inner: BoxedStrategy<Vec<u8>>| {
            (
                prop_oneof![10 => Just(0i64), 10 => Just(1i64), 1 => small_or_any()],
                inner,
            )
                .prop_map(|(branch, inner)| {
                    let mut out = Vec::new();
                    avro_write::long(&mut out, branch);
                    if branch != 0 {
                        out.extend(inner);
                    }
                    out
                })
        };
        (
            (s(), s(), s(), s(), s(), s(), s()),
            arb_varint(prop_oneof![20 => 0i64..3, 1 => small_or_any()]),
            union(arb_varint(long()).boxed()),
            union(arb_text_field(false).boxed()),
            (s(), s(), s()),
            arb_varint(long()),
            prop_oneof![20 => Just(Vec::new()), 1 => proptest::collection::vec(any::<u8>(), 1..4)],
        )
            .prop_map(|(ids, op, version, content, texts, time, trailing)| {
                [
                    ids.0, ids.1, ids.2, ids.3, ids.4, ids.5, ids.6, op, version, content, texts.0,
                    texts.1, texts.2, time, trailing,
                ]
                .concat()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn direct_decoder_agrees_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            agree(&bytes)?;
        }

        #[test]
        fn direct_decoder_agrees_on_valid_and_edited_encodings(
            i in arb_intent(),
            edits in proptest::collection::vec(arb_edit(), 0..4),
        ) {
            let mut body = encode(&i).unwrap();
            agree(&body)?;
            prop_assert_eq!(decode(&body).unwrap(), i);
            for edit in &edits {
                apply(&mut body, edit);
                agree(&body)?;
            }
        }

        #[test]
        fn direct_decoder_agrees_on_structured_bodies(body in arb_structured_body()) {
            agree(&body)?;
            for cut in [1, 2, 5] {
                agree(&body[..body.len().saturating_sub(cut)])?;
            }
        }
    }

    #[test]
    fn direct_decoder_agrees_on_edge_cases() {
        let good = encode(&sample()).unwrap();
        let last = good.len() - 1;
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), good.clone()];
        // Every prefix, and one trailing byte of each value.
        cases.extend((0..good.len()).map(|n| good[..n].to_vec()));
        cases.extend((0..=255u8).map(|b| [&good[..], &[b]].concat()));
        // The client_time varint (last byte) padded to 10 and to 11 bytes, and 10 bytes whose
        // last carries bits past the 64th (apache-avro drops them).
        let t = &good[..last];
        let time = good[last];
        cases.push([t, &[time | 0x80], &[0x80; 8], &[0]].concat());
        cases.push([t, &[time | 0x80], &[0x80; 9], &[0]].concat());
        cases.push([t, &[0xFF; 9], &[0x7F]].concat());
        cases.push([t, &[0xFF; 9], &[0x01]].concat());
        // Field-level edge values, written in the schema's order.
        let field = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            out
        };
        let strs = |n: usize| field(&|o| (0..n).for_each(|_| avro_write::string(o, "x")));
        for op in [
            -1i64,
            0,
            2,
            3,
            i64::from(i32::MAX) + 3,
            i64::from(i32::MIN) - 1,
        ] {
            for union in [-1i64, 0, 1, 2] {
                cases.push(
                    [
                        strs(7),
                        field(&|o| avro_write::long(o, op)),
                        field(&|o| {
                            avro_write::long(o, union);
                            if union == 1 {
                                avro_write::long(o, 5);
                            }
                        }),
                        field(&|o| avro_write::long(o, 0)),
                        strs(3),
                        field(&|o| avro_write::long(o, 9)),
                    ]
                    .concat(),
                );
            }
        }
        // Lengths: negative, past the input, past the allocation bound, not UTF-8.
        let mut tail = Vec::new();
        avro_write::long(&mut tail, 0); // expected_version null
        avro_write::long(&mut tail, 0); // content null
        for (len, bytes) in [
            (-1i64, &b""[..]),
            (5, b"abc"),
            (
                i64::try_from(crate::wire::schemas::MAX_AVRO_ALLOCATION).unwrap() + 1,
                b"a",
            ),
            (2, b"\xC3\x28"),
            (1, b"\x80"),
        ] {
            cases.push(
                [
                    strs(6),
                    field(&|o| avro_write::long(o, len)),
                    bytes.to_vec(),
                    field(&|o| avro_write::long(o, 0)),
                    tail.clone(),
                    strs(3),
                    field(&|o| avro_write::long(o, 9)),
                ]
                .concat(),
            );
        }
        for case in &cases {
            agree(case).unwrap();
        }
        assert!(decode_direct(&good).is_ok());
    }

    #[test]
    fn a_field_past_the_allocation_bound_is_refused_as_apache_avro_refuses_it() {
        let max = crate::wire::schemas::MAX_AVRO_ALLOCATION;
        let mut i = sample();
        for len in [max, max + 1] {
            i.content = Some(vec![b'a'; len]);
            let mut body = Vec::new();
            for s in [
                &i.intent_id,
                &i.product_id,
                &i.integration_id,
                &i.owner_id,
                &i.requester_id,
                &i.artifact_id,
                &i.artifact_class,
            ] {
                avro_write::string(&mut body, s);
            }
            avro_write::long(&mut body, 1); // UPDATE
            avro_write::union_null(&mut body, i.expected_version, avro_write::long);
            avro_write::union_null(&mut body, i.content.as_deref(), avro_write::bytes);
            for s in [&i.content_type, &i.metadata, &i.purpose] {
                avro_write::string(&mut body, s);
            }
            avro_write::long(&mut body, i.client_time);
            agree(&body).unwrap();
            assert_eq!(decode_direct(&body).is_ok(), len == max, "{len}");
        }
    }
}
