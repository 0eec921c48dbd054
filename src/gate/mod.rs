//! The gate: **how intents move.** Consumes `bucket.intents`, asks [`crate::core::decide`],
//! and writes accepted/rejected/audit records plus the consumed offsets in one Kafka
//! transaction per batch (EOS v2 with the consumer group metadata).

pub mod assignment;
pub mod changelog;
pub mod clients;
pub mod consumed;
pub mod decode;
pub mod events;
pub mod instance;
pub mod kafka_records;
pub mod lifecycle;
pub mod observe;
pub mod orphans;
pub mod persist;
pub mod policy_watch;
pub mod rebalance;
pub mod records;
mod session;
pub mod standby;
pub mod store;
pub mod task;
pub mod trace;
pub mod txn;
pub mod usage_share;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::core::Policy;

pub use rebalance::GateContext;
pub use session::run;

/// Names of the gate's topics (overridable for tests and multi-tenant clusters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    /// Input intents.
    pub intents: String,
    /// Accepted artifacts (shared topic, or prefix of per-product topics).
    pub accepted: String,
    /// Rejected originals.
    pub rejected: String,
    /// Audit chain.
    pub audit: String,
    /// Governance events from operator tools, folded into the audit chain (`crate::control`).
    pub control: String,
    /// The state changelog of gates with local stores (`changelog`).
    pub changelog: String,
    /// Route accepted artifacts to `<accepted>.<product_id>` (read isolation, T7 in
    /// docs/origins.md#t7).
    pub accepted_per_product: bool,
}

impl Default for TopicNames {
    fn default() -> Self {
        TopicNames::with_suffix("")
    }
}

impl TopicNames {
    /// Default names with a suffix appended to each (tests use a random suffix).
    pub fn with_suffix(suffix: &str) -> Self {
        TopicNames {
            intents: format!("bucket.intents{suffix}"),
            accepted: format!("bucket.accepted{suffix}"),
            rejected: format!("bucket.rejected{suffix}"),
            audit: format!("bucket.audit{suffix}"),
            control: format!("bucket.control{suffix}"),
            changelog: format!("bucket.state-changelog{suffix}"),
            accepted_per_product: false,
        }
    }

    /// Topic an accepted artifact of `product_id` goes to.
    pub fn accepted_for(&self, product_id: &str) -> String {
        if self.accepted_per_product {
            format!("{}.{product_id}", self.accepted)
        } else {
            self.accepted.clone()
        }
    }
}

/// Everything `bucket gate` needs.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Confluent-compatible registry base URL.
    pub registry_url: String,
    /// Consumer group of all gate instances.
    pub group_id: String,
    /// This instance's id (`--instance-id`): with the group id it forms the transactional id,
    /// and it is the static member's `group.instance.id`.
    pub gate_id: String,
    /// Join the group as a static member named `gate_id` (KIP-345): a restart within the
    /// session timeout gets the same partitions back without a rebalance.
    pub static_membership: bool,
    /// How long the group waits for a silent member before moving its partitions.
    pub session_timeout: Duration,
    /// Warm standby stores kept per partition on other instances (`--standby-replicas`; needs
    /// `store`).
    pub standby_replicas: usize,
    /// Topic names.
    pub topics: TopicNames,
    /// Policy in force at start.
    pub policy: Arc<Policy>,
    /// Text the start policy was parsed from (for reload diffs).
    pub policy_text: String,
    /// Policy file to watch for changes (None: no hot reload).
    pub policy_path: Option<PathBuf>,
    /// Set by the SIGHUP handler: re-read the policy now.
    pub reload: Arc<AtomicBool>,
    /// Whether policy changes need approvals (the operator's pin), and the start policy's.
    pub approvals: crate::policy::approvals::Approvals,
    /// Gate key signing audit checkpoints: (key id, key). None: no checkpoints.
    pub audit_key: Option<(String, crate::core::signature::SignKey)>,
    /// Names this installation in the audit transparency log (checkpoint note origins).
    pub deployment: String,
    /// A checkpoint after at most this many links per partition...
    pub checkpoint_every: u64,
    /// ...or this much time since the last one (when there were new links).
    pub checkpoint_interval: Duration,
    /// Redis for cross-partition usage (global quotas, live usage); None disables sharing.
    pub redis: Option<usage_share::RedisTarget>,
    /// Longest time a transaction stays open before commit.
    pub commit_interval: Duration,
    /// Most intents per transaction.
    pub max_batch: usize,
    /// Longest wait for a partition's audit replay.
    pub restore_timeout: Duration,
    /// Local state stores (`--state-dir`); None keeps every task's state in memory, restored
    /// from the whole audit log.
    pub store: Option<persist::StoreOptions>,
    /// Audit schema version the links are written with (`wire::audit::LATEST_VERSION` unless
    /// a rolling upgrade still has readers that know only an older one).
    pub audit_version: u8,
    /// Where the loop reports decisions, commits and its state (Default: nowhere; the admin
    /// server's telemetry implements [`observe::GateObserver`]).
    pub telemetry: observe::Observer,
}

/// Why the gate stopped.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Kafka client failure that a new session may cure.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Consumer group state unusable (no group metadata): a new session may cure it.
    #[error("consumer group: {0}")]
    Group(String),
    /// Topic layout breaks an invariant (e.g. audit partitions ≠ intents partitions).
    #[error("topic layout: {0}")]
    Layout(String),
    /// Registry client misconfigured.
    #[error(transparent)]
    Registry(#[from] crate::kafka::registry::RegistryError),
    /// A task could not be restored.
    #[error(transparent)]
    Restore(#[from] task::RestoreError),
    /// The local state store failed while deciding: a new session reopens it.
    #[error(transparent)]
    Store(#[from] store::StateStoreError),
    /// A commit did not return within its deadline (a wedged client): a new session may cure it.
    #[error("transaction commit did not return within {0:?}")]
    CommitStuck(std::time::Duration),
    /// Encoding our own output failed: a defect, stop.
    #[error("encoding output: {0}")]
    Encode(#[from] crate::wire::WireError),
    /// Partitions of the intents topic had no owner in a stable group (`gate::orphans`): this
    /// member leaves and joins again so that the group rebalances.
    #[error(
        "partitions have had no owner in a stable group for {0:?}: leaving and rejoining so that the group rebalances"
    )]
    Orphaned(std::time::Duration),
    /// Kafka fenced this instance: another process runs with the same instance id. Stop rather
    /// than fence it back (docs/runbook.md, "Instance ids").
    #[error("{0}")]
    InstanceTaken(String),
}
