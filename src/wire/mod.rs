//! The wire contract: Confluent framing, the approved Avro schemas in `schemas/`, and the
//! codecs between Avro records and the core's types. Pure byte work, no network.

pub mod accepted;
pub mod audit;
pub mod audit_versions;
mod avro_read;
mod avro_write;
pub mod control;
pub mod digest;
mod fields;
pub mod framing;
pub mod headers;
pub mod intent;
pub mod schemas;
#[cfg(any(test, feature = "bench"))]
#[doc(hidden)]
pub mod value_oracle;

/// Why bytes could not become a record.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The Confluent frame is missing or broken.
    #[error("not a Confluent-framed record: {0}")]
    Framing(String),
    /// Avro could not decode or encode the datum.
    #[error("avro: {0}")]
    Avro(String),
    /// The datum decoded but a field has the wrong shape.
    #[error("field {field}: {problem}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What was wrong.
        problem: String,
    },
    /// The frame names a schema id this reader does not know as an approved audit version
    /// (ask the registry again: a newer writer may have registered it since).
    #[error("writer schema id {0} is not a known approved audit schema")]
    UnknownWriterSchema(u32),
}
