//! # BHIV Bucket governance gate
//!
//! # Layout
//! - [`core`]: **what is decided.** The pure decision function `decide(envelope, state, policy,
//!   now)`, the rules (one family per file under `core/rules/`, run in the order listed in
//!   `core/rules/mod.rs`), reason codes, the policy types and the partition state. No I/O.

pub mod core;
