//! `bucket.audit` beyond the link format: two record formats the gate itself writes into the
//! chain ([`checkpoint`]: signed checkpoints; [`approvals`]: the approvals of a loaded policy),
//! and the compliance tooling that reads the log: verification, following it for people and
//! tools, the transparency log's tiles service, proofs and witness (docs/audit.md, "Proofs").
//! Below the gate in the layering (tests/layering.rs): the gate depends on the two formats,
//! nothing here depends on the gate.

pub mod approvals;
pub mod checkpoint;
pub mod prove;
pub mod tail;
pub mod tiles;
pub mod tlog_index;
pub mod verifier;
pub mod verify_log;
pub mod witness;
