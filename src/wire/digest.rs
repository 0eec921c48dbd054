//! Hex SHA-256 digests as the wire carries them (`value_sha256`, `content_sha256`, chain
//! hashes), written through a lookup table: `hex::encode` builds its `String` a `char` at a
//! time, which cost the gate more per intent than the hashing it printed.

use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    // The slice is exactly twice the input: encoding cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut out);
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_as_the_hex_crate() {
        for input in [&b""[..], b"abc", &[0u8, 1, 0x7f, 0x80, 0xfe, 0xff][..]] {
            assert_eq!(hex_lower(input), hex::encode(input));
            assert_eq!(sha256_hex(input), hex::encode(Sha256::digest(input)));
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
