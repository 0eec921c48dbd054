//! A partition task: the state of the products homed on one `bucket.intents` partition and the
//! head of the audit chain with the same partition number. Restored from `bucket.audit`, which
//! is the changelog (docs/origins.md#design, ADR 0001).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset};
use tracing::info;

use crate::kafka::read::ReadError;

use crate::core::rederive::{PastDecision, rederive};
use crate::core::state::{OffenderState, ReplayKey};
use crate::core::{ArtifactKey, ArtifactRecord, Effect, PartitionState};
use crate::core::{Operation, ReasonCode};
use crate::wire::audit::{AuditEvent, AuditReader, DecisionRecord, GENESIS_HASH, StateFacts};

/// Head of one partition's audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number the next link gets.
    pub next_seq: i64,
    /// Hash of the last link (genesis hash when empty).
    pub hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            next_seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// Everything the gate keeps in memory for one partition. Plain state: it knows nothing of
/// the local state store, which `persist::StoredTask` wraps around it (loading what a decision
/// reads, writing what a commit changed, rolling back after an abort).
#[derive(Debug, Default)]
pub struct Task {
    /// Artifact index for this partition's products.
    pub state: PartitionState,
    /// Audit chain head.
    pub chain: ChainHead,
    /// Highest intent offset with a committed decision (-1 if none).
    pub last_decided_offset: i64,
    /// Policy version of the chain's last link ("" for an empty chain).
    pub policy_version: String,
    /// Links written since the last signed checkpoint.
    pub links_since_checkpoint: u64,
    /// When the last checkpoint was written by this instance.
    pub last_checkpoint: Option<std::time::Instant>,
    /// Next `bucket.control` offset to fold into this chain (only the chain partition folds).
    pub control_next: i64,
    /// The partition's Merkle tree over its links (leaf `seq` = the link's stored bytes), kept
    /// as its right edge: what the signed checkpoints' notes commit to (docs/audit.md).
    pub tree: crate::tlog::Frontier,
    /// Usage as of the last committed transaction (what may be shared through Redis).
    pub committed: Option<CommittedUsage>,
    /// Chain sequence of this instance's takeover announcement (`GATE_STARTED`): a rollback
    /// to a commit before it must restore and announce again.
    pub announced_at: Option<i64>,
}

/// A partition's usage as of its last committed transaction. Only this is shared: the live
/// state also holds the open transaction's decisions, which may still abort (and then a stale
/// figure would stay in Redis until the partition's next owner decides something).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommittedUsage {
    /// Sum over the partition's products.
    pub total: crate::core::state::Usage,
    /// Per product homed on the partition.
    pub by_product: Vec<(String, crate::core::state::Usage)>,
    /// Sequence of the last committed audit link (-1 for an empty chain).
    pub audit_seq: i64,
}

/// Why a task could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Kafka failed while reading the audit partition.
    #[error("reading audit partition {partition}: {source}")]
    Kafka {
        /// Partition being restored.
        partition: i32,
        /// Underlying error.
        source: KafkaError,
    },
    /// A committed audit record does not decode or breaks the chain: state cannot be trusted.
    #[error("audit partition {partition} offset {offset}: {problem}")]
    Corrupt {
        /// Partition being restored.
        partition: i32,
        /// Offset of the bad record.
        offset: i64,
        /// What was wrong.
        problem: String,
    },
    /// The local state store failed (not the log): the caller may wipe it and restore cold.
    #[error("state store of partition {partition}: {source}")]
    Store {
        /// Partition being restored.
        partition: i32,
        /// Underlying error.
        source: super::store::StateStoreError,
    },
    /// The end of the partition was not reached in time (an open transaction?).
    #[error("audit partition {partition}: end not reached within {0:?}", .timeout)]
    Timeout {
        /// Partition being restored.
        partition: i32,
        /// How long we waited.
        timeout: Duration,
    },
}

impl Task {
    /// Records the current state as committed: call after a successful commit or a restore.
    pub fn mark_committed(&mut self) {
        let mut by_product: Vec<(String, crate::core::state::Usage)> = self
            .state
            .usage_by_product()
            .iter()
            .map(|(p, u)| (p.clone(), *u))
            .collect();
        by_product.sort_by(|a, b| a.0.cmp(&b.0));
        self.committed = Some(CommittedUsage {
            total: self.state.local_total(),
            by_product,
            audit_seq: self.chain.next_seq - 1,
        });
    }

    /// Folds one committed audit event into the task (used by restore and by tests); the
    /// policy's replay window bounds the remembered intent ids. A link that records its state
    /// facts (audit version 2 on) is applied as recorded; a version 1 link has none, and its
    /// facts are re-derived as the gate decided them then, with the policy given. Returns what
    /// changed, for a store behind the task to write.
    pub fn fold(&mut self, event: &AuditEvent, policy: &crate::core::Policy) -> Folded {
        let mut folded = Folded::default();
        if let Some(d) = &event.decision {
            let artifact_delta = match &d.facts {
                Some(facts) => self.fold_facts(d, facts, &mut folded),
                None => self.fold_derived(d, event.recorded_at, policy, &mut folded),
            };
            if d.accepted
                && let Some(effect) = effect_of(d)
            {
                self.state
                    .add_usage(&effect.key.product_id, d.size_delta, artifact_delta);
                self.state.apply(&effect);
                folded.accepted = Some((effect, d.size_delta, artifact_delta));
            }
            if d.authenticated
                && let (Some(p), Some(i)) = (&d.product_id, &d.intent_id)
            {
                let key = (p.clone(), i.clone());
                self.state
                    .remember(key.clone(), policy.limits.replay_window);
                folded.remembered = Some(key);
            }
            self.last_decided_offset = self.last_decided_offset.max(d.source_offset);
        }
        if let Some(offset) = event
            .governance
            .as_ref()
            .and_then(|g| crate::control::folded_offset(&g.detail))
        {
            self.control_next = self.control_next.max(offset + 1);
        }
        self.chain = ChainHead {
            next_seq: event.seq + 1,
            hash: event.hash.clone(),
        };
        self.policy_version = event.policy_version.clone();
        folded
    }

    /// Applies the rate and offender state a decision recorded; returns its artifact delta.
    fn fold_facts(&mut self, d: &DecisionRecord, facts: &StateFacts, folded: &mut Folded) -> i64 {
        if let Some(o) = &facts.offender {
            self.state.set_offender(
                o.integration_id.clone(),
                OffenderState {
                    rejections: o.rejections_ms.iter().copied().collect(),
                    cooling_until: o.cooling_until_ms,
                },
            );
            folded.offenders.push(o.integration_id.clone());
        }
        if let Some(o) = &facts.offender_change {
            let change = o.change();
            self.state.apply_offender(&change);
            folded.offenders.push(change.integration);
        }
        if let (Some(tat), Some(product)) = (facts.rate_tat_us, &d.product_id) {
            self.state.set_rate_tat(product, tat);
            folded.rate_tat = Some((product.clone(), tat));
        }
        facts.artifact_delta
    }

    /// Applies the rate and offender state of a version 1 link, which does not record them, as
    /// `core::rederive` derives them; returns its artifact delta.
    fn fold_derived(
        &mut self,
        d: &DecisionRecord,
        recorded_at: i64,
        policy: &crate::core::Policy,
        folded: &mut Folded,
    ) -> i64 {
        let reasons: Vec<ReasonCode> = (d.reasons.iter())
            .filter_map(|r| ReasonCode::parse(r))
            .collect();
        let past = PastDecision {
            integration: d.integration_id.as_deref(),
            product: d.product_id.as_deref(),
            authenticated: d.authenticated,
            accepted: d.accepted,
            reasons: &reasons,
            operation: d.operation.as_deref().and_then(Operation::parse),
            decided_at: recorded_at,
        };
        let facts = rederive(&self.state, policy, &past);
        if let Some(change) = facts.offender {
            self.state.apply_offender(&change);
            folded.offenders.push(change.integration);
        }
        if let (Some(tat), Some(product)) = (facts.rate_tat, &d.product_id) {
            self.state.set_rate_tat(product, tat);
            folded.rate_tat = Some((product.clone(), tat));
        }
        facts.artifact_delta
    }
}

/// What folding one audit link changed in a task's state, beyond its chain head: what a
/// store behind the task writes at its next commit (an in-memory task ignores it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// An accepted decision's artifact record, with its usage change (bytes, artifacts).
    pub accepted: Option<(Effect, i64, i64)>,
    /// The intent id the replay window now remembers.
    pub remembered: Option<ReplayKey>,
    /// A product's new GCRA arrival time (µs).
    pub rate_tat: Option<(String, i64)>,
    /// Integrations whose offender state changed.
    pub offenders: Vec<String>,
}

/// The state change an accepted decision record carries.
pub fn effect_of(d: &DecisionRecord) -> Option<Effect> {
    Some(Effect {
        key: ArtifactKey {
            product_id: d.product_id.clone()?,
            artifact_id: d.artifact_id.clone()?,
        },
        record: ArtifactRecord {
            version: d.version?,
            owner_id: d.owner_id.clone()?,
            artifact_class: d.artifact_class.clone()?,
            size: u64::try_from(d.content_size).unwrap_or(0),
            deleted: d.deleted,
        },
    })
}

impl Task {
    /// A task with no history.
    pub fn empty() -> Task {
        Task {
            last_decided_offset: -1,
            ..Task::default()
        }
    }

    /// Checks that `event` (read at `offset`) continues this task's chain, then folds it.
    pub fn follow(
        &mut self,
        partition: i32,
        offset: i64,
        event: &AuditEvent,
        stored: &[u8],
        policy: &crate::core::Policy,
    ) -> Result<Folded, RestoreError> {
        if event.seq != self.chain.next_seq || event.prev_hash != self.chain.hash {
            return Err(RestoreError::Corrupt {
                partition,
                offset,
                problem: format!(
                    "chain break: seq {} prev {} after head seq {} hash {}",
                    event.seq, event.prev_hash, self.chain.next_seq, self.chain.hash
                ),
            });
        }
        let folded = self.fold(event, policy);
        self.tree.append_bytes(stored);
        Ok(folded)
    }

    /// Moves the chain head to a link just written (`stored`: its value bytes as produced),
    /// and adds the link to the partition's Merkle tree.
    pub fn advance(&mut self, event: &AuditEvent, stored: &[u8]) {
        self.chain.next_seq = event.seq + 1;
        self.chain.hash = event.hash.clone();
        self.tree.append_bytes(stored);
    }

    /// Appends the link of the decision about the intent at `offset`: the chain moves on, and
    /// the offset counts as decided (a redelivery of it is skipped).
    pub fn append_decision(&mut self, event: &AuditEvent, stored: &[u8], offset: i64) {
        self.advance(event, stored);
        self.links_since_checkpoint += 1;
        self.last_decided_offset = offset;
    }

    /// Appends a governance link written under `policy_version`.
    pub fn append_governance(&mut self, event: &AuditEvent, stored: &[u8], policy_version: &str) {
        self.advance(event, stored);
        self.links_since_checkpoint += 1;
        if self.policy_version != policy_version {
            self.policy_version = policy_version.to_string();
        }
    }

    /// Notes that this instance's takeover announcement goes in as the chain's next link (a
    /// rollback to before it must restore and announce again).
    pub fn announcing(&mut self) {
        self.announced_at = Some(self.chain.next_seq);
    }

    /// Notes that the `bucket.control` record at `offset` was folded into this chain.
    pub fn folded_control(&mut self, offset: i64) {
        self.control_next = self.control_next.max(offset + 1);
    }

    /// Notes that a signed checkpoint of the chain head was just appended.
    pub fn checkpointed(&mut self) {
        self.links_since_checkpoint = 0;
        self.last_checkpoint = Some(Instant::now());
    }
}

/// Where restores read: the audit topic of one cluster, the writer schemas of its links, and how
/// long a partition may take.
#[derive(Debug, Clone, Copy)]
pub struct AuditSource<'a> {
    /// Kafka bootstrap servers.
    pub brokers: &'a str,
    /// The audit topic.
    pub topic: &'a str,
    /// Longest a partition's read may take.
    pub timeout: Duration,
    /// Writer schemas of the links.
    pub reader: &'a AuditReader,
}

/// Reads the committed links of audit partition `partition` from `start` to its end, each
/// decoded with its writer's schema and its hash checked against its stored bytes, and hands
/// them to `each` in order until it breaks. Returns how many links it read.
pub fn read_links(
    src: AuditSource<'_>,
    partition: i32,
    start: Offset,
    mut each: impl FnMut(i64, AuditEvent, &[u8]) -> Result<ControlFlow<()>, RestoreError>,
) -> Result<u64, RestoreError> {
    let source = crate::kafka::read::PartitionSource {
        brokers: src.brokers,
        topic: src.topic,
        partition,
        timeout: src.timeout,
    };
    let read = source.read(start, |m| {
        super::lifecycle::RESTORE_PROGRESS.read_one();
        let offset = m.offset();
        let corrupt = |problem: String| RestoreError::Corrupt {
            partition,
            offset,
            problem,
        };
        let link = src
            .reader
            .read(m.payload())
            .map_err(|e| corrupt(e.to_string()))?;
        if !link.hash_ok() {
            return Err(corrupt(format!("hash mismatch at seq {}", link.event.seq)));
        }
        each(offset, link.event, m.payload().unwrap_or_default())
    });
    read.map_err(|e| match e {
        ReadError::Kafka(source) => RestoreError::Kafka { partition, source },
        ReadError::Timeout(timeout) => RestoreError::Timeout { partition, timeout },
        ReadError::Handler(e) => e,
    })
}

/// Rebuilds a task by replaying audit partition `partition` (read_committed) to its end, in
/// memory (no local store).
pub fn restore(
    src: AuditSource<'_>,
    partition: i32,
    policy: &crate::core::Policy,
) -> Result<Task, RestoreError> {
    let started = Instant::now();
    let mut task = Task::empty();
    let records = read_links(
        src,
        partition,
        Offset::Beginning,
        |offset, event, stored| {
            task.follow(partition, offset, &event, stored, policy)?;
            Ok(ControlFlow::Continue(()))
        },
    )?;
    task.mark_committed();
    info!(
        partition,
        records,
        artifacts = task.state.len(),
        next_seq = task.chain.next_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored partition task from audit log"
    );
    Ok(task)
}

/// Rebuilds every partition's task from the audit topic alone (`bucket state rebuild`).
pub fn rebuild_all(
    src: AuditSource<'_>,
    policy: &crate::core::Policy,
) -> Result<std::collections::BTreeMap<i32, Task>, RestoreError> {
    let kafka = |source| RestoreError::Kafka {
        partition: -1,
        source,
    };
    let consumer: BaseConsumer = crate::kafka::security::client_config()
        .set("bootstrap.servers", src.brokers)
        .create()
        .map_err(kafka)?;
    let md = consumer
        .fetch_metadata(Some(src.topic), Duration::from_secs(10))
        .map_err(kafka)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for p in partitions {
        out.insert(p, restore(src, p, policy)?);
    }
    Ok(out)
}
