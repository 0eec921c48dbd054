//! Operator tools that change the platform around the gate, never a decision: topics and ACLs
//! as code, and the integrations' signing keys.

pub mod acls;
pub mod keys;
pub mod topics;
