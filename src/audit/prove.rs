//! `bucket audit prove` and the read API's proof routes: find a decision's leaf through the
//! tiles service's index, and build its self-contained proof bundle from the tiles directory
//! alone (the record from the entry bundle, the inclusion proof from the hash tiles, against the
//! partition's published checkpoint). No Kafka, no registry.

use std::path::Path;

use super::tiles::published_checkpoint;
use super::tlog_index::{Hit, IndexError, Key, lookup, product_hash};
use crate::tlog::proof::verify_inclusion;
use crate::tlog::tiles::decode_entries;
use crate::tlog::tiles_fs::TileSource;
use crate::tlog::{FsTileStore, ProofBundle, TileHashReader, TileId, TlogError, leaf_hash};

/// Why no bundle could be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The index has no such decision (or not for that product).
    #[error("no decision {0} in the index")]
    NotFound(String),
    /// The decision is in the tiles but no published checkpoint covers it yet.
    #[error(
        "partition {partition} seq {seq} is not covered by a published checkpoint yet (size \
         {size}); try again after the gate's next CHECKPOINT"
    )]
    NotYetCheckpointed {
        /// Audit partition.
        partition: i32,
        /// Leaf index.
        seq: u64,
        /// Published tree size.
        size: u64,
    },
    /// The index.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// Tiles, checkpoint or proof.
    #[error("tlog: {0}")]
    Tlog(#[from] TlogError),
}

/// The decisions matching `key` (all partitions), limited to `product`'s when given.
pub fn find(dir: &Path, key: &Key, product: Option<&str>) -> Result<Vec<Hit>, ProveError> {
    let want = product.map(product_hash);
    Ok(lookup(dir, key)?
        .into_iter()
        .filter(|h| want.as_ref().is_none_or(|w| &h.product_hash == w))
        .collect())
}

/// The proof bundle of leaf `seq` of `partition` against its published checkpoint, checked
/// against the checkpoint's root before it is returned (a corrupt directory gives an error, not
/// a bundle that fails later).
pub fn prove(dir: &Path, partition: i32, seq: u64) -> Result<ProofBundle, ProveError> {
    let store = FsTileStore::new(dir.join(partition.to_string()));
    let Some((note, head)) = published_checkpoint(&store)? else {
        return Err(ProveError::NotYetCheckpointed {
            partition,
            seq,
            size: 0,
        });
    };
    if seq >= head.size {
        return Err(ProveError::NotYetCheckpointed {
            partition,
            seq,
            size: head.size,
        });
    }
    let n = seq >> 8;
    let width = if n < head.size >> 8 {
        256
    } else {
        (head.size & 255) as u16
    };
    let entries = decode_entries(&store.read_tile(&TileId::entries(n, width))?)?;
    let record = entries
        .get((seq & 255) as usize)
        .ok_or(TlogError::Malformed(format!(
            "entry bundle {n} has no entry {}",
            seq & 255
        )))?;
    let reader = TileHashReader::new(head.size, &store);
    let bundle = ProofBundle::build(seq, record, head.size, &note, &reader)?;
    verify_inclusion(
        &bundle.inclusion_proof,
        head.size,
        &head.root,
        seq,
        &leaf_hash(record),
    )?;
    Ok(bundle)
}

/// The bundle of the first decision matching `key` (limited to `product`'s when given); the
/// other matches, if any, are returned beside it (a replayed intent id has several decisions).
pub fn prove_key(
    dir: &Path,
    key: &Key,
    product: Option<&str>,
) -> Result<(ProofBundle, Hit, Vec<Hit>), ProveError> {
    let mut hits = find(dir, key, product)?;
    if hits.is_empty() {
        return Err(ProveError::NotFound(format!("{key:?}")));
    }
    let first = hits.remove(0);
    Ok((prove(dir, first.partition, first.seq)?, first, hits))
}
