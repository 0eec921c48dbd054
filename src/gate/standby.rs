//! **Standby tasks** (`--standby-replicas N`, Kafka Streams' standby replicas): warm local
//! stores of partitions this instance does not own, so that when their owner is lost for good
//! (a node, not a process) the partition's next owner restores only the last moments of its
//! audit log instead of the whole changelog.
//!
//! Which partitions: the group's members are put in a ring, ordered by client id; each
//! partition is kept warm by the `N` members that follow its owner in that ring. A worker
//! thread beside the decision loop reads the group's assignment every [`INTERVAL`] and brings
//! each of its standby stores up to the end of the audit log with the same code as a warm
//! restore (`persist::restore_with_store`), then closes it. A partition the loop is restoring
//! or running is never touched: both take the partition's [`StoreLocks`] entry, and the worker
//! skips partitions assigned here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::persist::{RestoreSources, StoreOptions, restore_with_store};
use super::rebalance::GateContext;
use super::task::AuditSource;
use crate::core::Policy;
use crate::wire::audit::AuditReader;

/// How often the worker reads the group's assignment and catches its standby stores up.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// How long one group description may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One lock per partition's store: the loop's restore and the standby worker never open the
/// same store at once.
#[derive(Debug, Default)]
pub struct StoreLocks(Mutex<HashMap<i32, Arc<Mutex<()>>>>);

impl StoreLocks {
    /// The lock of `partition`'s store (lock it for as long as the store is being opened and
    /// caught up).
    pub fn of(&self, partition: i32) -> Arc<Mutex<()>> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(partition).or_default().clone()
    }
}

/// Partitions of `topic` in a consumer-protocol assignment (`ConsumerProtocolAssignment`,
/// versions 0-3: int16 version, then an array of (string topic, array of int32 partitions),
/// then user data, which is not read). None when the bytes do not parse.
pub fn parse_assignment(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = r.take(len)?;
        let count = r.i32()?;
        for _ in 0..count.max(0) {
            let p = r.i32()?;
            if name == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Some(out)
}

/// Big-endian reads off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
}

/// The partitions `me` keeps warm: for each owned partition, the `replicas` members after its
/// owner in the ring of `members` (sorted, deduplicated), never the owner itself.
pub fn standby_partitions(
    owners: &BTreeMap<i32, String>,
    members: &[String],
    me: &str,
    replicas: usize,
) -> Vec<i32> {
    let ring: Vec<&String> = members
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let Some(my_rank) = ring.iter().position(|m| *m == me) else {
        return Vec::new();
    };
    let n = ring.len();
    owners
        .iter()
        .filter(|(_, owner)| *owner != me)
        .filter_map(|(p, owner)| {
            let owner_rank = ring.iter().position(|m| *m == owner)?;
            let distance = (my_rank + n - owner_rank) % n;
            (distance >= 1 && distance <= replicas.min(n - 1)).then_some(*p)
        })
        .collect()
}

/// What the worker needs from the gate.
pub struct StandbyWorker {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The gate's consumer group.
    pub group: String,
    /// This instance's client id (how the group lists it).
    pub client_id: String,
    /// Standby replicas per partition.
    pub replicas: usize,
    /// Intents topic (the assignment's topic).
    pub intents_topic: String,
    /// Audit topic (the source every store is caught up from).
    pub audit_topic: String,
    /// State changelog topic (a first, cold standby load reads it).
    pub changelog_topic: String,
    /// The stores, named as the loop's.
    pub store: StoreOptions,
    /// Writer schemas of the audit links.
    pub reader: AuditReader,
    /// The policy in force (the loop replaces it on a reload).
    pub policy: Arc<Mutex<Arc<Policy>>>,
    /// The loop's consumer context: what is assigned here now.
    pub context: Arc<GateContext>,
    /// Shared with the loop's restores.
    pub locks: Arc<StoreLocks>,
    /// The partitions whose stores are warm here, for readiness and `/status`.
    pub warm: Arc<Mutex<BTreeSet<i32>>>,
    /// Longest a standby catch-up may take.
    pub restore_timeout: Duration,
}

impl StandbyWorker {
    /// Runs on a thread of its own until `stop` is cancelled.
    pub fn spawn(self, stop: CancellationToken) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("gate-standby".into())
            .spawn(move || self.run(&stop))
    }

    fn run(self, stop: &CancellationToken) {
        let client: BaseConsumer = match crate::kafka::security::client_config()
            .set("bootstrap.servers", &self.brokers)
            .create::<BaseConsumer>()
        {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "standby worker: no Kafka client; standby tasks off");
                return;
            }
        };
        info!(replicas = self.replicas, "standby worker started");
        while !stop.is_cancelled() {
            let started = Instant::now();
            match self.wanted(&client) {
                Ok(wanted) => self.catch_up(&wanted, stop),
                Err(e) => debug!(error = %e, "standby worker: group not described"),
            }
            let rest = INTERVAL.saturating_sub(started.elapsed());
            let until = Instant::now() + rest;
            while Instant::now() < until && !stop.is_cancelled() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The standby partitions of this instance now, from the group's description.
    fn wanted(&self, client: &BaseConsumer) -> Result<Vec<i32>, rdkafka::error::KafkaError> {
        let list = client.fetch_group_list(Some(&self.group), DESCRIBE_TIMEOUT)?;
        let mut owners = BTreeMap::new();
        let mut members = Vec::new();
        for g in list.groups().iter().filter(|g| g.name() == self.group) {
            for m in g.members() {
                members.push(m.client_id().to_string());
                let parts = m
                    .assignment()
                    .and_then(|a| parse_assignment(a, &self.intents_topic))
                    .unwrap_or_default();
                for p in parts {
                    owners.insert(p, m.client_id().to_string());
                }
            }
        }
        Ok(standby_partitions(
            &owners,
            &members,
            &self.client_id,
            self.replicas,
        ))
    }

    /// Brings each wanted store up to the audit log's end; forgets the ones no longer wanted.
    fn catch_up(&self, wanted: &[i32], stop: &CancellationToken) {
        let assigned: BTreeSet<i32> = self.context.assigned().into_iter().collect();
        let mut warm = BTreeSet::new();
        for &p in wanted.iter().filter(|p| !assigned.contains(p)) {
            if stop.is_cancelled() {
                return;
            }
            let lock = self.locks.of(p);
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            // Assigned meanwhile: the loop owns the store now.
            if self.context.assigned().contains(&p) {
                continue;
            }
            let policy = self
                .policy
                .lock()
                .map(|g| Arc::clone(&g))
                .unwrap_or_else(|e| Arc::clone(&e.into_inner()));
            let sources = RestoreSources {
                audit: AuditSource {
                    brokers: &self.brokers,
                    topic: &self.audit_topic,
                    timeout: self.restore_timeout,
                    reader: &self.reader,
                },
                changelog_topic: &self.changelog_topic,
            };
            match restore_with_store(sources, p, &policy, &self.store) {
                Ok((task, stats)) => {
                    debug!(
                        partition = p,
                        links_read = stats.links_read,
                        "standby store caught up"
                    );
                    drop(task);
                    warm.insert(p);
                }
                Err(e) => debug!(partition = p, error = %e, "standby catch-up failed; next round"),
            }
        }
        if let Ok(mut w) = self.warm.lock() {
            *w = warm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer-protocol assignment (version 1) of `topics`, with user data.
    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1i16.to_be_bytes());
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend(4i32.to_be_bytes());
        b.extend([1, 2, 3, 4]);
        b
    }

    #[test]
    fn assignments_parse_for_the_intents_topic_only() {
        let a = assignment(&[("other", &[9]), ("bucket.intents", &[0, 3])]);
        assert_eq!(parse_assignment(&a, "bucket.intents"), Some(vec![0, 3]));
        assert_eq!(parse_assignment(&a, "missing"), Some(vec![]));
        assert_eq!(parse_assignment(&a[..a.len() - 12], "bucket.intents"), None);
        assert_eq!(parse_assignment(&[], "bucket.intents"), None);
    }

    fn owners(pairs: &[(i32, &str)]) -> BTreeMap<i32, String> {
        pairs.iter().map(|(p, o)| (*p, o.to_string())).collect()
    }

    #[test]
    fn each_partition_is_kept_warm_by_the_members_after_its_owner() {
        let members: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let o = owners(&[(0, "a"), (1, "b"), (2, "c"), (3, "a")]);
        assert_eq!(standby_partitions(&o, &members, "b", 1), vec![0, 3]);
        assert_eq!(standby_partitions(&o, &members, "c", 1), vec![1]);
        assert_eq!(standby_partitions(&o, &members, "a", 1), vec![2]);
        // Two replicas: everything not owned; more replicas than other members changes nothing.
        assert_eq!(standby_partitions(&o, &members, "a", 2), vec![1, 2]);
        assert_eq!(standby_partitions(&o, &members, "a", 5), vec![1, 2]);
        // Every partition has exactly `replicas` standbys, none on its owner.
        for replicas in 1..=2 {
            for p in 0..4 {
                let keepers = members
                    .iter()
                    .filter(|m| standby_partitions(&o, &members, m, replicas).contains(&p))
                    .count();
                assert_eq!(keepers, replicas, "partition {p} with {replicas} replicas");
            }
        }
    }

    #[test]
    fn no_standbys_without_replicas_or_membership() {
        let members: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let o = owners(&[(0, "a"), (1, "b")]);
        assert!(standby_partitions(&o, &members, "a", 0).is_empty());
        assert!(standby_partitions(&o, &members, "z", 1).is_empty());
        assert!(standby_partitions(&o, &["a".to_string()], "a", 1).is_empty());
    }
}
