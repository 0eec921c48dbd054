//! Compliance tooling over `bucket.audit`: following the log for people and tools.

pub mod tail;
