//! The pure decision core: no I/O, no clock, no Kafka. Input in, decision out.

pub mod approvals;
pub mod decide;
pub mod events;
pub mod intent;
pub mod partitioner;
pub mod policy;
#[cfg(test)]
mod properties;
pub mod reason;
pub mod rederive;
pub mod rules;
pub mod signature;
pub mod state;

pub use decide::{
    Decision, DecodeFailure, Envelope, Finding, Outcome, SignatureCheck, SignatureHeaders, decide,
    decide_checked,
};
pub use intent::{ArtifactIntent, MAX_RECORDED_TEXT, Operation, recorded};
pub use policy::Policy;
pub use reason::ReasonCode;
pub use state::{ArtifactKey, ArtifactRecord, Effect, PartitionState};
