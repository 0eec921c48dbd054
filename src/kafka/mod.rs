//! Kafka plumbing every component shares: client security settings (SASL_SSL), which errors are
//! transient, group membership (static members, session timeout), the client context that keeps
//! partition-EOF notices out of the logs, the producer settings and the read-to-end loop, and the
//! schema registry edge (`registry`: the approved schemas registered, schema ids classified).

pub mod errors;
pub mod group;
mod log;
pub mod membership;
pub mod produce;
pub mod read;
pub mod registry;
pub mod security;
pub mod trace;

pub use log::EofQuietContext;
