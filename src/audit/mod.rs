//! Compliance tooling over `bucket.audit`: following the log for people and tools; the
//! transparency log's tiles service, proofs and witness (docs/audit.md, "Proofs").

pub mod approvals;
pub mod checkpoint;
pub mod prove;
pub mod tail;
pub mod tiles;
pub mod tlog_index;
pub mod verifier;
pub mod verify;
pub mod witness;
