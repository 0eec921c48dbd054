//! Compact keys: product ids interned to `u32`, intent ids stored as 16 bytes when they are
//! UUIDs in canonical form, artifact keys as the product's number and the artifact id's bytes.

use std::collections::HashMap;

use super::StateStoreError;
use super::codec::{ByteReader, ByteWriter};
use crate::core::state::{ArtifactKey, ReplayKey};

/// Tag of an intent id stored as the 16 bytes of a canonical (lower-case, hyphenated) UUID.
const TAG_UUID: u8 = 1;
/// Tag of an intent id stored as its raw UTF-8 bytes.
const TAG_RAW: u8 = 2;

/// Product ids interned to numbers; the table is persisted in the store.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    ids: HashMap<String, u32>,
    next: u32,
}

impl Interner {
    /// Rebuilds the table from its persisted entries (product id → number).
    pub fn from_entries(
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<Interner, StateStoreError> {
        let mut out = Interner::default();
        for (k, v) in entries {
            let name = String::from_utf8(k)
                .map_err(|_| StateStoreError::Corrupt("product table: invalid UTF-8".into()))?;
            let mut r = ByteReader::raw(&v, "product table");
            let id = r.u32()?;
            r.end()?;
            out.next = out.next.max(id.saturating_add(1));
            out.ids.insert(name, id);
        }
        Ok(out)
    }

    /// Number of a known product.
    pub fn get(&self, product: &str) -> Option<u32> {
        self.ids.get(product).copied()
    }

    /// Number of a product, assigning the next one if new; `Some(bytes)` when the caller must
    /// persist the new entry (as the product id's bytes → these bytes).
    pub fn intern(&mut self, product: &str) -> Result<(u32, Option<Vec<u8>>), StateStoreError> {
        if let Some(id) = self.get(product) {
            return Ok((id, None));
        }
        let id = self.next;
        self.next = id
            .checked_add(1)
            .ok_or_else(|| StateStoreError::Corrupt("product table full".into()))?;
        self.ids.insert(product.to_string(), id);
        Ok((id, Some(id.to_be_bytes().to_vec())))
    }

    /// Number → product id, for reading compact keys back.
    pub fn names(&self) -> HashMap<u32, String> {
        self.ids
            .iter()
            .map(|(name, id)| (*id, name.clone()))
            .collect()
    }

    /// Number of interned products.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no product is interned.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Key of an artifact: product number, then the artifact id's bytes.
pub fn artifact_key(product: u32, key: &ArtifactKey) -> Vec<u8> {
    ByteWriter::key()
        .u32(product)
        .raw(key.artifact_id.as_bytes())
        .done()
}

/// Key of a remembered intent: product number, tag, then 16 UUID bytes or the raw id.
pub fn replay_key(product: u32, key: &ReplayKey) -> Vec<u8> {
    let mut w = ByteWriter::key();
    w.u32(product);
    match uuid::Uuid::try_parse(&key.1) {
        // Only the canonical spelling is compacted, so that two spellings of one UUID stay
        // two ids, exactly as the in-memory set sees them.
        Ok(u) if u.hyphenated().to_string() == key.1 => w.u8(TAG_UUID).raw(u.as_bytes()),
        _ => w.u8(TAG_RAW).raw(key.1.as_bytes()),
    };
    w.done()
}

/// The product of a compact key, looked up in `names` ([`Interner::names`]), and the rest.
fn split_product<'a>(
    key: &'a [u8],
    names: &HashMap<u32, String>,
) -> Result<(String, &'a [u8]), StateStoreError> {
    let mut r = ByteReader::raw(key, "compact key");
    let id = r.u32()?;
    let name = names
        .get(&id)
        .ok_or_else(|| StateStoreError::Corrupt(format!("product number {id} not in the table")))?;
    Ok((name.clone(), r.rest()))
}

/// Reads an artifact key back from [`artifact_key`]'s bytes.
pub fn read_artifact_key(
    key: &[u8],
    names: &HashMap<u32, String>,
) -> Result<ArtifactKey, StateStoreError> {
    let (product_id, rest) = split_product(key, names)?;
    let artifact_id = String::from_utf8(rest.to_vec())
        .map_err(|_| StateStoreError::Corrupt("artifact key: invalid UTF-8".into()))?;
    Ok(ArtifactKey {
        product_id,
        artifact_id,
    })
}

/// Reads a replay key back from [`replay_key`]'s bytes.
pub fn read_replay_key(
    key: &[u8],
    names: &HashMap<u32, String>,
) -> Result<ReplayKey, StateStoreError> {
    let (product, rest) = split_product(key, names)?;
    let mut r = ByteReader::raw(rest, "replay key");
    let id = match r.u8()? {
        TAG_UUID => uuid::Uuid::from_slice(r.rest())
            .map_err(|_| StateStoreError::Corrupt("replay key: not 16 bytes".into()))?
            .hyphenated()
            .to_string(),
        TAG_RAW => String::from_utf8(r.rest().to_vec())
            .map_err(|_| StateStoreError::Corrupt("replay key: invalid UTF-8".into()))?,
        other => return Err(StateStoreError::Corrupt(format!("replay key tag {other}"))),
    };
    Ok((product, id))
}
