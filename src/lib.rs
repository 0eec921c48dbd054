//! # BHIV Bucket governance gate
//!
//! # Layout
//! - [`core`]: **what is decided.** The pure decision function `decide(envelope, state, policy,
//!   now)`, the rules (one family per file under `core/rules/`, run in the order listed in
//!   `core/rules/mod.rs`), reason codes, the policy types and the partition state. No I/O.
//! - [`wire`]: the byte contract. Confluent framing, the approved Avro schemas compiled from
//!   `schemas/`, codecs for intents, accepted artifacts and audit events, header names.
//! - [`sink`]: **how accepted bytes reach storage.** Consumes `bucket.accepted` read_committed
//!   and writes versions idempotently to PostgreSQL before committing offsets.

pub mod core;
pub mod sink;
pub mod wire;
