//! RFC 6962 hashing: the leaf and interior-node hashes every part of the log is built from,
//! and the position of a stored hash (a complete subtree) in the tree.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::TlogError;

/// Size of a SHA-256 hash in bytes.
pub const HASH_SIZE: usize = 32;

/// A Merkle tree hash (SHA-256), shown and serialised as standard base64 like the C2SP formats.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    /// Parses a standard-base64 hash (the form in checkpoints and proof bundles).
    pub fn from_base64(s: &str) -> Result<Hash, TlogError> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|e| TlogError::Malformed(format!("hash is not base64: {e}")))?;
        Hash::from_slice(&bytes)
    }

    /// A hash from exactly 32 bytes (tile contents, decoded fields).
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, TlogError> {
        let arr: [u8; HASH_SIZE] = bytes
            .try_into()
            .map_err(|_| TlogError::Malformed(format!("hash has {} bytes, not 32", bytes.len())))?;
        Ok(Hash(arr))
    }

    /// Standard base64, as written in checkpoints.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.to_base64())
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// RFC 6962 leaf hash: SHA-256(0x00 || bytes); the tree's view of one stored record.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    Hash(h.finalize().into())
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_SIZE];
    buf[0] = 1;
    buf[1..1 + HASH_SIZE].copy_from_slice(&left.0);
    buf[1 + HASH_SIZE..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// A stored hash: the root of the complete subtree of height `level` over leaves
/// `[index << level, (index + 1) << level)`. Every hash a tile holds, or a proof needs, is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Height of the subtree (0 = a leaf hash).
    pub level: u8,
    /// Index of the subtree among those of its level, left to right.
    pub index: u64,
}

impl Position {
    /// The position at `level`, `index`.
    pub fn new(level: u8, index: u64) -> Position {
        Position { level, index }
    }
}

/// Largest power of two strictly less than `n` (n ≥ 2), with its exponent: the RFC 6962 split.
pub(crate) fn split_point(n: u64) -> (u64, u8) {
    debug_assert!(n >= 2);
    let level = 63 - (n - 1).leading_zeros() as u8;
    (1u64 << level, level)
}

/// The complete subtrees whose hashes make up `[lo, hi)`, left to right (largest first). Only
/// ranges met in proofs and roots are asked for: `lo` is aligned to each subtree it starts.
pub(crate) fn subtree_positions(
    mut lo: u64,
    hi: u64,
    out: &mut Vec<Position>,
) -> Result<(), TlogError> {
    while lo < hi {
        let level = 63 - (hi - lo).leading_zeros() as u8;
        let k = 1u64 << level;
        if lo & (k - 1) != 0 {
            return Err(TlogError::Internal("unaligned subtree range"));
        }
        out.push(Position::new(level, lo >> level));
        lo += k;
    }
    Ok(())
}

/// How many hashes [`subtree_positions`] gives for `[lo, hi)`.
pub(crate) fn subtree_count(lo: u64, hi: u64) -> usize {
    let mut n = 0;
    let mut lo = lo;
    while lo < hi {
        let level = 63 - (hi - lo).leading_zeros();
        lo += 1u64 << level;
        n += 1;
    }
    n
}

/// Folds the subtree hashes of a range (left to right) into the range's hash, right to left.
pub(crate) fn fold_subtrees(hashes: &[Hash]) -> Result<Hash, TlogError> {
    let (last, rest) = hashes
        .split_last()
        .ok_or(TlogError::Internal("empty subtree range"))?;
    Ok(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// RFC 6962 root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    use sha2::{Digest, Sha256};
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_leaf_hash_is_the_rfc_value() {
        // SHA-256 of the single byte 0x00 (RFC 6962 test vectors: the empty leaf).
        assert_eq!(
            hex::encode(leaf_hash(b"").0),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn split_point_is_the_largest_power_below() {
        assert_eq!(split_point(2), (1, 0));
        assert_eq!(split_point(3), (2, 1));
        assert_eq!(split_point(4), (2, 1));
        assert_eq!(split_point(5), (4, 2));
        assert_eq!(split_point(1 << 40), (1 << 39, 39));
    }

    #[test]
    fn subtrees_of_a_tree_follow_the_bits_of_its_size() {
        let mut v = Vec::new();
        subtree_positions(0, 13, &mut v).unwrap();
        assert_eq!(
            v,
            vec![
                Position::new(3, 0),
                Position::new(2, 2),
                Position::new(0, 12)
            ]
        );
        assert_eq!(subtree_count(0, 13), 3);
        assert!(subtree_positions(1, 4, &mut v).is_err());
    }

    #[test]
    fn hashes_round_trip_through_base64() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert!(Hash::from_base64("AAAA").is_err());
        assert!(Hash::from_base64("!!").is_err());
    }
}
