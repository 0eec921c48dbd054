//! # BHIV Bucket governance gate
//!
//! # Layout
//! - [`core`]: **what is decided.** The pure decision function `decide(envelope, state, policy,
//!   now)`, the rules (one family per file under `core/rules/`, run in the order listed in
//!   `core/rules/mod.rs`), reason codes, the policy types and the partition state. No I/O.
//! - [`wire`]: the byte contract. Confluent framing, the approved Avro schemas compiled from
//!   `schemas/`, codecs for intents, accepted artifacts and audit events, header names.
//! - [`gate`]: **how intents move.** The transactional consume → decide → produce loop,
//!   partition tasks restored from the audit log, output record building.
//! - [`config`]: the layered config file (`--config`, one table per subcommand) on top of clap:
//!   flag > environment > file > default, for every flag with no per-flag code.
//! - [`ops`]: operator tools: ACLs as code (`deploy/acls.toml`), topics as code
//!   (`topics/topics.toml`, create-missing and drift report), integration key files.
//! - [`kafka`]: Kafka plumbing: SASL_SSL / TLS settings applied to every client, which errors
//!   are transient, the client context that keeps partition EOFs out of the logs, the shared
//!   producer settings and read-to-end loop, and the schema registry edge (register approved
//!   schemas, classify schema ids).
//! - [`policy`]: the policy as the shell loads it: the file with its secret references
//!   resolved, and the approvals on disk (the `sshsig` files beside a policy, the operator's
//!   pin, the check at start and on reload; the rule is `core::approvals`).
//! - [`produce`]: the producer side of the wire contract (`bucket produce`, tests, demos).
//! - [`audit`]: compliance tooling over `bucket.audit` (`bucket audit tail`).
//! - [`control`]: `bucket.control`, governance events from operator tools that the gate folds
//!   into the audit chain exactly once (publishing, and the gate's feed).
//! - [`clock`]: the shell's one wall clock.
//! - `bench` (feature `bench`): `bucket-bench`, the gate measured beside a transactional
//!   passthrough copier. Off by default, so the production binary carries no benchmark code.
//! - [`sink`]: **how accepted bytes reach storage.** Consumes `bucket.accepted` read_committed
//!   and writes versions idempotently to PostgreSQL before committing offsets; also indexes
//!   `bucket.audit` into `audit_decisions`, runs retention (`purge`) and `reconcile`.
//! - [`api`]: the read API over HTTP (`bucket api`): artifacts, history, decisions, usage, with
//!   product-scoped bearer tokens; serves `docs/openapi.json`.
//! - [`tlog`]: the verifiable audit log (issue 17): RFC 6962 trees per audit partition, signed
//!   C2SP checkpoints, C2SP tiles and self-contained proof bundles.
//! - [`admin`]: the admin HTTP server of `bucket gate` and `bucket sink` (probes, Prometheus
//!   metrics, policy, threat catalogue, live status page) and the telemetry handles the loops
//!   call (docs/admin.md).

pub mod admin;
pub mod api;
pub mod audit;
#[cfg(feature = "bench")]
pub mod bench;
pub mod clock;
pub mod config;
pub mod control;
pub mod core;
pub mod gate;
pub mod kafka;
pub use kafka::EofQuietContext;
pub mod ops;
pub mod policy;
pub mod produce;
pub mod sink;
pub mod tlog;
pub mod wire;
