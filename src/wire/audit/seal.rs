//! The hash chain: where a stored link's `hash` string is (any version), the link hash over the
//! bytes as stored, and sealing a new link (its hash filled, its body written once).

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use sha2::{Digest, Sha256};

use super::super::WireError;
use super::super::avro_write;
use super::encode::{HASH_FIELD_LEN, len_hint, write_after_hash, write_link};
use super::*;

static STRING_SCHEMA: Schema = Schema::String;

/// The fields every audit version starts with, up to `hash`: a reader of this prefix finds the
/// `hash` string in stored bytes of any version.
static LINK_PREFIX: LazyLock<Option<(GenericDatumReader<'static>, GenericDatumReader<'static>)>> =
    LazyLock::new(|| {
        static BEFORE_HASH: LazyLock<Option<Schema>> = LazyLock::new(|| {
            Schema::parse_str(
                r#"{"type":"record","name":"LinkPrefix","fields":[
                    {"name":"seq","type":"long"},{"name":"prev_hash","type":"string"}]}"#,
            )
            .ok()
        });
        let before = BEFORE_HASH.as_ref()?;
        Some((
            GenericDatumReader::builder(before).build().ok()?,
            GenericDatumReader::builder(&STRING_SCHEMA).build().ok()?,
        ))
    });

/// Where the `hash` string (length prefix and bytes) lies in a stored body.
pub(in crate::wire) fn hash_span(body: &[u8]) -> Result<(usize, usize), WireError> {
    let avro = |e: apache_avro::Error| WireError::Avro(format!("audit link prefix: {e}"));
    let (before, hash) = LINK_PREFIX
        .as_ref()
        .ok_or_else(|| WireError::Avro("audit link prefix schema".into()))?;
    let mut cursor = body;
    before.read_value(&mut cursor).map_err(avro)?;
    let start = body.len() - cursor.len();
    hash.read_value(&mut cursor).map_err(avro)?;
    Ok((start, body.len() - cursor.len()))
}

fn hash_hex(prev_hash: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    for p in parts {
        h.update(p);
    }
    super::super::digest::hex_lower(&h.finalize())
}

/// The chain hash of a stored link body (any version): SHA-256 of `prev_hash` and the body with
/// its `hash` emptied (module docs).
pub fn link_hash(prev_hash: &str, body: &[u8]) -> Result<String, WireError> {
    let (start, end) = hash_span(body)?;
    Ok(hash_hex(prev_hash, &[&body[..start], &[0u8], &body[end..]]))
}

/// A link sealed and encoded once: the event with its hash, and the body that hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLink {
    /// The event, `hash` filled in.
    pub event: AuditEvent,
    /// Avro body under the writer version (no Confluent header).
    pub body: Vec<u8>,
}

impl AuditEvent {
    /// Fills `hash` and encodes the link under audit schema `version`, encoding it once: the
    /// hash is computed over the body with `hash` empty and then written into it.
    pub fn seal_as(mut self, version: u8) -> Result<SealedLink, WireError> {
        let mut body = Vec::with_capacity(len_hint(&self));
        self.seal_into(version, &mut body)?;
        Ok(SealedLink { event: self, body })
    }

    /// Fills `hash` and appends the sealed link body under audit schema `version` to `out` (a
    /// reused buffer, or one holding the Confluent header already). Writes the body once, with
    /// room for the hash string; hashes `prev_hash` and the body as it would be with `hash`
    /// empty (the room read as the single 0 byte of an empty string, see [`link_hash`]); then
    /// writes the hash string into the room.
    pub fn seal_into(&mut self, version: u8, out: &mut Vec<u8>) -> Result<(), WireError> {
        let facts = facts_layout(version)?;
        let start = out.len();
        avro_write::long(out, self.seq);
        avro_write::string(out, &self.prev_hash);
        let at = out.len();
        out.resize(at + HASH_FIELD_LEN, 0);
        write_after_hash(out, self, facts);
        let hash = hash_hex(
            &self.prev_hash,
            &[&out[start..at], &[0u8], &out[at + HASH_FIELD_LEN..]],
        );
        let mut field = Vec::with_capacity(HASH_FIELD_LEN);
        avro_write::string(&mut field, &hash);
        match out.get_mut(at..at + HASH_FIELD_LEN) {
            Some(room) if field.len() == HASH_FIELD_LEN => room.copy_from_slice(&field),
            _ => {
                out.truncate(start);
                return Err(WireError::Avro("audit hash field size".into()));
            }
        }
        self.hash = hash;
        Ok(())
    }

    /// Fills `hash` as the latest audit version would (tests and tools building chains).
    pub fn seal(self) -> Result<AuditEvent, WireError> {
        Ok(self.seal_as(LATEST_VERSION)?.event)
    }
}

/// The chain hash `e` has when written under the latest audit version (its `hash` is ignored).
/// Readers of stored links use [`link_hash`] over the stored bytes instead.
pub fn chain_hash(e: &AuditEvent) -> Result<String, WireError> {
    let facts = facts_layout(LATEST_VERSION)?;
    let mut canonical = Vec::with_capacity(len_hint(e));
    write_link(&mut canonical, e, "", facts);
    Ok(hash_hex(&e.prev_hash, &[&canonical]))
}
