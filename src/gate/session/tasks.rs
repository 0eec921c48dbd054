//! The task manager's state, plain and unit-tested: which partitions have a task, where the
//! group stood on each when its task was created, which takeovers are still to be announced,
//! what an abort rolls back or forgets, and which chains are due a checkpoint. The session does
//! the I/O (restores, seeks, commits) around it, in the manner of Kafka Streams' TaskManager.

use std::collections::HashMap;
use std::time::Duration;

use tracing::{debug, warn};

use crate::gate::events::GovernanceEvent;
use crate::gate::lifecycle::Phases;
use crate::gate::persist::StoredTask;
use crate::gate::task::Task;
use crate::gate::txn::{Rewind, fencing_offset};

/// The head of a chain a checkpoint is signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    /// The chain's partition.
    pub partition: i32,
    /// Sequence of its last link.
    pub seq: i64,
    /// Hash of its last link.
    pub hash: String,
}

/// When a chain is due a signed checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointRule {
    /// After this many links.
    pub every: u64,
    /// Or when this long has passed since the last one (and a link was written since).
    pub interval: Duration,
}

/// The tasks of the partitions this session holds.
#[derive(Debug, Default)]
pub struct TaskManager {
    tasks: HashMap<i32, StoredTask>,
    /// Group offset of each task's partition when the task was created (fencing offsets).
    resume: HashMap<i32, i64>,
    /// Takeover announcements (`GATE_STARTED`) of tasks restored ahead of their first link:
    /// written just before the chain's next link, so an idle partition's chain is unchanged.
    unannounced: HashMap<i32, GovernanceEvent>,
    /// The phases last reported (readiness, `/status`); None before the first report.
    phases: Option<Phases>,
}

impl TaskManager {
    /// The in-memory task of `partition`.
    pub fn get(&self, partition: i32) -> Option<&Task> {
        self.tasks.get(&partition).map(|t| &t.task)
    }

    /// The in-memory task of `partition`, to append links to.
    pub fn get_mut(&mut self, partition: i32) -> Option<&mut Task> {
        self.tasks.get_mut(&partition).map(|t| &mut t.task)
    }

    /// The task of `partition` with its store: to decide with, and to commit.
    pub fn stored_mut(&mut self, partition: i32) -> Option<&mut StoredTask> {
        self.tasks.get_mut(&partition)
    }

    /// True when `partition` has a task.
    pub fn contains(&self, partition: i32) -> bool {
        self.tasks.contains_key(&partition)
    }

    /// Every task, by partition (what the observer and the usage share look at).
    pub fn all(&self) -> &HashMap<i32, StoredTask> {
        &self.tasks
    }

    /// Every in-memory task, by partition, to share usage through.
    pub fn tasks_mut(&mut self) -> impl Iterator<Item = (&i32, &mut Task)> {
        self.tasks.iter_mut().map(|(p, t)| (p, &mut t.task))
    }

    /// The partitions with a task, in order.
    pub fn partitions(&self) -> Vec<i32> {
        let mut ps: Vec<i32> = self.tasks.keys().copied().collect();
        ps.sort_unstable();
        ps
    }

    /// The first of `assigned` that has no task yet: the next one to restore.
    pub fn next_to_restore(&self, assigned: &[i32]) -> Option<i32> {
        assigned.iter().copied().find(|p| !self.contains(*p))
    }

    /// Takes a restored task on: the group stood at `resume` on its partition, and `announce`
    /// goes into its chain before the next link.
    pub fn adopt(
        &mut self,
        partition: i32,
        task: StoredTask,
        resume: i64,
        announce: GovernanceEvent,
    ) {
        self.resume.insert(partition, resume);
        self.tasks.insert(partition, task);
        self.unannounced.insert(partition, announce);
    }

    /// The takeover announcement still owed by `partition`'s chain, at most once; the task
    /// notes the sequence it goes in at (a rollback to before it must announce again).
    pub fn take_announcement(&mut self, partition: i32) -> Option<GovernanceEvent> {
        let task = self.tasks.get_mut(&partition)?;
        let event = self.unannounced.remove(&partition)?;
        task.task.announcing();
        Some(event)
    }

    /// Forgets `partition`'s task (revoked, or to be restored again).
    pub fn forget(&mut self, partition: i32) {
        self.tasks.remove(&partition);
        self.resume.remove(&partition);
        self.unannounced.remove(&partition);
    }

    /// Forgets every task (the session ends).
    pub fn clear(&mut self) {
        self.tasks.clear();
        self.resume.clear();
        self.unannounced.clear();
    }

    /// Takes `partition`'s task out, to work on it alone ([`TaskManager::put_back`]).
    pub fn take(&mut self, partition: i32) -> Option<StoredTask> {
        self.tasks.remove(&partition)
    }

    /// Puts a task taken out back.
    pub fn put_back(&mut self, partition: i32, task: StoredTask) {
        self.tasks.insert(partition, task);
    }

    /// The offset a commit carries for `partition` when the transaction decided nothing there
    /// (`txn::fencing_offset`).
    pub fn fencing(&self, partition: i32) -> Option<i64> {
        fencing_offset(
            self.tasks
                .get(&partition)
                .map(|t| t.task.last_decided_offset),
            self.resume.get(&partition).copied(),
        )
    }

    /// After an abort: rolls each rewound task back to its last commit (from its store) or
    /// forgets it (to be restored), and forgets those no longer `assigned`. Returns where each
    /// still-assigned partition with aborted decisions seeks back to.
    pub fn roll_back(&mut self, rewinds: &[Rewind], assigned: &[i32]) -> Vec<(i32, i64)> {
        let mut seeks = Vec::new();
        for rewind in rewinds {
            let p = rewind.partition;
            let kept = self.tasks.remove(&p).filter(|_| assigned.contains(&p));
            match kept.map(StoredTask::rolled_back).transpose() {
                Ok(Some(Some(task))) => {
                    debug!(partition = p, "task rolled back to its last commit");
                    self.tasks.insert(p, task);
                }
                Ok(_) => self.forget(p),
                Err(e) => {
                    warn!(partition = p, error = %e, "rolling a task back failed; it restores again");
                    self.forget(p);
                }
            }
            if let Some(offset) = rewind.seek_to.filter(|_| assigned.contains(&p)) {
                seeks.push((p, offset));
            }
        }
        seeks
    }

    /// The partitions whose changelog epoch can no longer hold their state (a copy is due).
    pub fn stale_changelogs(&self) -> Vec<i32> {
        let mut ps: Vec<i32> = (self.tasks.iter())
            .filter(|(_, t)| !t.changelog_current())
            .map(|(p, _)| *p)
            .collect();
        ps.sort_unstable();
        ps
    }

    /// The chains among `partitions` due a checkpoint under `rule`: enough links since the
    /// last, or some links and the last one old (or none yet by this instance).
    pub fn checkpoints_due(
        &self,
        partitions: impl Iterator<Item = i32>,
        rule: CheckpointRule,
    ) -> Vec<ChainTip> {
        partitions
            .filter_map(|p| {
                let t = &self.tasks.get(&p)?.task;
                let old = (t.last_checkpoint).is_none_or(|at| at.elapsed() >= rule.interval);
                let due =
                    t.links_since_checkpoint >= rule.every || (t.links_since_checkpoint > 0 && old);
                due.then(|| tip(p, t))
            })
            .collect()
    }

    /// With no transaction open: the chains whose links since their last checkpoint (by this
    /// instance) are older than `interval`, so a partition that went quiet is signed too.
    pub fn idle_checkpoints_due(&self, interval: Duration) -> Vec<ChainTip> {
        let mut due: Vec<ChainTip> = (self.tasks.iter())
            .filter(|(_, t)| {
                t.task.links_since_checkpoint > 0
                    && (t.task.last_checkpoint).is_some_and(|at| at.elapsed() >= interval)
            })
            .map(|(p, t)| tip(*p, &t.task))
            .collect();
        due.sort_by_key(|t| t.partition);
        due
    }

    /// The phases of `assigned` (and the `standby` partitions), when they changed since the
    /// last report.
    pub fn phases_changed(&mut self, assigned: &[i32], standby: &[i32]) -> Option<&Phases> {
        let phases = Phases::of(assigned, |p| self.tasks.contains_key(&p), standby);
        if self.phases.as_ref() == Some(&phases) {
            return None;
        }
        self.phases = Some(phases);
        self.phases.as_ref()
    }
}

fn tip(partition: i32, t: &Task) -> ChainTip {
    ChainTip {
        partition,
        seq: t.chain.next_seq - 1,
        hash: t.chain.hash.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::gate::task::ChainHead;

    fn started(partition: i32) -> GovernanceEvent {
        GovernanceEvent::GateStopped {
            gate_id: format!("g{partition}"),
        }
    }

    fn task_at(next_seq: i64, last_decided: i64) -> Task {
        let mut t = Task::empty();
        t.chain = ChainHead {
            next_seq,
            hash: format!("h{next_seq}"),
        };
        t.last_decided_offset = last_decided;
        t
    }

    #[test]
    fn a_takeover_is_announced_once_at_the_chains_next_link() {
        let mut m = TaskManager::default();
        m.adopt(3, StoredTask::in_memory(task_at(7, 40)), 41, started(3));
        assert!(m.take_announcement(2).is_none(), "no task there");
        assert!(m.take_announcement(3).is_some());
        assert_eq!(m.get(3).and_then(|t| t.announced_at), Some(7));
        assert!(m.take_announcement(3).is_none(), "announced once");
        m.forget(3);
        assert!(!m.contains(3));
        assert_eq!(m.fencing(3), None, "a forgotten task fences nothing");
    }

    #[test]
    fn fencing_is_past_the_last_decision_and_never_behind_where_the_group_stood() {
        let mut m = TaskManager::default();
        m.adopt(0, StoredTask::in_memory(task_at(1, 9)), 4, started(0));
        m.adopt(1, StoredTask::in_memory(task_at(1, -1)), 30, started(1));
        assert_eq!(m.fencing(0), Some(10));
        assert_eq!(m.fencing(1), Some(30));
        assert_eq!(m.fencing(2), None);
    }

    #[test]
    fn an_abort_forgets_tasks_without_a_store_and_seeks_only_assigned_partitions() {
        let mut m = TaskManager::default();
        for p in 0..3 {
            m.adopt(p, StoredTask::in_memory(task_at(5, 50)), 51, started(p));
        }
        let rewinds = [
            Rewind {
                partition: 0,
                seek_to: Some(48),
            },
            Rewind {
                partition: 1,
                seek_to: None,
            },
            Rewind {
                partition: 2,
                seek_to: Some(49),
            },
        ];
        // Partition 2 was revoked meanwhile: forgotten, never sought.
        let seeks = m.roll_back(&rewinds, &[0, 1]);
        assert_eq!(seeks, vec![(0, 48)]);
        assert!(!m.contains(0) && !m.contains(1) && !m.contains(2));
        assert_eq!(m.next_to_restore(&[0, 1]), Some(0));
        assert_eq!(m.fencing(0), None, "its resume offset is forgotten with it");
    }

    #[test]
    fn checkpoints_are_due_after_enough_links_or_when_the_last_is_old() {
        let rule = CheckpointRule {
            every: 10,
            interval: Duration::from_secs(60),
        };
        let mut m = TaskManager::default();
        let mut fresh = task_at(4, 0);
        fresh.links_since_checkpoint = 3;
        fresh.last_checkpoint = Some(Instant::now());
        let mut full = task_at(20, 0);
        full.links_since_checkpoint = 10;
        full.last_checkpoint = Some(Instant::now());
        let mut never = task_at(2, 0);
        never.links_since_checkpoint = 1;
        let quiet = task_at(9, 0);
        for (p, t) in [(0, fresh), (1, full), (2, never), (3, quiet)] {
            m.adopt(p, StoredTask::in_memory(t), 0, started(p));
        }
        let due: Vec<i32> = (m.checkpoints_due(0..5, rule).iter())
            .map(|t| t.partition)
            .collect();
        assert_eq!(due, vec![1, 2]);
        let tip = &m.checkpoints_due(1..2, rule)[0];
        assert_eq!((tip.seq, tip.hash.as_str()), (19, "h20"));
        assert!(
            m.idle_checkpoints_due(Duration::ZERO)
                .iter()
                .all(|t| t.partition != 2 && t.partition != 3),
            "idle checkpoints only follow one written by this instance, and need new links"
        );
    }

    #[test]
    fn phases_are_reported_when_they_change() {
        let mut m = TaskManager::default();
        assert!(m.phases_changed(&[0, 1], &[]).is_some(), "the first report");
        assert!(m.phases_changed(&[0, 1], &[]).is_none());
        m.adopt(0, StoredTask::in_memory(task_at(1, -1)), 0, started(0));
        assert!(m.phases_changed(&[0, 1], &[]).is_some(), "0 runs now");
        assert!(
            m.phases_changed(&[0, 1], &[2]).is_some(),
            "a standby appeared"
        );
    }
}
