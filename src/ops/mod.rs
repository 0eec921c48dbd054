//! Operator tools that change the platform around the gate, never a decision: topics and ACLs
//! as code (and their Strimzi manifests), and the integrations' signing keys.

pub mod acls;
pub mod kafka_users;
pub mod keys;
pub mod topics;
