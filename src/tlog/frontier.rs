//! The right edge of a tree: the roots of its complete subtrees, one per set bit of the size
//! (at most 64 hashes). It is all the gate keeps per partition to give the root after any
//! append, at amortised one node hash per leaf.

use super::TlogError;
use super::hash::{Hash, Position, empty_root, leaf_hash, node_hash, subtree_positions};
use super::proof::HashReader;

/// An append-only Merkle tree kept as its right edge (RFC 6962 shape).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Complete subtree roots, largest (leftmost) first.
    edge: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier from a saved size and edge (as [`Frontier::edge`] gave them); refused when
    /// the edge does not have one hash per set bit of `size`.
    pub fn from_parts(size: u64, edge: Vec<Hash>) -> Result<Frontier, TlogError> {
        if edge.len() != size.count_ones() as usize {
            return Err(TlogError::Malformed(format!(
                "a tree of size {size} has {} edge hashes, not {}",
                size.count_ones(),
                edge.len()
            )));
        }
        Ok(Frontier { size, edge })
    }

    /// The frontier of the tree of `size` leaves whose stored hashes `reader` holds (tiles).
    pub fn from_reader<R: HashReader + ?Sized>(
        size: u64,
        reader: &R,
    ) -> Result<Frontier, TlogError> {
        let mut positions = Vec::new();
        subtree_positions(0, size, &mut positions)?;
        let edge = reader.read_hashes(&positions)?;
        Frontier::from_parts(size, edge)
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete subtree roots, largest first (what [`Frontier::from_parts`] takes back).
    pub fn edge(&self) -> &[Hash] {
        &self.edge
    }

    /// Positions of the edge hashes, in the order of [`Frontier::edge`].
    pub fn edge_positions(&self) -> Vec<Position> {
        let mut v = Vec::with_capacity(self.edge.len());
        // Cannot fail: [0, size) is always aligned.
        let _ = subtree_positions(0, self.size, &mut v);
        v
    }

    /// Appends a leaf given its leaf hash; returns the leaf's index.
    pub fn append(&mut self, leaf: Hash) -> u64 {
        let index = self.size;
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            match self.edge.pop() {
                Some(left) => h = node_hash(&left, &h),
                None => break,
            }
            s >>= 1;
        }
        self.edge.push(h);
        self.size += 1;
        index
    }

    /// Appends a record by its stored bytes (RFC 6962 leaf hash); returns its index.
    pub fn append_bytes(&mut self, record: &[u8]) -> u64 {
        self.append(leaf_hash(record))
    }

    /// The root hash at the current size. The empty tree's root is SHA-256 of nothing
    /// (RFC 6962 §2.1).
    pub fn root(&self) -> Hash {
        match self.edge.split_last() {
            None => empty_root(),
            Some((last, rest)) => rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::testutil::naive_root;

    #[test]
    fn root_after_every_append_equals_the_rfc_definition() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for (i, l) in leaves.iter().enumerate() {
            assert_eq!(f.append(*l), i as u64);
            assert_eq!(f.root(), naive_root(&leaves[..=i]), "size {}", i + 1);
            assert_eq!(f.edge().len(), f.size().count_ones() as usize);
        }
        let back = Frontier::from_parts(f.size(), f.edge().to_vec()).unwrap();
        assert_eq!(back, f);
        assert!(Frontier::from_parts(3, vec![]).is_err());
        assert_eq!(f.edge_positions().len(), f.edge().len());
    }
}
