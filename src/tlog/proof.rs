//! Inclusion and consistency proofs (RFC 6962 §2.1.1, §2.1.2), computed from stored hashes
//! read through a [`HashReader`] (tiles, memory) and checked against a root. The recursion and
//! the proof order are those of Go's `golang.org/x/mod/sumdb/tlog`, which checks our output.

use super::TlogError;
use super::hash::{
    Hash, Position, fold_subtrees, node_hash, split_point, subtree_count, subtree_positions,
};

/// Where proofs get stored hashes from: "the hashes at these positions", in the order asked.
/// Implemented over tiles ([`super::tiles::TileHashReader`]) and in memory.
pub trait HashReader {
    /// The stored hashes at `positions`, one per position, in the same order.
    fn read_hashes(&self, positions: &[Position]) -> Result<Vec<Hash>, TlogError>;
}

/// An inclusion proof: the sibling hashes from the leaf up to the root (RFC 6962 audit path).
pub type InclusionProof = Vec<Hash>;

/// A consistency proof between an older and a newer size (RFC 6962 order).
pub type ConsistencyProof = Vec<Hash>;

/// The root of the tree of `size` leaves, from its stored hashes.
pub fn tree_hash<R: HashReader + ?Sized>(size: u64, reader: &R) -> Result<Hash, TlogError> {
    if size == 0 {
        return Ok(super::hash::empty_root());
    }
    let mut positions = Vec::new();
    subtree_positions(0, size, &mut positions)?;
    fold_subtrees(&reader.read_hashes(&positions)?)
}

/// The proof that leaf `index` is in the tree of `size` leaves.
pub fn prove_inclusion<R: HashReader + ?Sized>(
    size: u64,
    index: u64,
    reader: &R,
) -> Result<InclusionProof, TlogError> {
    if index >= size {
        return Err(TlogError::OutOfRange { index, size });
    }
    let mut plan = Vec::new();
    inclusion_plan(0, size, index, &mut plan)?;
    read_and_fold(&plan, reader)
}

/// The proof that the tree of `old` leaves is a prefix of the tree of `new` leaves.
pub fn prove_consistency<R: HashReader + ?Sized>(
    new: u64,
    old: u64,
    reader: &R,
) -> Result<ConsistencyProof, TlogError> {
    if old == 0 || old > new {
        return Err(TlogError::OutOfRange {
            index: old,
            size: new,
        });
    }
    let mut plan = Vec::new();
    consistency_plan(0, new, old, &mut plan)?;
    read_and_fold(&plan, reader)
}

/// Checks `proof` that `leaf` (a leaf hash) is leaf `index` of the tree of `size` with `root`.
pub fn verify_inclusion(
    proof: &[Hash],
    size: u64,
    root: &Hash,
    index: u64,
    leaf: &Hash,
) -> Result<(), TlogError> {
    if index >= size {
        return Err(TlogError::ProofFailed("leaf index beyond the tree size"));
    }
    let computed = run_inclusion(proof, 0, size, index, *leaf)?;
    if &computed == root {
        Ok(())
    } else {
        Err(TlogError::ProofFailed(
            "inclusion proof does not lead to the root",
        ))
    }
}

/// Checks `proof` that the tree (`old`, `old_root`) is a prefix of (`new`, `new_root`).
pub fn verify_consistency(
    proof: &[Hash],
    new: u64,
    new_root: &Hash,
    old: u64,
    old_root: &Hash,
) -> Result<(), TlogError> {
    if old == 0 || old > new {
        return Err(TlogError::ProofFailed("sizes cannot be consistent"));
    }
    let (o, n) = run_consistency(proof, 0, new, old, *old_root)?;
    if &o == old_root && &n == new_root {
        Ok(())
    } else {
        Err(TlogError::ProofFailed(
            "consistency proof does not lead to both roots",
        ))
    }
}

/// The ranges whose hashes make a proof, in proof order (each becomes one proof hash).
fn inclusion_plan(lo: u64, hi: u64, n: u64, plan: &mut Vec<(u64, u64)>) -> Result<(), TlogError> {
    if lo + 1 == hi {
        return Ok(());
    }
    let (k, _) = split_point(hi - lo);
    if n < lo + k {
        inclusion_plan(lo, lo + k, n, plan)?;
        plan.push((lo + k, hi));
    } else {
        inclusion_plan(lo + k, hi, n, plan)?;
        plan.push((lo, lo + k));
    }
    Ok(())
}

/// As [`inclusion_plan`], for RFC 6962's SUBPROOF(m, D[lo:hi], b = lo == 0).
fn consistency_plan(lo: u64, hi: u64, n: u64, plan: &mut Vec<(u64, u64)>) -> Result<(), TlogError> {
    if n == hi {
        if lo != 0 {
            plan.push((lo, hi));
        }
        return Ok(());
    }
    let (k, _) = split_point(hi - lo);
    if n <= lo + k {
        consistency_plan(lo, lo + k, n, plan)?;
        plan.push((lo + k, hi));
    } else {
        consistency_plan(lo + k, hi, n, plan)?;
        plan.push((lo, lo + k));
    }
    Ok(())
}

/// Reads every stored hash the planned ranges need in one call, then folds each range.
fn read_and_fold<R: HashReader + ?Sized>(
    plan: &[(u64, u64)],
    reader: &R,
) -> Result<Vec<Hash>, TlogError> {
    let mut positions = Vec::new();
    for (lo, hi) in plan {
        subtree_positions(*lo, *hi, &mut positions)?;
    }
    let hashes = reader.read_hashes(&positions)?;
    if hashes.len() != positions.len() {
        return Err(TlogError::Internal("hash reader returned the wrong count"));
    }
    let mut out = Vec::with_capacity(plan.len());
    let mut at = 0;
    for (lo, hi) in plan {
        let c = subtree_count(*lo, *hi);
        out.push(fold_subtrees(&hashes[at..at + c])?);
        at += c;
    }
    Ok(out)
}

fn run_inclusion(p: &[Hash], lo: u64, hi: u64, n: u64, leaf: Hash) -> Result<Hash, TlogError> {
    if lo + 1 == hi {
        return if p.is_empty() {
            Ok(leaf)
        } else {
            Err(TlogError::ProofFailed("inclusion proof too long"))
        };
    }
    let Some((last, rest)) = p.split_last() else {
        return Err(TlogError::ProofFailed("inclusion proof too short"));
    };
    let (k, _) = split_point(hi - lo);
    if n < lo + k {
        Ok(node_hash(&run_inclusion(rest, lo, lo + k, n, leaf)?, last))
    } else {
        Ok(node_hash(last, &run_inclusion(rest, lo + k, hi, n, leaf)?))
    }
}

/// Returns (old root, new root) as the proof and the old root determine them.
fn run_consistency(
    p: &[Hash],
    lo: u64,
    hi: u64,
    n: u64,
    old: Hash,
) -> Result<(Hash, Hash), TlogError> {
    if n == hi {
        if lo == 0 {
            return if p.is_empty() {
                Ok((old, old))
            } else {
                Err(TlogError::ProofFailed("consistency proof too long"))
            };
        }
        return match p {
            [h] => Ok((*h, *h)),
            _ => Err(TlogError::ProofFailed(
                "consistency proof has the wrong length",
            )),
        };
    }
    let Some((last, rest)) = p.split_last() else {
        return Err(TlogError::ProofFailed("consistency proof too short"));
    };
    let (k, _) = split_point(hi - lo);
    if n <= lo + k {
        let (o, t) = run_consistency(rest, lo, lo + k, n, old)?;
        Ok((o, node_hash(&t, last)))
    } else {
        let (o, t) = run_consistency(rest, lo + k, hi, n, old)?;
        Ok((node_hash(last, &o), node_hash(last, &t)))
    }
}

/// Every stored hash of a tree, in memory: for tests, tools and the tiles service's rebuilds.
#[derive(Debug, Clone, Default)]
pub struct MemoryHashes {
    /// `levels[l][i]` is the stored hash at level `l`, index `i`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryHashes {
    /// An empty tree.
    pub fn new() -> MemoryHashes {
        MemoryHashes::default()
    }

    /// Appends a leaf hash, storing every subtree it completes.
    pub fn append(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(h);
            if row.len() % 2 == 1 {
                break;
            }
            h = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |r| r.len() as u64)
    }

    /// The stored hashes at one level (level 0: the leaf hashes).
    pub fn level(&self, level: u8) -> &[Hash] {
        self.levels
            .get(level as usize)
            .map_or(&[], |r| r.as_slice())
    }
}

impl HashReader for MemoryHashes {
    fn read_hashes(&self, positions: &[Position]) -> Result<Vec<Hash>, TlogError> {
        positions
            .iter()
            .map(|p| {
                self.level(p.level)
                    .get(p.index as usize)
                    .copied()
                    .ok_or(TlogError::MissingHash(*p))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::hash::leaf_hash;
    use crate::tlog::testutil::{naive_consistency, naive_path, naive_root};
    use proptest::prelude::*;

    fn tree(n: u64) -> (Vec<Hash>, MemoryHashes) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut m = MemoryHashes::new();
        for l in &leaves {
            m.append(*l);
        }
        (leaves, m)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn inclusion_proofs_are_the_rfc_audit_paths(n in 1u64..400, i in 0u64..400) {
            let i = i % n;
            let (leaves, m) = tree(n);
            let root = tree_hash(n, &m).unwrap();
            prop_assert_eq!(root, naive_root(&leaves));
            let p = prove_inclusion(n, i, &m).unwrap();
            prop_assert_eq!(&p, &naive_path(i as usize, &leaves));
            prop_assert!(verify_inclusion(&p, n, &root, i, &leaves[i as usize]).is_ok());
            // Another leaf, another index, a changed hash or a cut proof: refused.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(verify_inclusion(&p, n, &root, i, &other).is_err());
            if n > 1 {
                prop_assert!(verify_inclusion(&p, n, &root, (i + 1) % n, &leaves[i as usize]).is_err());
                let mut bad = p.clone();
                bad[0].0[0] ^= 1;
                prop_assert!(verify_inclusion(&bad, n, &root, i, &leaves[i as usize]).is_err());
                prop_assert!(verify_inclusion(&p[1..], n, &root, i, &leaves[i as usize]).is_err());
            }
            prop_assert!(verify_inclusion(&p, n, &root, n, &leaves[i as usize]).is_err());
        }

        #[test]
        fn consistency_proofs_are_the_rfc_proofs(n in 1u64..400, m in 1u64..400) {
            let old = 1 + (m - 1) % n;
            let (leaves, hashes) = tree(n);
            let new_root = naive_root(&leaves);
            let old_root = naive_root(&leaves[..old as usize]);
            let p = prove_consistency(n, old, &hashes).unwrap();
            prop_assert_eq!(&p, &naive_consistency(old as usize, &leaves));
            prop_assert!(verify_consistency(&p, n, &new_root, old, &old_root).is_ok());
            // A forked history (one leaf of the old tree rewritten) is not consistent.
            let mut forked = leaves.clone();
            forked[(old - 1) as usize] = leaf_hash(b"rewritten");
            let forked_old = naive_root(&forked[..old as usize]);
            prop_assert!(verify_consistency(&p, n, &new_root, old, &forked_old).is_err());
            if !p.is_empty() {
                let mut bad = p.clone();
                let last = bad.len() - 1;
                bad[last].0[31] ^= 1;
                prop_assert!(verify_consistency(&bad, n, &new_root, old, &old_root).is_err());
            }
        }
    }

    #[test]
    fn out_of_range_requests_are_errors_not_panics() {
        let (_, m) = tree(5);
        assert!(prove_inclusion(5, 5, &m).is_err());
        assert!(
            prove_inclusion(6, 0, &m).is_err(),
            "hashes beyond the stored tree"
        );
        assert!(prove_consistency(5, 0, &m).is_err());
        assert!(prove_consistency(5, 6, &m).is_err());
        assert!(verify_consistency(&[], 5, &Hash::default(), 0, &Hash::default()).is_err());
        assert_eq!(prove_consistency(5, 5, &m).unwrap(), Vec::<Hash>::new());
    }
}
