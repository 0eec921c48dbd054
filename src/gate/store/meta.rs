//! What a store says about itself: whose it is ([`StoreIdentity`]) and which committed point it
//! reflects ([`StoreCheckpoint`]).

use super::StateStoreError;
use super::codec::{ByteReader, ByteWriter};

/// Format generation of the stores this build writes. Bump it when any layout in `codec`,
/// `ids` or the table set changes: older stores are then refused and rebuilt.
pub const STORE_GENERATION: u32 = 2;

/// Whose state a store holds. A store opened with another identity is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// The cluster the gate runs against (e.g. its consumer group or a cluster id).
    pub cluster: String,
    /// Intents topic the partition belongs to.
    pub intents_topic: String,
    /// Audit topic whose chain the store follows.
    pub audit_topic: String,
    /// Partition number.
    pub partition: i32,
    /// Format generation ([`STORE_GENERATION`] unless a caller forces a rebuild).
    pub generation: u32,
}

impl StoreIdentity {
    /// An identity at this build's format generation.
    pub fn new(cluster: &str, intents_topic: &str, audit_topic: &str, partition: i32) -> Self {
        StoreIdentity {
            cluster: cluster.to_string(),
            intents_topic: intents_topic.to_string(),
            audit_topic: audit_topic.to_string(),
            partition,
            generation: STORE_GENERATION,
        }
    }

    /// Encodes the identity; the generation comes first, unversioned, so any later format
    /// can still read it and refuse.
    pub fn encode(&self) -> Result<Vec<u8>, StateStoreError> {
        let mut w = ByteWriter::key();
        w.u32(self.generation).u32(self.partition as u32);
        w.str(&self.cluster)?
            .str(&self.intents_topic)?
            .str(&self.audit_topic)?;
        Ok(w.done())
    }

    /// Decodes a stored identity; only the generation when the rest is of another format.
    pub fn decode(buf: &[u8]) -> Result<Result<StoreIdentity, u32>, StateStoreError> {
        let mut r = ByteReader::raw(buf, "identity");
        let generation = r.u32()?;
        if generation != STORE_GENERATION {
            return Ok(Err(generation));
        }
        let partition = r.u32()? as i32;
        let cluster = r.str()?;
        let intents_topic = r.str()?;
        let audit_topic = r.str()?;
        r.end()?;
        Ok(Ok(StoreIdentity {
            cluster,
            intents_topic,
            audit_topic,
            partition,
            generation,
        }))
    }
}

/// The committed point a store reflects: the audit chain head and input offsets after the last
/// batch written into it. Written only after the Kafka transaction committed; never trust the
/// store past it (replay the audit tail from `audit_offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCheckpoint {
    /// Sequence number the next audit link gets.
    pub audit_next_seq: i64,
    /// Hash of the last audit link (genesis hash for an empty chain).
    pub audit_hash: String,
    /// Next audit offset to read when replaying the tail.
    pub audit_offset: i64,
    /// Highest intent offset with a committed decision (-1 if none).
    pub last_decided_offset: i64,
    /// Policy version of the chain's last link ("" for an empty chain).
    pub policy_version: String,
    /// Next `bucket.control` offset to fold.
    pub control_next: i64,
    /// Right edge of the partition's Merkle tree over its links (size `audit_next_seq`).
    pub tree_edge: Vec<crate::tlog::Hash>,
}

impl StoreCheckpoint {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> Result<Vec<u8>, StateStoreError> {
        let mut w = ByteWriter::value();
        w.i64(self.audit_next_seq)
            .i64(self.audit_offset)
            .i64(self.last_decided_offset)
            .i64(self.control_next);
        w.str(&self.audit_hash)?.str(&self.policy_version)?;
        write_edge(&mut w, &self.tree_edge)?;
        Ok(w.done())
    }

    /// Decodes a checkpoint.
    pub fn decode(buf: &[u8]) -> Result<StoreCheckpoint, StateStoreError> {
        let mut r = ByteReader::value(buf, "checkpoint")?;
        let audit_next_seq = r.i64()?;
        let audit_offset = r.i64()?;
        let last_decided_offset = r.i64()?;
        let control_next = r.i64()?;
        let audit_hash = r.str()?;
        let policy_version = r.str()?;
        let tree_edge = read_edge(&mut r)?;
        r.end()?;
        Ok(StoreCheckpoint {
            audit_next_seq,
            audit_hash,
            audit_offset,
            last_decided_offset,
            policy_version,
            control_next,
            tree_edge,
        })
    }
}

/// Writes a tree edge: a count byte, then the 32-byte hashes.
pub fn write_edge(w: &mut ByteWriter, edge: &[crate::tlog::Hash]) -> Result<(), StateStoreError> {
    let n = u8::try_from(edge.len()).map_err(|_| StateStoreError::TooLong(edge.len()))?;
    w.u8(n);
    for h in edge {
        w.raw(&h.0);
    }
    Ok(())
}

/// Reads a tree edge written by [`write_edge`].
pub fn read_edge(r: &mut ByteReader<'_>) -> Result<Vec<crate::tlog::Hash>, StateStoreError> {
    let n = r.u8()?;
    let mut edge = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        edge.push(crate::tlog::Hash(r.bytes32()?));
    }
    Ok(edge)
}
