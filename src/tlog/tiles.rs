//! The C2SP `tlog-tiles` layout: tile and entry-bundle paths, their contents, and the
//! incremental builder that turns appended entries into full tiles (immutable) and the partial
//! tiles a checkpoint at the current size needs.

use super::TlogError;
use super::frontier::Frontier;
use super::hash::{HASH_SIZE, Hash, leaf_hash, node_hash};

/// Tree levels per tile (C2SP: fixed at 8).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 256;
/// Largest entry an entry bundle can carry (16-bit length prefix).
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes at tree level `8 × L` (`tile/<L>/…`).
    Hashes(u8),
    /// Entries, length-prefixed (`tile/entries/…`).
    Entries,
}

/// One tile or entry bundle: kind, index within its level, width (256 = full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Hash tile of a level, or entry bundle.
    pub kind: TileKind,
    /// Index `N` of the tile within its level.
    pub index: u64,
    /// Number of hashes or entries, 1..=256; under 256 it is a partial tile (`.p/<W>`).
    pub width: u16,
}

impl TileId {
    /// The hash tile at `level`, `index`, `width`.
    pub fn hashes(level: u8, index: u64, width: u16) -> TileId {
        TileId {
            kind: TileKind::Hashes(level),
            index,
            width,
        }
    }

    /// The entry bundle `index`, `width`.
    pub fn entries(index: u64, width: u16) -> TileId {
        TileId {
            kind: TileKind::Entries,
            index,
            width,
        }
    }

    /// True for a full (256-wide) tile, which never changes once written.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The same tile at full width.
    pub fn full(&self) -> TileId {
        TileId {
            width: TILE_WIDTH,
            ..*self
        }
    }

    /// The path under the log's prefix: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`,
    /// `N` in 3-digit elements, all but the last prefixed with `x` (`x001/x234/067`).
    pub fn path(&self) -> String {
        let mut s = match self.kind {
            TileKind::Hashes(l) => format!("tile/{l}/"),
            TileKind::Entries => "tile/entries/".to_string(),
        };
        s.push_str(&encode_index(self.index));
        if !self.is_full() {
            s.push_str(&format!(".p/{}", self.width));
        }
        s
    }

    /// Parses a tile path (the inverse of [`TileId::path`]); refuses anything non-canonical.
    pub fn parse_path(path: &str) -> Result<TileId, TlogError> {
        let bad = || TlogError::Malformed(format!("not a tile path: {path:?}"));
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (kind, rest) = rest.split_once('/').ok_or_else(bad)?;
        let kind = if kind == "entries" {
            TileKind::Entries
        } else {
            let l: u8 = canonical_decimal(kind).ok_or_else(bad)?;
            if l > 63 {
                return Err(bad());
            }
            TileKind::Hashes(l)
        };
        let (n, width) = match rest.split_once(".p/") {
            None => (rest, TILE_WIDTH),
            Some((n, w)) => {
                let w: u16 = canonical_decimal(w).ok_or_else(bad)?;
                if !(1..TILE_WIDTH).contains(&w) {
                    return Err(bad());
                }
                (n, w)
            }
        };
        let elems: Vec<&str> = n.split('/').collect();
        let (last, front) = elems.split_last().ok_or_else(bad)?;
        let mut index: u64 = 0;
        for (i, e) in front.iter().chain(std::iter::once(last)).enumerate() {
            let digits = if i < front.len() {
                e.strip_prefix('x').ok_or_else(bad)?
            } else {
                e
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|x| x.checked_add(d))
                .ok_or_else(bad)?;
        }
        let id = TileId { kind, index, width };
        if id.path() != path {
            return Err(bad()); // e.g. a leading x000 element
        }
        Ok(id)
    }
}

fn canonical_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok { s.parse().ok() } else { None }
}

fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// The tiles a checkpoint at `size` needs that are partial: one per level with a remainder,
/// plus the partial entry bundle (C2SP: `floor(s / 256**l) mod 256` wide).
pub fn partial_tiles_for(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    if !size.is_multiple_of(u64::from(TILE_WIDTH)) {
        out.push(TileId::entries(size >> 8, (size & 255) as u16));
    }
    let mut level = 0u8;
    while level < 8 && (size >> (8 * u32::from(level))) > 0 {
        let at = size >> (8 * u32::from(level));
        if at & 255 != 0 {
            out.push(TileId::hashes(level, at >> 8, (at & 255) as u16));
        }
        level += 1;
    }
    out
}

/// An entry bundle: each entry as a big-endian u16 length and its bytes.
pub fn encode_entries<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TlogError> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.as_ref().len() + 2).sum());
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TlogError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of a bundle; refused when a length runs past the end.
pub fn decode_entries(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, TlogError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let Some((len, rest)) = bytes.split_first_chunk::<2>() else {
            return Err(TlogError::Malformed(
                "entry bundle ends inside a length".into(),
            ));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(TlogError::Malformed(
                "entry bundle ends inside an entry".into(),
            ));
        }
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Ok(out)
}

/// The hashes of a hash tile's bytes; refused unless it is a whole number of hashes.
pub fn decode_hashes(bytes: &[u8]) -> Result<Vec<Hash>, TlogError> {
    if !bytes.len().is_multiple_of(HASH_SIZE) {
        return Err(TlogError::Malformed(format!(
            "tile of {} bytes is not a whole number of hashes",
            bytes.len()
        )));
    }
    bytes
        .chunks_exact(HASH_SIZE)
        .map(Hash::from_slice)
        .collect()
}

/// The root of a perfect subtree from its 2^k bottom hashes (a full tile → its level-up hash).
pub(crate) fn perfect_root(hashes: &[Hash]) -> Hash {
    let mut row: Vec<Hash> = hashes.to_vec();
    while row.len() > 1 {
        row = row
            .chunks(2)
            .map(|p| match p {
                [l, r] => node_hash(l, r),
                [l] => *l,
                _ => Hash::default(),
            })
            .collect();
    }
    row.first().copied().unwrap_or_default()
}

/// Builds tiles as entries are appended: full tiles as they complete, partial tiles on demand.
/// Keeps the right edge and at most 255 pending hashes per level and 255 pending entries.
#[derive(Debug, Clone, Default)]
pub struct TileBuilder {
    frontier: Frontier,
    /// `rows[L]`: the level-`8L` hashes of the incomplete tile of level `L`.
    rows: Vec<Vec<Hash>>,
    /// The entries of the incomplete entry bundle.
    entries: Vec<Vec<u8>>,
}

impl TileBuilder {
    /// A builder for an empty log.
    pub fn new() -> TileBuilder {
        TileBuilder::default()
    }

    /// A builder resuming at `frontier.size()`, given the pending hashes of each level and the
    /// pending entries (read back from the partial tiles of that size).
    pub fn resume(
        frontier: Frontier,
        rows: Vec<Vec<Hash>>,
        entries: Vec<Vec<u8>>,
    ) -> Result<TileBuilder, TlogError> {
        let size = frontier.size();
        let pending = |l: usize| {
            if l < 8 {
                ((size >> (8 * l)) & 255) as usize
            } else {
                0
            }
        };
        let ok = entries.len() as u64 == size & 255
            && (0..rows.len().max(8)).all(|l| rows.get(l).map_or(0, Vec::len) == pending(l));
        if !ok {
            return Err(TlogError::Malformed(format!(
                "partial tiles do not match a tree of size {size}"
            )));
        }
        Ok(TileBuilder {
            frontier,
            rows,
            entries,
        })
    }

    /// A builder resuming at `frontier.size()` from the partial tiles of that size (as
    /// [`TileBuilder::partial_tiles`] gave them: read back from a store or a saved state).
    pub fn from_partials(
        frontier: Frontier,
        partials: &[(TileId, Vec<u8>)],
    ) -> Result<TileBuilder, TlogError> {
        let mut rows = vec![Vec::new(); 8];
        let mut entries = Vec::new();
        for (id, bytes) in partials {
            match id.kind {
                TileKind::Entries => entries = decode_entries(bytes)?,
                TileKind::Hashes(l) => {
                    if let Some(r) = rows.get_mut(usize::from(l)) {
                        *r = decode_hashes(bytes)?;
                    }
                }
            }
        }
        TileBuilder::resume(frontier, rows, entries)
    }

    /// The tree's right edge at the current size.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// Number of entries appended.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root at the current size.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends an entry; returns the full tiles (entry bundle, hash tiles) it completed, with
    /// their contents, to be written before any checkpoint that covers them.
    pub fn push(&mut self, entry: &[u8]) -> Result<Vec<(TileId, Vec<u8>)>, TlogError> {
        if entry.len() > MAX_ENTRY {
            return Err(TlogError::EntryTooLarge(entry.len()));
        }
        let leaf = leaf_hash(entry);
        self.frontier.append(leaf);
        let mut out = Vec::new();
        self.entries.push(entry.to_vec());
        if self.entries.len() == usize::from(TILE_WIDTH) {
            let id = TileId::entries((self.size() >> 8) - 1, TILE_WIDTH);
            out.push((id, encode_entries(&self.entries)?));
            self.entries.clear();
        }
        let size = self.size();
        let mut h = leaf;
        let mut level = 0usize;
        loop {
            if self.rows.len() <= level {
                self.rows.push(Vec::new());
            }
            let row = &mut self.rows[level];
            row.push(h);
            if row.len() < usize::from(TILE_WIDTH) {
                break;
            }
            let index = size
                .checked_shr(8 * (level as u32 + 1))
                .unwrap_or(0)
                .saturating_sub(1);
            out.push((
                TileId::hashes(level as u8, index, TILE_WIDTH),
                row.iter().flat_map(|h| h.0).collect(),
            ));
            h = perfect_root(row);
            row.clear();
            level += 1;
        }
        Ok(out)
    }

    /// The partial tiles (and partial entry bundle) of the current size, with contents: what
    /// a checkpoint at this size needs beside the full tiles already returned by `push`.
    pub fn partial_tiles(&self) -> Result<Vec<(TileId, Vec<u8>)>, TlogError> {
        let mut out = Vec::new();
        for id in partial_tiles_for(self.size()) {
            let bytes = match id.kind {
                TileKind::Entries => encode_entries(&self.entries)?,
                TileKind::Hashes(l) => self
                    .rows
                    .get(usize::from(l))
                    .map(|r| r.iter().flat_map(|h| h.0).collect())
                    .unwrap_or_default(),
            };
            out.push((id, bytes));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::proof::MemoryHashes;

    #[test]
    fn paths_follow_the_spec() {
        assert_eq!(
            TileId::hashes(0, 1_234_067, 256).path(),
            "tile/0/x001/x234/067"
        );
        assert_eq!(TileId::hashes(2, 5, 17).path(), "tile/2/005.p/17");
        assert_eq!(TileId::entries(0, 3).path(), "tile/entries/000.p/3");
        assert_eq!(TileId::entries(1000, 256).path(), "tile/entries/x001/000");
        for id in [
            TileId::hashes(0, 1_234_067, 256),
            TileId::hashes(63, u64::MAX, 1),
            TileId::entries(999, 255),
        ] {
            assert_eq!(TileId::parse_path(&id.path()).unwrap(), id);
        }
        for bad in [
            "tile/0/1",
            "tile/00/001",
            "tile/64/001",
            "tile/0/x000/001",
            "tile/0/001.p/256",
            "tile/0/001.p/0",
            "tile/0/001.p/07",
            "tile/0/001/",
            "tiles/0/001",
            "tile/entries/1234",
            "tile/0/x1/001",
        ] {
            assert!(TileId::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn partial_tiles_of_the_spec_example() {
        // "a tree of size 70,000 ... one partial level 0 tile of width 112, ... one partial
        // level 1 tile of width 17, and one partial level 2 tile of width 1".
        let p = partial_tiles_for(70_000);
        assert!(p.contains(&TileId::hashes(0, 273, 112)));
        assert!(p.contains(&TileId::hashes(1, 1, 17)));
        assert!(p.contains(&TileId::hashes(2, 0, 1)));
        assert!(p.contains(&TileId::entries(273, 112)));
        assert_eq!(p.len(), 4);
        assert_eq!(partial_tiles_for(256), vec![TileId::hashes(1, 0, 1)]);
        assert!(partial_tiles_for(0).is_empty());
    }

    #[test]
    fn entry_bundles_round_trip_and_refuse_truncation() {
        let e: Vec<Vec<u8>> = vec![b"".to_vec(), b"abc".to_vec(), vec![7; 300]];
        let b = encode_entries(&e).unwrap();
        assert_eq!(&b[..5], &[0, 0, 0, 3, b'a']);
        assert_eq!(decode_entries(&b).unwrap(), e);
        assert!(decode_entries(&b[..b.len() - 1]).is_err());
        assert!(decode_entries(&[0]).is_err());
        assert!(matches!(
            encode_entries(&[vec![0; 70_000]]),
            Err(TlogError::EntryTooLarge(70_000))
        ));
    }

    #[test]
    fn builder_tiles_hold_the_stored_hashes() {
        let mut b = TileBuilder::new();
        let mut m = MemoryHashes::new();
        let mut full = Vec::new();
        for i in 0..70_000u32 {
            let e = i.to_be_bytes();
            m.append(leaf_hash(&e));
            full.extend(b.push(&e).unwrap());
        }
        // Every full tile and every partial tile holds the stored hashes of its range.
        for (id, bytes) in full.iter().chain(b.partial_tiles().unwrap().iter()) {
            match id.kind {
                TileKind::Hashes(l) => {
                    let row = m.level(8 * l);
                    let start = (id.index * 256) as usize;
                    let want: Vec<Hash> = row[start..start + usize::from(id.width)].to_vec();
                    assert_eq!(decode_hashes(bytes).unwrap(), want, "{id:?}");
                }
                TileKind::Entries => {
                    let got = decode_entries(bytes).unwrap();
                    assert_eq!(got.len(), usize::from(id.width));
                    assert_eq!(got[0], ((id.index * 256) as u32).to_be_bytes());
                }
            }
        }
        let ids: Vec<TileId> = full.iter().map(|(id, _)| *id).collect();
        assert!(ids.contains(&TileId::hashes(1, 0, 256)));
        assert!(ids.contains(&TileId::entries(272, 256)));
        assert_eq!(b.root(), crate::tlog::proof::tree_hash(70_000, &m).unwrap());
        assert!(b.push(&vec![0; MAX_ENTRY + 1]).is_err());
    }
}
