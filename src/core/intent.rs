//! The artifact intent as the decision core sees it: plain data, decoded by `wire`.

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
