//! Reading the Avro binary encoding straight from a byte slice, for the intent decoder's fast
//! path (`intent::decode`): no `apache_avro::types::Value` tree, strings and bytes copied once.
//!
//! Every reader is at least as strict as `apache-avro`'s decoder (0.22, writer schema only) on
//! the same input: varints of at most 10 bytes with bits past 64 dropped, lengths that are
//! non-negative, within `max_allocation_bytes` and within the input, strings that are UTF-8,
//! booleans that are 0 or 1, enum and union indexes in range. Where `apache-avro` is lenient at
//! the end of the input (a string or union cut short decodes as null), this reader fails: for
//! the intent schema `apache-avro` then fails on a later field, which the intent codec's
//! differential property test checks.

/// The reader stopped on bytes it does not accept; the caller asks `apache-avro` for the
/// diagnostic, so this carries none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// A cursor over one Avro datum.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    max_len: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `body`, with the length bound `apache-avro` decodes under.
    pub(crate) fn new(body: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: body,
            // The bound the approved schemas set (first setter wins; this reads it).
            max_len: apache_avro::util::max_allocation_bytes(super::schemas::MAX_AVRO_ALLOCATION),
        }
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self.rest.split_first().ok_or(Malformed)?;
        self.rest = rest;
        Ok(b)
    }

    /// A varint as `apache-avro` reads it: at most 10 bytes, bits past the 64th dropped.
    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut n = 0u64;
        for j in 0..10 {
            let b = self.byte()?;
            n |= u64::from(b & 0x7F) << (j * 7);
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Malformed)
    }

    /// Avro `long` (zigzag varint); also timestamp-millis.
    pub(crate) fn long(&mut self) -> Result<i64, Malformed> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// Avro `bytes`, borrowed from the input.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let len = usize::try_from(self.long()?).map_err(|_| Malformed)?;
        if len > self.max_len || len > self.rest.len() {
            return Err(Malformed);
        }
        let (b, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(b)
    }

    /// Avro `string`, copied out (must be UTF-8).
    pub(crate) fn string(&mut self) -> Result<String, Malformed> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| Malformed)
    }

    /// An enum's symbol index (an int), checked against the number of symbols.
    pub(crate) fn enum_index(&mut self, symbols: usize) -> Result<usize, Malformed> {
        let i = i32::try_from(self.long()?).map_err(|_| Malformed)?;
        usize::try_from(i)
            .ok()
            .filter(|i| *i < symbols)
            .ok_or(Malformed)
    }

    /// A `["null", T]` union's branch: false for null, true when `T` follows.
    pub(crate) fn union_null(&mut self) -> Result<bool, Malformed> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }

    /// The datum must have used every byte.
    pub(crate) fn finish(self) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_as_apache_avro_reads_them() {
        let long = |b: &[u8]| Reader::new(b).long();
        assert_eq!(long(&[0x80, 0x01]), Ok(64));
        assert_eq!(long(&[0x01]), Ok(-1));
        // Ten bytes: the tenth contributes its lowest bit only.
        let mut ten = [0xFFu8; 10];
        ten[9] = 0x7F;
        assert_eq!(long(&ten), Ok(i64::MIN));
        // Eleven bytes, or cut short: refused.
        assert_eq!(long(&[0x80; 11]), Err(Malformed));
        assert_eq!(long(&[0x80]), Err(Malformed));
        assert_eq!(long(&[]), Err(Malformed));
    }

    proptest! {
        #[test]
        fn long_round_trips_with_the_writer(n in any::<i64>()) {
            let mut out = Vec::new();
            super::super::avro_write::long(&mut out, n);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.long(), Ok(n));
            prop_assert!(r.finish().is_ok());
        }
    }
}
