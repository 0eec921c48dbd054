//! Compliance tooling over `bucket.audit`: following the log for people and tools.

pub mod approvals;
pub mod checkpoint;
pub mod tail;
pub mod verifier;
pub mod verify;
