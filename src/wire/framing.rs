//! Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the Avro body.

use super::WireError;

/// Length of the Confluent header.
pub const HEADER_LEN: usize = 5;

/// Prepends the Confluent header for `schema_id` to an Avro body.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(schema_id, body.len());
    out.extend_from_slice(body);
    out
}

/// A buffer holding only the Confluent header for `schema_id`, with room for a body of about
/// `body_len` bytes: encoders append the body to it, and the value is built without a copy.
pub fn header(schema_id: u32, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out
}

/// Splits a framed value into its schema id and Avro body.
pub fn unframe(value: Option<&[u8]>) -> Result<(u32, &[u8]), WireError> {
    let bytes = value.ok_or_else(|| WireError::Framing("value is null".into()))?;
    if bytes.len() < HEADER_LEN {
        return Err(WireError::Framing(format!(
            "value is {} bytes, shorter than the 5-byte header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 {
        return Err(WireError::Framing(format!(
            "magic byte is {:#04x}, expected 0x00",
            bytes[0]
        )));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let f = frame(42, b"abc");
        assert_eq!(unframe(Some(&f)).unwrap(), (42, &b"abc"[..]));
    }

    #[test]
    fn refuses_null_short_and_bad_magic() {
        assert!(unframe(None).is_err());
        assert!(unframe(Some(&[0, 0, 0])).is_err());
        assert!(unframe(Some(&[1, 0, 0, 0, 1, 2])).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unframe(Some(&bytes));
        }
    }
}
