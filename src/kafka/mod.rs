//! Kafka plumbing every component shares: client security settings (SASL_SSL), which errors are
//! transient, group membership (static members, session timeout), and the client context that keeps partition-EOF notices out of the logs.

pub mod errors;
mod log;
pub mod membership;
pub mod produce;
pub mod read;
pub mod security;
pub mod trace;

pub use log::EofQuietContext;
