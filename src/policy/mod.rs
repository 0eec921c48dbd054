//! The policy as the shell loads it: the file read with its `file:`/`env:` secrets resolved
//! ([`file`]), and the detached approvals checked against the operator's pin ([`approvals`]).
//! The policy's meaning and the approval rule themselves are pure, in `core`.

pub mod approvals;
pub mod file;
