//! The artifact intent as the decision core sees it: plain data, decoded by `wire`.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// Longest intent text (an id, a decision's detail) the gate records in an audit link or keeps
/// in its replay set as it is. A producer may send megabytes of id: cut, a decision link stays
/// far inside a C2SP entry (65,535 bytes) and the audit topic's message limit, and the replay
/// set holds no more than this per id. Valid ids are at most 256 bytes and are never cut.
pub const MAX_RECORDED_TEXT: usize = 1024;

/// How much of a cut text is kept before its length and digest.
const CUT_PREFIX: usize = 256;

/// `text` as the gate records and remembers it: unchanged up to [`MAX_RECORDED_TEXT`] bytes;
/// longer, its first 256 bytes (at a char boundary) then `…[<n> bytes, sha256:<16 hex>]`, so
/// two different long texts stay different. The intent's own bytes go to the rejected topic
/// whole, and the link's `value_sha256` binds the record to them.
pub fn recorded(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_RECORDED_TEXT {
        return Cow::Borrowed(text);
    }
    let mut end = CUT_PREFIX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let digest = Sha256::digest(text.as_bytes());
    Cow::Owned(format!(
        "{}…[{} bytes, sha256:{}]",
        &text[..end],
        text.len(),
        hex::encode(&digest[..8])
    ))
}

/// What a producer asks the gate to do with an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Make a new artifact at version 1.
    Create,
    /// Write the next version of an existing artifact.
    Update,
    /// Write a tombstone version of an existing artifact.
    Delete,
}

impl Operation {
    /// Wire spelling, as in the Avro enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            _ => None,
        }
    }
}

/// One `ArtifactIntent` record value (schema `schemas/artifact_intent.avsc`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactIntent {
    /// Unique id of the intent (UUID text); a repeated id is a replay.
    pub intent_id: String,
    /// Product owning the artifact; must equal the record key.
    pub product_id: String,
    /// Integration that produced the intent.
    pub integration_id: String,
    /// Owner of the artifact.
    pub owner_id: String,
    /// Principal asking for the change.
    pub requester_id: String,
    /// Artifact id, unique within the product.
    pub artifact_id: String,
    /// Artifact class, governs allowed operations.
    pub artifact_class: String,
    /// Requested operation.
    pub operation: Operation,
    /// Version the writer believes is current (UPDATE, DELETE).
    pub expected_version: Option<i64>,
    /// Artifact bytes (absent for DELETE).
    pub content: Option<Vec<u8>>,
    /// MIME type of the content.
    pub content_type: String,
    /// JSON object text.
    pub metadata: String,
    /// Why the change is made.
    pub purpose: String,
    /// Producer clock, milliseconds since the epoch.
    pub client_time: i64,
}

impl ArtifactIntent {
    /// Size of the content in bytes (0 when absent).
    pub fn content_len(&self) -> u64 {
        self.content.as_ref().map_or(0, |c| c.len() as u64)
    }
}

#[cfg(test)]
mod recorded_tests {
    use super::*;

    #[test]
    fn short_text_is_recorded_as_is_and_long_text_is_cut_distinctly() {
        let id = "a".repeat(MAX_RECORDED_TEXT);
        assert!(matches!(recorded(&id), Cow::Borrowed(s) if s == id));
        let long = format!("{id}b");
        let cut = recorded(&long);
        assert!(cut.starts_with(&"a".repeat(CUT_PREFIX)), "{cut}");
        assert!(
            cut.ends_with(&format!(
                "…[{} bytes, sha256:{}]",
                long.len(),
                &hex::encode(Sha256::digest(long.as_bytes()))[..16]
            )),
            "{cut}"
        );
        assert!(cut.len() < 340);
        assert_ne!(
            recorded(&format!("{id}c")),
            cut,
            "same prefix and length, other text"
        );
        // A cut inside a multi-byte character backs off to its start.
        let wide = format!("x{}", "é".repeat(2000));
        let cut = recorded(&wide);
        assert!(cut.starts_with(&format!("x{}…", "é".repeat(127))), "{cut}");
    }
}
