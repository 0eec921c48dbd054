//! `bucket.audit` beyond the link format: the approvals of a loaded policy ([`approvals`], a
//! record the gate writes into the chain), and the compliance tooling that reads the log:
//! verification, following it for people and tools, the transparency log's tiles service,
//! proofs and witness (docs/audit.md, "Proofs"). The link format and the signed checkpoint's
//! detail are the wire contract's (`wire::audit`). Below the gate in the layering
//! (tests/layering.rs): the gate depends on the approvals format, nothing here depends on the
//! gate.

pub mod approvals;
pub mod prove;
pub mod tail;
pub mod tiles;
pub mod tlog_index;
pub mod verifier;
pub mod verify_log;
pub mod witness;
