//! **Standby tasks** (`--standby-replicas N`, Kafka Streams' standby replicas): local stores of
//! partitions this instance does not own, kept warm by following their state changelog, so that
//! when an owner is lost for good (a node, not a process) the partition's next owner reads only
//! the last moments of the changelog instead of all of it.
//!
//! Which partitions: the group's members are put in a ring, ordered by client id; each
//! partition is kept warm by the `N` members that follow its owner in that ring. A worker
//! thread beside the decision loop reads the group's assignment every [`INTERVAL`] and brings
//! each of its standby stores up to the changelog's last head ([`changelog::read::follow`]):
//! the same bytes the owner's store holds, never a recomputation. A following store has no
//! checkpoint; the takeover completes it from its progress and checks the head against the
//! audit log as any cold load does (`persist::restore_with_store`). A partition the loop is
//! restoring or running is never touched: both take the partition's [`StoreLocks`] entry, and
//! the worker skips partitions assigned here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::assignment::parse_assignment;
use super::changelog::{self, read::Followed};
use super::persist::StoreOptions;
use super::rebalance::GateContext;
use super::store::{StateStore, StateStoreError, StoreIdentity};
use crate::kafka::read::{PartitionSource, ReadError};

/// How often the worker reads the group's assignment and catches its standby stores up.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// How long one group description may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One lock per partition's store: the loop's restore and the standby worker never open the
/// same store at once.
#[derive(Debug, Default)]
struct StoreLocks(Mutex<HashMap<i32, Arc<Mutex<()>>>>);

impl StoreLocks {
    /// The lock of `partition`'s store (hold it while the store is open).
    fn of(&self, partition: i32) -> Arc<Mutex<()>> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(partition).or_default().clone()
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

/// A session's standby tasks: the worker (when `--standby-replicas` and stores are on),
/// stopped and joined when this is dropped, and the store locks the loop's restores share with
/// it.
pub struct Standbys {
    locks: Arc<StoreLocks>,
    warm: Arc<Mutex<BTreeSet<i32>>>,
    worker: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Standbys {
    /// Starts the worker of a gate session whose consumer's context is `context`, if the
    /// options ask for standbys and `store` says where stores live.
    pub fn start(
        opts: &super::GateOptions,
        store: Option<&StoreOptions>,
        context: Arc<GateContext>,
    ) -> Standbys {
        let mut standbys = Standbys {
            locks: Arc::default(),
            warm: Arc::default(),
            worker: None,
        };
        let Some(store) = store.filter(|_| opts.standby_replicas > 0) else {
            return standbys;
        };
        let worker = StandbyWorker {
            brokers: opts.brokers.clone(),
            group: opts.group_id.clone(),
            client_id: format!("bucket-gate-{}", opts.gate_id),
            replicas: opts.standby_replicas,
            intents_topic: opts.topics.intents.clone(),
            audit_topic: opts.topics.audit.clone(),
            changelog_topic: opts.topics.changelog.clone(),
            store: store.clone(),
            context,
            locks: Arc::clone(&standbys.locks),
            warm: Arc::clone(&standbys.warm),
            read_timeout: opts.restore_timeout,
        };
        let stop = CancellationToken::new();
        match worker.spawn(stop.clone()) {
            Ok(handle) => standbys.worker = Some((stop, handle)),
            Err(e) => warn!(error = %e, "standby worker not started"),
        }
        standbys
    }

    /// The lock of `partition`'s store: held by a restore, it waits for a standby round on
    /// that store to finish.
    pub fn store_lock(&self, partition: i32) -> Arc<Mutex<()>> {
        self.locks.of(partition)
    }

    /// The partitions whose stores are warm here, in order.
    pub fn warm(&self) -> Vec<i32> {
        match self.warm.lock() {
            Ok(w) => w.iter().copied().collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Standbys {
    /// The worker stops with its session.
    fn drop(&mut self) {
        if let Some((stop, worker)) = self.worker.take() {
            stop.cancel();
            if worker.join().is_err() {
                warn!("standby worker panicked");
            }
        }
    }
}

/// What the worker needs from the gate.
struct StandbyWorker {
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
    /// Audit topic (it names the stores).
    pub audit_topic: String,
    /// State changelog topic (what the stores follow).
    pub changelog_topic: String,
    /// The stores, named as the loop's.
    pub store: StoreOptions,
    /// The loop's consumer context: what is assigned here now.
    pub context: Arc<GateContext>,
    /// Shared with the loop's restores.
    pub locks: Arc<StoreLocks>,
    /// The partitions whose stores are warm here, for `/status`.
    pub warm: Arc<Mutex<BTreeSet<i32>>>,
    /// Longest one changelog read may take.
    pub read_timeout: Duration,
}

impl StandbyWorker {
    /// Runs on a thread of its own until `stop` is cancelled.
    fn spawn(self, stop: CancellationToken) -> std::io::Result<JoinHandle<()>> {
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
            let until = Instant::now() + INTERVAL.saturating_sub(started.elapsed());
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

    /// Brings each wanted store up to its changelog's last head; reports which are warm.
    fn catch_up(&self, wanted: &[i32], stop: &CancellationToken) {
        let mut warm = BTreeSet::new();
        for &p in wanted {
            if stop.is_cancelled() {
                return;
            }
            let lock = self.locks.of(p);
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            // Assigned here (now or meanwhile): the loop owns the store.
            if self.context.assigned().contains(&p) {
                continue;
            }
            match self.follow(p) {
                Ok(true) => {
                    warm.insert(p);
                }
                Ok(false) => {}
                Err(e) => debug!(partition = p, error = %e, "standby catch-up failed; next round"),
            }
        }
        if let Ok(mut w) = self.warm.lock() {
            *w = warm;
        }
    }

    /// One round of following partition `p`'s changelog; true when its store is warm.
    fn follow(&self, p: i32) -> Result<bool, StandbyError> {
        let src = PartitionSource {
            brokers: &self.brokers,
            topic: &self.changelog_topic,
            partition: p,
            timeout: self.read_timeout,
        };
        let dir = StateStore::dir_for(&self.store.state_dir, &self.audit_topic, p);
        let identity = StoreIdentity::new(
            &self.store.cluster,
            &self.store.intents_topic,
            &self.audit_topic,
            p,
        );
        follow_store(&src, &dir, &identity, self.store.cache_bytes)
    }
}

/// One round of a standby store in `dir` following the changelog partition `src`: brought up to
/// the changelog's last head; true when it is warm (false: the changelog has no head yet, or
/// was copied anew meanwhile and the store starts over next round). A store decided on before
/// (its partition moved away) or following another epoch starts over on an empty store: only a
/// store that followed the latest epoch from its start is complete.
pub fn follow_store(
    src: &PartitionSource<'_>,
    dir: &Path,
    identity: &StoreIdentity,
    cache_bytes: u64,
) -> Result<bool, StandbyError> {
    let Some((epoch, latest)) = changelog::read::latest_head(src)? else {
        return Ok(false);
    };
    let mut store = open(dir, identity, cache_bytes)?;
    let progress = store.follow_progress()?;
    let current = progress.filter(|f| f.epoch == epoch);
    if current.is_none() && (progress.is_some() || store.checkpoint()?.is_some()) {
        drop(store);
        StateStore::wipe(dir)?;
        store = open(dir, identity, cache_bytes)?;
    }
    match changelog::read::follow(src, epoch, &latest, &store, current)? {
        Followed::To(now) => {
            debug!(
                partition = src.partition,
                next_offset = now.next_offset,
                "standby store caught up"
            );
            Ok(true)
        }
        Followed::Replaced => {
            drop(store);
            StateStore::wipe(dir)?;
            Ok(false)
        }
    }
}

/// Opens a store, wiping one refused as foreign or of another generation.
fn open(
    dir: &Path,
    identity: &StoreIdentity,
    cache_bytes: u64,
) -> Result<StateStore, StateStoreError> {
    match StateStore::open(dir, identity, cache_bytes) {
        Err(e) if e.wipe_and_rebuild() => {
            StateStore::wipe(dir)?;
            StateStore::open(dir, identity, cache_bytes)
        }
        other => other,
    }
}

/// Why one standby round of a partition failed (it is tried again next round).
#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    /// The local store failed.
    #[error("state store: {0}")]
    Store(#[from] StateStoreError),
    /// The changelog could not be read (or decoded).
    #[error("state changelog: {0}")]
    Changelog(#[from] ReadError<changelog::ChangelogError>),
}

#[cfg(test)]
mod tests {
    use super::*;

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
