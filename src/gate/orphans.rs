//! **Partitions no member owns**, found and healed. A static member that comes back to a stable
//! group (a restart with the same instance id) gets its last assignment with **no rebalance**
//! (KIP-345). If it died between the two phases of a cooperative rebalance, after the group took
//! partitions from it and before it rejoined to let another member have them, those partitions
//! now belong to no one, and nothing rebalances the group while every member stays alive
//! (docs/reliability.md). A watcher thread describes the group every [`INTERVAL`]; when the
//! group is stable and some partitions of the intents topic have had no owner for [`GRACE`],
//! the member whose client id sorts first ends its session, which leaves the group
//! ([`super::rebalance::GateContext::leave_after_failure`]) and joins again as a new member: the
//! group rebalances and the orphans get an owner. The rule is plain state ([`OrphanWatch`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::assignment::parse_assignment;

/// How often the group is described.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// How long partitions must have had no owner in a stable group before a member heals it. A
/// cooperative rebalance leaves partitions ownerless between its two phases for as long as the
/// giving member takes to commit and rejoin (one partition restore at most): this waits out
/// ordinary ones. Healing too early costs one extra rebalance, never a decision.
pub const GRACE: Duration = Duration::from_secs(30);

/// What one description of the group showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group is `Stable` (no rebalance under way).
    pub stable: bool,
    /// Client ids of the members.
    pub members: Vec<String>,
    /// Partitions of the intents topic some member holds.
    pub owned: BTreeSet<i32>,
}

/// The healing rule: which partitions have had no owner, since when, and whether this member
/// should rejoin now.
#[derive(Debug, Default)]
pub struct OrphanWatch {
    since: Option<Instant>,
}

impl OrphanWatch {
    /// Takes one description of a group of `partitions` partitions as seen by member `me` at
    /// `now`; true when `me` should leave and rejoin now (then the wait starts over).
    pub fn observe(&mut self, view: &GroupView, partitions: i32, me: &str, now: Instant) -> bool {
        let orphaned = (0..partitions).any(|p| !view.owned.contains(&p));
        if !view.stable || view.members.is_empty() || !orphaned {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        let first = view.members.iter().min().is_some_and(|m| m == me);
        if first && now.duration_since(since) >= GRACE {
            self.since = None;
            return true;
        }
        false
    }
}

/// The watcher thread of one session: raises [`Orphans::heal_requested`] for the loop.
pub struct Orphans {
    heal: Arc<AtomicBool>,
    worker: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Orphans {
    /// Starts watching `group` for partitions of `topic` (`partitions` of them) that no member
    /// owns, as member `client_id`.
    pub fn start(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: i32,
        client_id: &str,
    ) -> Orphans {
        let heal = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let client = crate::kafka::security::client_config()
            .set("bootstrap.servers", brokers)
            .create::<BaseConsumer>();
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "orphan watch: no Kafka client; not watching");
                return Orphans { heal, worker: None };
            }
        };
        let (group, topic, me) = (group.to_string(), topic.to_string(), client_id.to_string());
        let raised = Arc::clone(&heal);
        let token = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("gate-orphans".into())
            .spawn(move || {
                let mut watch = OrphanWatch::default();
                while !token.is_cancelled() {
                    match describe(&client, &group, &topic) {
                        Ok(view) => {
                            if watch.observe(&view, partitions, &me, Instant::now()) {
                                raised.store(true, Ordering::SeqCst);
                            }
                        }
                        Err(e) => debug!(error = %e, "orphan watch: group not described"),
                    }
                    let until = Instant::now() + INTERVAL;
                    while Instant::now() < until && !token.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        match spawned {
            Ok(handle) => Orphans {
                heal,
                worker: Some((stop, handle)),
            },
            Err(e) => {
                warn!(error = %e, "orphan watch not started");
                Orphans { heal, worker: None }
            }
        }
    }

    /// True (once) when this member should leave the group and join again.
    pub fn heal_requested(&self) -> bool {
        self.heal.swap(false, Ordering::SeqCst)
    }
}

impl Drop for Orphans {
    /// The watcher stops with its session.
    fn drop(&mut self) {
        if let Some((stop, worker)) = self.worker.take() {
            stop.cancel();
            if worker.join().is_err() {
                warn!("orphan watch panicked");
            }
        }
    }
}

/// The group `group` as Kafka describes it now, for partitions of `topic` (a client of its
/// own: what the watcher sees, for tools and tests).
pub fn describe_group(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Result<GroupView, rdkafka::error::KafkaError> {
    let client = crate::kafka::security::client_config()
        .set("bootstrap.servers", brokers)
        .create::<BaseConsumer>()?;
    describe(&client, group, topic)
}

/// The group as Kafka describes it now.
fn describe(
    client: &BaseConsumer,
    group: &str,
    topic: &str,
) -> Result<GroupView, rdkafka::error::KafkaError> {
    let list = client.fetch_group_list(Some(group), Duration::from_secs(5))?;
    let mut view = GroupView {
        stable: false,
        members: Vec::new(),
        owned: BTreeSet::new(),
    };
    for g in list.groups().iter().filter(|g| g.name() == group) {
        view.stable = g.state() == "Stable";
        for m in g.members() {
            view.members.push(m.client_id().to_string());
            match m.assignment().map(|a| parse_assignment(a, topic)) {
                Some(Some(parts)) => view.owned.extend(parts),
                // An assignment we cannot read: claim nothing is orphaned.
                _ => view.stable = false,
            }
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(stable: bool, members: &[&str], owned: &[i32]) -> GroupView {
        GroupView {
            stable,
            members: members.iter().map(|m| m.to_string()).collect(),
            owned: owned.iter().copied().collect(),
        }
    }

    #[test]
    fn the_first_member_heals_partitions_ownerless_for_the_grace_period() {
        let t0 = Instant::now();
        let orphaned = view(true, &["bucket-gate-b", "bucket-gate-a"], &[2, 3]);
        let (mut a, mut b) = (OrphanWatch::default(), OrphanWatch::default());
        assert!(!a.observe(&orphaned, 4, "bucket-gate-a", t0));
        assert!(!a.observe(&orphaned, 4, "bucket-gate-a", t0 + GRACE / 2));
        assert!(a.observe(&orphaned, 4, "bucket-gate-a", t0 + GRACE));
        // Only the first by client id; the wait starts over after a heal.
        assert!(!b.observe(&orphaned, 4, "bucket-gate-b", t0 + GRACE * 2));
        assert!(!a.observe(&orphaned, 4, "bucket-gate-a", t0 + GRACE + INTERVAL));
    }

    #[test]
    fn a_rebalance_under_way_or_an_owner_found_resets_the_wait() {
        let t0 = Instant::now();
        let mut w = OrphanWatch::default();
        let orphaned = view(true, &["a"], &[0]);
        assert!(!w.observe(&orphaned, 2, "a", t0));
        assert!(!w.observe(&view(false, &["a"], &[0]), 2, "a", t0 + GRACE));
        assert!(
            !w.observe(&orphaned, 2, "a", t0 + GRACE + INTERVAL),
            "waits again"
        );
        assert!(!w.observe(&view(true, &["a"], &[0, 1]), 2, "a", t0 + GRACE * 3));
        assert!(!w.observe(&orphaned, 2, "a", t0 + GRACE * 3 + INTERVAL));
        assert!(w.observe(&orphaned, 2, "a", t0 + GRACE * 4 + INTERVAL));
    }

    #[test]
    fn no_members_or_everything_owned_is_never_healed() {
        let t0 = Instant::now();
        let mut w = OrphanWatch::default();
        for i in 0..10 {
            let at = t0 + GRACE * i;
            assert!(!w.observe(&view(true, &[], &[]), 2, "a", at));
            assert!(!w.observe(&view(true, &["a"], &[0, 1]), 2, "a", at));
        }
    }
}
