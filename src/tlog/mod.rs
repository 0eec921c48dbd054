//! A verifiable audit log (issue 17): each audit partition as an RFC 6962 Merkle tree over its
//! links, with signed C2SP checkpoints, C2SP tiles and self-contained proof bundles, so that a
//! decision can be proven to someone holding only the gate's public key. Pure apart from the
//! filesystem tile store; checked against Go's `golang.org/x/mod/sumdb` by `tests/tlog_go.rs`.
//!
//! - [`hash`]: leaf and node hashes, stored-hash positions.
//! - [`frontier`]: the right edge the gate keeps per partition (append, root).
//! - [`proof`]: inclusion and consistency proofs from a [`proof::HashReader`], and their checks.
//! - [`checkpoint`]: the C2SP `tlog-checkpoint` body, the origin naming a partition, and the
//!   signed note a `CHECKPOINT` link carries.
//! - [`note`]: C2SP `signed-note` with Ed25519 (signing with the gate's audit key, verifier keys).
//! - [`tiles`]: C2SP `tlog-tiles` paths, tile and entry-bundle contents, the incremental builder.
//! - [`tiles_fs`]: tiles on a filesystem (atomic, idempotent writes) and a hash reader over them.
//! - [`bundle`]: the proof bundle a product hands to an auditor, and its offline check.

pub mod bundle;
pub mod checkpoint;
pub mod frontier;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tiles;
pub mod tiles_fs;

#[cfg(test)]
mod testutil;

pub use bundle::{ProofBundle, verify_bundle};
pub use checkpoint::{TreeHead, origin};
pub use frontier::Frontier;
pub use hash::{Hash, Position, leaf_hash, node_hash};
pub use note::{NoteSigner, NoteVerifier};
pub use proof::{HashReader, MemoryHashes};
pub use tiles::{TileBuilder, TileId};
pub use tiles_fs::{FsTileStore, TileHashReader};

/// Everything that can go wrong reading, proving or verifying; every input-reachable failure is
/// one of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum TlogError {
    /// Bytes that do not parse as the format claims (checkpoint, note, key, tile, bundle).
    #[error("malformed: {0}")]
    Malformed(String),
    /// A leaf index or tree size outside the tree.
    #[error("index {index} is out of range for a tree of size {size}")]
    OutOfRange {
        /// The index (or old size) asked for.
        index: u64,
        /// The tree size it was asked against.
        size: u64,
    },
    /// A stored hash the reader does not have (missing or short tile).
    #[error("stored hash at level {}, index {} is not available", .0.level, .0.index)]
    MissingHash(Position),
    /// A proof that does not check.
    #[error("proof failed: {0}")]
    ProofFailed(&'static str),
    /// A note with no valid signature by the expected key, or a bad signature by it.
    #[error("signature: {0}")]
    Signature(String),
    /// An entry over the 65,535 bytes a C2SP entry bundle can carry.
    #[error("entry of {0} bytes is over the 65535-byte limit of an entry bundle")]
    EntryTooLarge(usize),
    /// Filesystem trouble in the tile store.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Content already on disk differs from what would be written (a forked or corrupt store).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A broken invariant of this module (a bug, reported rather than panicking).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
