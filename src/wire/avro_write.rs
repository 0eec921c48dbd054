//! Avro binary encoding of the primitives our own output schemas use, written straight into a
//! caller's buffer: the records we write have fixed schemas (`schemas/`), so encoding them needs
//! no `apache_avro::types::Value` tree. Byte-identical to `apache-avro`'s encoder (the codecs'
//! property tests compare the two on arbitrary records).
//!
//! A record is its fields concatenated in schema order; a logical type is written as its
//! underlying type (timestamp-millis as a long); an enum as the int index of its symbol.

/// Zigzag varint `long`: every length, count, union branch and long field goes through here.
#[inline]
pub(crate) fn long(out: &mut Vec<u8>, n: i64) {
    // Zigzag then base-128 little-endian groups, high bit set on all but the last byte.
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z > 0x7F {
        out.push((z & 0x7F) as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro `int`: the same zigzag varint as `long` (Avro widens it).
#[inline]
pub(crate) fn int(out: &mut Vec<u8>, n: i32) {
    long(out, i64::from(n));
}

/// Avro `bytes`: length as a long, then the bytes.
#[inline]
pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    // A slice is at most isize::MAX bytes, so its length always fits an i64.
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Avro `string`: its UTF-8 bytes as `bytes`.
#[inline]
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    bytes(out, s.as_bytes());
}

/// Avro `boolean`: one byte, 0 or 1.
#[inline]
pub(crate) fn boolean(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// An enum symbol: its index in the schema's `symbols` list, as an int.
#[inline]
pub(crate) fn enum_index(out: &mut Vec<u8>, index: i32) {
    int(out, index);
}

/// A union value's branch: the index of its schema in the union, as a long (the value follows).
#[inline]
pub(crate) fn branch(out: &mut Vec<u8>, index: i64) {
    long(out, index);
}

/// An optional field of union type `["null", T]` (branch 0 null, branch 1 the value by `write`).
#[inline]
pub(crate) fn union_null<T>(out: &mut Vec<u8>, v: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => branch(out, 0),
        Some(x) => {
            branch(out, 1);
            write(out, x);
        }
    }
}

/// An Avro array, as `apache-avro` writes it: one block (item count, items), then the 0 count
/// that ends the array; an empty array is only that 0.
#[inline]
pub(crate) fn array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    if !items.is_empty() {
        long(out, items.len() as i64);
        for item in items {
            write(out, item);
        }
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;
    use apache_avro::types::Value;
    use proptest::prelude::*;

    fn avro(schema: &Schema, v: Value) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(v)
            .unwrap()
    }

    fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn known_encodings() {
        // From the Avro specification's zigzag table.
        for (n, bytes) in [
            (0i64, &[0x00u8][..]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (2, &[0x04]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
        ] {
            assert_eq!(with(|o| long(o, n)), bytes, "{n}");
        }
        assert_eq!(with(|o| string(o, "")), [0]);
        assert_eq!(with(|o| array::<i64>(o, &[], |o, n| long(o, *n))), [0]);
        assert_eq!(
            with(|o| array(o, &[1i64, -1], |o, n| long(o, *n))),
            [4, 2, 1, 0]
        );
        assert_eq!(with(|o| union_null(o, None::<i64>, long)), [0]);
        assert_eq!(with(|o| union_null(o, Some(1), long)), [2, 2]);
    }

    proptest! {
        #[test]
        fn primitives_match_apache_avro(
            l in any::<i64>(),
            i in any::<i32>(),
            s in ".{0,40}",
            b in proptest::collection::vec(any::<u8>(), 0..300),
            flag in any::<bool>(),
            ls in proptest::collection::vec(any::<i64>(), 0..5),
        ) {
            prop_assert_eq!(with(|o| long(o, l)), avro(&Schema::Long, Value::Long(l)));
            prop_assert_eq!(with(|o| int(o, i)), avro(&Schema::Int, Value::Int(i)));
            prop_assert_eq!(with(|o| string(o, &s)), avro(&Schema::String, Value::String(s.clone())));
            prop_assert_eq!(with(|o| bytes(o, &b)), avro(&Schema::Bytes, Value::Bytes(b.clone())));
            prop_assert_eq!(with(|o| boolean(o, flag)), avro(&Schema::Boolean, Value::Boolean(flag)));
            let longs = Schema::array(Schema::Long).build();
            prop_assert_eq!(
                with(|o| array(o, &ls, |o, n| long(o, *n))),
                avro(&longs, Value::Array(ls.iter().map(|n| Value::Long(*n)).collect()))
            );
        }
    }
}
