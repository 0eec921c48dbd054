//! Kafka plumbing every component shares: client security settings (SASL_SSL), which errors are
//! transient, and the client context that keeps partition-EOF notices out of the logs.

pub mod errors;
mod log;
pub mod read;
pub mod security;

pub use log::EofQuietContext;
