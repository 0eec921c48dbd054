//! **What each assigned partition is doing**, as readiness and `/status` report it: plain state
//! the loop derives from its assignment and its tasks (Kafka Streams' RESTORING / RUNNING). An
//! instance is ready only when every partition the group gave it is restored and being decided;
//! a member with no partitions (more members than partitions) is a ready spare.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// The phase of one assigned partition's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskPhase {
    /// Assigned, its state not yet restored: nothing of it is decided yet.
    Restoring,
    /// Restored: its intents are decided as they arrive.
    Running,
    /// Not assigned here: a warm copy of its store is kept for a quick takeover.
    Standby,
}

/// Every partition assigned to this instance with its task's phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Phases(BTreeMap<i32, TaskPhase>);

impl Phases {
    /// The phases of `assigned`, a partition running when `restored` says its task exists,
    /// and of the `standby` partitions not assigned here.
    pub fn of(assigned: &[i32], restored: impl Fn(i32) -> bool, standby: &[i32]) -> Phases {
        let mut phases: BTreeMap<i32, TaskPhase> =
            (standby.iter()).map(|p| (*p, TaskPhase::Standby)).collect();
        for &p in assigned {
            let phase = if restored(p) {
                TaskPhase::Running
            } else {
                TaskPhase::Restoring
            };
            phases.insert(p, phase);
        }
        Phases(phases)
    }

    /// True when no partition is assigned (a spare member, or one still joining); standbys
    /// do not count.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|p| *p == TaskPhase::Standby)
    }

    /// The partitions assigned here (restoring or running), in order.
    pub fn assigned(&self) -> Vec<i32> {
        (self.0.iter())
            .filter(|(_, p)| **p != TaskPhase::Standby)
            .map(|(n, _)| *n)
            .collect()
    }

    /// The partitions kept warm for another owner, in order.
    pub fn standby(&self) -> Vec<i32> {
        self.partitions(TaskPhase::Standby)
    }

    /// True when every assigned partition is running (vacuously true with none).
    pub fn all_running(&self) -> bool {
        self.0.values().all(|p| *p != TaskPhase::Restoring)
    }

    /// The partitions still restoring, in order.
    pub fn restoring(&self) -> Vec<i32> {
        self.partitions(TaskPhase::Restoring)
    }

    /// The partitions being decided, in order.
    pub fn running(&self) -> Vec<i32> {
        self.partitions(TaskPhase::Running)
    }

    fn partitions(&self, phase: TaskPhase) -> Vec<i32> {
        (self.0.iter())
            .filter(|(_, p)| **p == phase)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Each partition with its phase, in partition order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, TaskPhase)> + '_ {
        self.0.iter().map(|(n, p)| (*n, *p))
    }

    /// One line for the readiness body: what runs and what still restores.
    pub fn summary(&self) -> String {
        let restoring = self.restoring();
        let assigned = self.assigned().len();
        let standby = match self.standby().len() {
            0 => String::new(),
            n => format!("; {n} standby"),
        };
        if self.is_empty() {
            format!("no partitions assigned{standby}")
        } else if restoring.is_empty() {
            format!("{assigned} partitions restored and running{standby}")
        } else {
            format!(
                "restoring {} of {assigned} partitions: {restoring:?}{standby}",
                restoring.len(),
            )
        }
    }
}

/// How far the partition restore running now has read, for `/status`: while the loop restores a
/// partition it reports nothing else, and a restore from a long audit log can take minutes.
/// Records are counted as they are read (audit links folded, changelog entries loaded). One per
/// process: a process runs one gate.
pub static RESTORE_PROGRESS: RestoreMeter = RestoreMeter::new();

/// A restore's progress: which partition, since when, how many records read.
#[derive(Debug)]
pub struct RestoreMeter {
    partition: AtomicI32,
    records: AtomicU64,
    started_ms: AtomicI64,
}

/// What `/status` shows of the restore running now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestoreProgress {
    /// The partition being restored.
    pub partition: i32,
    /// Records read so far (audit links and changelog entries).
    pub records_read: u64,
    /// Wall-clock start, ms since the epoch.
    pub started_ms: i64,
}

impl RestoreMeter {
    /// No restore running.
    pub const fn new() -> RestoreMeter {
        RestoreMeter {
            partition: AtomicI32::new(-1),
            records: AtomicU64::new(0),
            started_ms: AtomicI64::new(0),
        }
    }

    /// A restore of `partition` starts at `now_ms`.
    pub fn begin(&self, partition: i32, now_ms: i64) {
        self.records.store(0, Ordering::Relaxed);
        self.started_ms.store(now_ms, Ordering::Relaxed);
        self.partition.store(partition, Ordering::Release);
    }

    /// One more record read.
    pub fn read_one(&self) {
        self.records.fetch_add(1, Ordering::Relaxed);
    }

    /// The restore is over (done or failed).
    pub fn end(&self) {
        self.partition.store(-1, Ordering::Release);
    }

    /// The restore running now, if any.
    pub fn now(&self) -> Option<RestoreProgress> {
        let partition = self.partition.load(Ordering::Acquire);
        (partition >= 0).then(|| RestoreProgress {
            partition,
            records_read: self.records.load(Ordering::Relaxed),
            started_ms: self.started_ms.load(Ordering::Relaxed),
        })
    }
}

impl Default for RestoreMeter {
    fn default() -> Self {
        RestoreMeter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_assigned_partition_runs() {
        let some = Phases::of(&[0, 3, 5], |p| p != 3, &[]);
        assert!(!some.all_running());
        assert_eq!(some.restoring(), vec![3]);
        assert_eq!(some.running(), vec![0, 5]);
        assert_eq!(some.summary(), "restoring 1 of 3 partitions: [3]");
        let all = Phases::of(&[0, 3, 5], |_| true, &[]);
        assert!(all.all_running());
        assert_eq!(all.summary(), "3 partitions restored and running");
    }

    #[test]
    fn no_partitions_is_empty_and_vacuously_running() {
        let none = Phases::of(&[], |_| false, &[]);
        assert!(none.is_empty());
        assert!(none.all_running());
        assert_eq!(none.summary(), "no partitions assigned");
    }

    #[test]
    fn tasks_of_partitions_not_assigned_do_not_count() {
        // A task kept for a partition no longer assigned is not reported.
        let p = Phases::of(&[1], |p| p == 1 || p == 2, &[]);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![(1, TaskPhase::Running)]);
    }

    #[test]
    fn standbys_are_reported_but_never_make_an_instance_unready() {
        let p = Phases::of(&[0], |_| true, &[2, 0]);
        // An assigned partition is never reported as a standby.
        assert_eq!(p.standby(), vec![2]);
        assert_eq!(p.assigned(), vec![0]);
        assert!(p.all_running() && !p.is_empty());
        assert_eq!(p.summary(), "1 partitions restored and running; 1 standby");
        let spare = Phases::of(&[], |_| false, &[1]);
        assert!(spare.is_empty());
        assert_eq!(spare.summary(), "no partitions assigned; 1 standby");
    }

    #[test]
    fn the_restore_meter_counts_while_a_restore_runs() {
        let m = RestoreMeter::new();
        assert_eq!(m.now(), None);
        m.begin(3, 1_000);
        m.read_one();
        m.read_one();
        assert_eq!(
            m.now(),
            Some(RestoreProgress {
                partition: 3,
                records_read: 2,
                started_ms: 1_000
            })
        );
        m.end();
        assert_eq!(m.now(), None);
        m.begin(1, 2_000);
        assert_eq!(
            m.now().map(|p| p.records_read),
            Some(0),
            "counts from zero again"
        );
    }
}
