//! Byte layout of the state changelog's records. Keys name one piece of state, so compaction
//! keeps the latest value of each; values carry the changelog epoch they were written in and
//! the store's own value layout. The changelog is a cache of the audit log (rebuildable from
//! it), so a layout change bumps [`FORMAT`] and a restore that meets another format rebuilds
//! from the audit log instead of guessing.

use crate::core::state::{ArtifactKey, ReplayKey};
use crate::gate::store::codec::{ByteReader, ByteWriter};
use crate::gate::store::meta::{read_edge, write_edge};
use crate::gate::store::{StateEntry, StateStoreError};

/// Format byte every changelog value starts with.
pub const FORMAT: u8 = 1;

/// Smallest replay ring: replay ids are keyed by `position % ring`, a ring that compaction keeps
/// at most `ring` records large and that never needs tombstones. An epoch's ring is the replay
/// window rounded up to a power of two ([`ring_for`]); a window that outgrows it starts a new
/// epoch.
pub const MIN_REPLAY_RING: u64 = 1024;

/// The replay ring of an epoch started under `window`.
pub fn ring_for(window: u64) -> u64 {
    window.max(MIN_REPLAY_RING).next_power_of_two()
}

const TAG_ARTIFACT: u8 = b'A';
const TAG_USAGE: u8 = b'U';
const TAG_RATE: u8 = b'R';
const TAG_OFFENDER: u8 = b'O';
const TAG_SEEN: u8 = b'S';
/// Key tag of a partition head (the first byte of its key).
pub const TAG_HEAD: u8 = b'H';

/// The point a partition's changelog reflects, written last in every transaction that touches
/// the partition: the audit chain head and input position the state entries of its epoch add
/// up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Sequence number the next audit link gets.
    pub audit_next_seq: i64,
    /// Hash of the last audit link.
    pub audit_hash: String,
    /// Highest intent offset with a committed decision (-1 if none).
    pub last_decided_offset: i64,
    /// Policy version of the chain's last link.
    pub policy_version: String,
    /// Next `bucket.control` offset to fold.
    pub control_next: i64,
    /// Oldest replay position still remembered (ids below it are forgotten).
    pub replay_head: u64,
    /// Position the next remembered intent id gets.
    pub replay_next: u64,
    /// Replay window in force.
    pub replay_window: u64,
    /// Replay ring of the epoch (replay ids are keyed by position modulo it).
    pub replay_ring: u64,
    /// Right edge of the partition's Merkle tree over its links (size `audit_next_seq`).
    pub tree_edge: Vec<crate::tlog::Hash>,
}

/// One changelog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A piece of state.
    State(StateEntry),
    /// The partition's head.
    Head(Head),
}

/// Why a changelog record was not understood.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    /// Written in another format: restore from the audit log.
    #[error("changelog format {0}, this build reads {FORMAT}")]
    Format(u8),
    /// Damaged or not a changelog record.
    #[error("changelog record: {0}")]
    Corrupt(String),
    /// The local store failed while loading the changelog into it.
    #[error("loading the changelog: {0}")]
    Store(#[source] StateStoreError),
}

impl From<StateStoreError> for ChangelogError {
    fn from(e: StateStoreError) -> Self {
        ChangelogError::Corrupt(e.to_string())
    }
}

/// Key and value of a record written in `epoch`, whose replay ring is `ring`.
pub fn encode(
    epoch: u64,
    ring: u64,
    record: &Record,
) -> Result<(Vec<u8>, Vec<u8>), StateStoreError> {
    let mut k = ByteWriter::key();
    let mut v = ByteWriter::key();
    v.u8(FORMAT).u64(epoch);
    match record {
        Record::State(StateEntry::Artifact(key, value)) => {
            k.u8(TAG_ARTIFACT).str(&key.product_id)?;
            k.raw(key.artifact_id.as_bytes());
            v.raw(value);
        }
        Record::State(StateEntry::Usage(product, value)) => {
            k.u8(TAG_USAGE).raw(product.as_bytes());
            v.raw(value);
        }
        Record::State(StateEntry::Rate(product, value)) => {
            k.u8(TAG_RATE).raw(product.as_bytes());
            v.raw(value);
        }
        Record::State(StateEntry::Offender(integration, value)) => {
            k.u8(TAG_OFFENDER).raw(integration.as_bytes());
            v.raw(value);
        }
        Record::State(StateEntry::Seen((product, intent), position)) => {
            k.u8(TAG_SEEN).u64(position % ring.max(1));
            v.u64(*position).str(product)?.str(intent)?;
        }
        Record::Head(h) => {
            k.u8(TAG_HEAD);
            v.i64(h.audit_next_seq)
                .i64(h.last_decided_offset)
                .i64(h.control_next)
                .u64(h.replay_head)
                .u64(h.replay_next)
                .u64(h.replay_window)
                .u64(h.replay_ring);
            v.str(&h.audit_hash)?.str(&h.policy_version)?;
            write_edge(&mut v, &h.tree_edge)?;
        }
    }
    Ok((k.done(), v.done()))
}

/// The epoch and record of a changelog key and value.
pub fn decode(key: &[u8], value: &[u8]) -> Result<(u64, Record), ChangelogError> {
    let mut v = ByteReader::raw(value, "changelog value");
    let format = v.u8()?;
    if format != FORMAT {
        return Err(ChangelogError::Format(format));
    }
    let epoch = v.u64()?;
    let mut k = ByteReader::raw(key, "changelog key");
    let utf8 = |b: &[u8]| {
        String::from_utf8(b.to_vec())
            .map_err(|_| ChangelogError::Corrupt("key: invalid UTF-8".into()))
    };
    let record = match k.u8()? {
        TAG_ARTIFACT => {
            let product_id = k.str()?;
            let artifact_id = utf8(k.rest())?;
            let key = ArtifactKey {
                product_id,
                artifact_id,
            };
            Record::State(StateEntry::Artifact(key, v.rest().to_vec()))
        }
        TAG_USAGE => Record::State(StateEntry::Usage(utf8(k.rest())?, v.rest().to_vec())),
        TAG_RATE => Record::State(StateEntry::Rate(utf8(k.rest())?, v.rest().to_vec())),
        TAG_OFFENDER => Record::State(StateEntry::Offender(utf8(k.rest())?, v.rest().to_vec())),
        TAG_SEEN => {
            k.u64()?;
            k.end()?;
            let position = v.u64()?;
            let key: ReplayKey = (v.str()?, v.str()?);
            v.end()?;
            Record::State(StateEntry::Seen(key, position))
        }
        TAG_HEAD => {
            k.end()?;
            let audit_next_seq = v.i64()?;
            let last_decided_offset = v.i64()?;
            let control_next = v.i64()?;
            let replay_head = v.u64()?;
            let replay_next = v.u64()?;
            let replay_window = v.u64()?;
            let replay_ring = v.u64()?;
            let audit_hash = v.str()?;
            let policy_version = v.str()?;
            let tree_edge = read_edge(&mut v)?;
            v.end()?;
            Record::Head(Head {
                audit_next_seq,
                audit_hash,
                last_decided_offset,
                policy_version,
                control_next,
                replay_head,
                replay_next,
                replay_window,
                replay_ring,
                tree_edge,
            })
        }
        other => return Err(ChangelogError::Corrupt(format!("key tag {other}"))),
    };
    if let Record::State(entry) = &record {
        entry.validate()?;
    }
    Ok((epoch, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{ArtifactRecord, OffenderState, Usage};
    use proptest::prelude::*;

    fn head() -> Head {
        Head {
            audit_next_seq: 42,
            audit_hash: "ab".repeat(32),
            last_decided_offset: 99,
            policy_version: "p-1".into(),
            control_next: 3,
            replay_head: 1_034_567,
            replay_next: 1_234_567,
            replay_window: 200_000,
            replay_ring: 262_144,
            tree_edge: vec![crate::tlog::Hash([7; 32])],
        }
    }

    #[test]
    fn every_kind_round_trips_with_its_epoch() {
        let record = ArtifactRecord {
            version: 3,
            owner_id: "o".into(),
            artifact_class: "document".into(),
            size: 10,
            deleted: false,
        };
        let offender = OffenderState {
            rejections: [1, 2].into(),
            cooling_until: Some(5),
        };
        let key = ArtifactKey {
            product_id: "p/1".into(),
            artifact_id: "a/b".into(),
        };
        let records = [
            Record::State(StateEntry::artifact(key, &record).unwrap()),
            Record::State(StateEntry::usage("p".into(), &Usage::default())),
            Record::State(StateEntry::rate("p".into(), -7)),
            Record::State(StateEntry::offender("i".into(), &offender).unwrap()),
            Record::State(StateEntry::Seen(("p".into(), "id".into()), 1 << 21)),
            Record::Head(head()),
        ];
        for r in records {
            let (k, v) = encode(77, 1024, &r).unwrap();
            assert_eq!(decode(&k, &v).unwrap(), (77, r));
        }
    }

    #[test]
    fn replay_ids_share_a_slot_one_ring_apart_and_nothing_else_does() {
        let seen = |p: &str, id: &str, position| {
            let entry = StateEntry::Seen((p.into(), id.into()), position);
            encode(1, 1024, &Record::State(entry)).unwrap().0
        };
        assert_eq!(seen("p", "x", 5), seen("q", "y", 5 + 1024));
        assert_ne!(seen("p", "x", 5), seen("p", "x", 6));
        assert_eq!(ring_for(200_000), 262_144);
        assert_eq!(ring_for(3), MIN_REPLAY_RING);
    }

    #[test]
    fn another_format_and_damaged_values_are_refused() {
        let (k, mut v) = encode(1, 1024, &Record::Head(head())).unwrap();
        v[0] = FORMAT + 1;
        assert!(matches!(decode(&k, &v), Err(ChangelogError::Format(_))));
        let (k, v) = encode(1, 1024, &Record::State(StateEntry::rate("p".into(), 1))).unwrap();
        assert!(decode(&k, &v[..v.len() - 1]).is_err());
        let (mut k, v) = encode(1, 1024, &Record::Head(head())).unwrap();
        k.push(0);
        assert!(decode(&k, &v).is_err(), "a head key is one byte");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(k in proptest::collection::vec(any::<u8>(), 0..40),
                                       v in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = decode(&k, &v);
        }
    }
}
