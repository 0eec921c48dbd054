//! Local state stores and the state changelog checked against the audit log: the "store ==
//! changelog == recomputation" check of the state tests and the fault suite.

use std::path::Path;
use std::time::Duration;

use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::gate::changelog;
use bhiv_bucket::gate::persist::differences;
use bhiv_bucket::gate::store::{StateStore, StoreIdentity};
use bhiv_bucket::gate::task::{self, Task};
use bhiv_bucket::kafka::read::PartitionSource;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{brokers, fresh_audit_reader};

/// How current a store must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The gate that last ran touched every partition and stopped cleanly: nothing is pending.
    Current,
    /// A store catches up at its partition's next restore; until then it may trail the log.
    UpToItsCheckpoint,
}

/// The id of the local cluster (part of a store's identity).
pub fn cluster_id() -> String {
    let c: BaseConsumer = bhiv_bucket::kafka::security::client_config()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    c.client()
        .fetch_cluster_id(Duration::from_secs(10))
        .unwrap()
}

fn policy() -> bhiv_bucket::core::Policy {
    bhiv_bucket::policy::file::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/policy.toml"
    )))
    .unwrap()
    .0
}

/// Partition `p` rebuilt from the audit log alone, up to the link before `until_seq`; also
/// whether that was the log's end.
fn rebuilt_until(topics: &TopicNames, p: i32, until_seq: i64) -> (Task, bool) {
    let policy = policy();
    let reader = fresh_audit_reader();
    let brokers = brokers();
    let src = task::AuditSource {
        brokers: &brokers,
        topic: &topics.audit,
        timeout: Duration::from_secs(120),
        reader: &reader,
    };
    let mut rebuilt = Task::empty();
    let mut at_end = true;
    task::read_links(
        src,
        p,
        rdkafka::Offset::Beginning,
        |offset, event, stored| {
            if event.seq >= until_seq {
                at_end = false;
                return Ok(std::ops::ControlFlow::Break(()));
            }
            rebuilt.follow(p, offset, &event, stored, &policy)?;
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )
    .unwrap();
    (rebuilt, at_end)
}

/// Every partition's store in `dir` equals the task rebuilt from the audit log alone, up to
/// the store's checkpoint (which the log must hold: same sequence and hash); with
/// `Expect::Current` the checkpoint is the log's end. Returns how many stores were checked.
pub fn stores_match_the_log(
    dir: &Path,
    topics: &TopicNames,
    partitions: i32,
    expect: Expect,
) -> Result<usize, String> {
    let cluster = cluster_id();
    let mut checked = 0;
    for p in 0..partitions {
        let store_dir = StateStore::dir_for(dir, &topics.audit, p);
        if !store_dir.exists() {
            continue;
        }
        let identity = StoreIdentity::new(&cluster, &topics.intents, &topics.audit, p);
        let store = StateStore::open(&store_dir, &identity, 8 << 20)
            .map_err(|e| format!("{}: {e}", store_dir.display()))?;
        let Some(cp) = store.checkpoint().map_err(|e| e.to_string())? else {
            continue;
        };
        let (rebuilt, at_end) = rebuilt_until(topics, p, cp.audit_next_seq);
        if (rebuilt.chain.next_seq, &rebuilt.chain.hash) != (cp.audit_next_seq, &cp.audit_hash) {
            return Err(format!(
                "{}: the log does not hold the store's checkpoint (seq {})",
                store_dir.display(),
                cp.audit_next_seq
            ));
        }
        let diff = differences(&store, &rebuilt).map_err(|e| e.to_string())?;
        if !diff.is_empty() {
            return Err(format!("{} differs: {diff:#?}", store_dir.display()));
        }
        if expect == Expect::Current && !at_end {
            return Err(format!(
                "{}: behind the log after a clean stop",
                store_dir.display()
            ));
        }
        checked += 1;
    }
    Ok(checked)
}

/// Every partition's state changelog, loaded into an empty store, equals the task rebuilt from
/// the audit log up to the changelog's head, and that head is the audit log's end. A partition
/// without a head is an error with `every_partition`, else skipped: after the changelog is lost,
/// a partition's changelog is written again only when some instance restores its task, which
/// happens at its first intent. Returns how many partitions were compared.
pub fn changelog_matches_the_log(
    topics: &TopicNames,
    partitions: i32,
    every_partition: bool,
) -> Result<usize, String> {
    let mut checked = 0;
    let brokers = brokers();
    let scratch = tempfile::TempDir::new().unwrap();
    for p in 0..partitions {
        let src = changelog_source(&brokers, topics, p);
        let Some((epoch, head)) =
            changelog::read::latest_head(&src).map_err(|e| format!("partition {p}: {e}"))?
        else {
            if every_partition {
                return Err(format!("partition {p}: the changelog has no head"));
            }
            continue;
        };
        let dir = scratch.path().join(p.to_string());
        let identity = StoreIdentity::new("check", &topics.intents, &topics.audit, p);
        let store = StateStore::open(&dir, &identity, 8 << 20).map_err(|e| e.to_string())?;
        changelog::read::load(&src, epoch, &head, 0, &store, None)
            .map_err(|e| format!("partition {p}: {e}"))?;
        same_as_the_log(topics, p, &head, &store, "changelog")?;
        checked += 1;
    }
    Ok(checked)
}

/// Partition `p` of the run's state changelog, read with a generous timeout.
fn changelog_source<'a>(brokers: &'a str, topics: &'a TopicNames, p: i32) -> PartitionSource<'a> {
    PartitionSource {
        brokers,
        topic: &topics.changelog,
        partition: p,
        timeout: Duration::from_secs(120),
    }
}

/// `store`, loaded to the changelog head `head`, equals the task rebuilt from the audit log, and
/// that head is the audit log's end.
fn same_as_the_log(
    topics: &TopicNames,
    p: i32,
    head: &changelog::Head,
    store: &StateStore,
    what: &str,
) -> Result<(), String> {
    let (rebuilt, at_end) = rebuilt_until(topics, p, head.audit_next_seq);
    if (rebuilt.chain.next_seq, &rebuilt.chain.hash) != (head.audit_next_seq, &head.audit_hash) {
        return Err(format!(
            "partition {p}: the changelog's head (seq {}) is not in the audit log",
            head.audit_next_seq
        ));
    }
    if !at_end {
        return Err(format!(
            "partition {p}: the changelog's head is behind the audit log"
        ));
    }
    let diff = differences(store, &rebuilt).map_err(|e| e.to_string())?;
    if !diff.is_empty() {
        return Err(format!("partition {p}: {what} differs: {diff:#?}"));
    }
    Ok(())
}

/// Standby stores of every partition in `dir`, kept across calls: each call follows the
/// changelog one round with the gate's own code (`gate::standby::follow_store`: incremental
/// after the first call, from scratch after a new epoch), then completes a copy of each store
/// as a takeover does (the changelog after its progress) and compares it with the audit log's
/// recomputation. Returns how many partitions were compared.
pub fn followed_stores_match_the_log(
    topics: &TopicNames,
    partitions: i32,
    dir: &Path,
) -> Result<usize, String> {
    let mut checked = 0;
    let brokers = brokers();
    for p in 0..partitions {
        let src = changelog_source(&brokers, topics, p);
        let identity = StoreIdentity::new("check", &topics.intents, &topics.audit, p);
        let followed = dir.join(p.to_string());
        let warm = bhiv_bucket::gate::standby::follow_store(&src, &followed, &identity, 8 << 20)
            .map_err(|e| format!("partition {p}: following: {e}"))?;
        if !warm {
            continue;
        }
        let scratch = tempfile::TempDir::new().unwrap();
        copy_dir(&followed, scratch.path());
        let store =
            StateStore::open(scratch.path(), &identity, 8 << 20).map_err(|e| e.to_string())?;
        let progress = store
            .follow_progress()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("partition {p}: a warm standby store without progress"))?;
        let (epoch, head) = changelog::read::latest_head(&src)
            .map_err(|e| format!("partition {p}: {e}"))?
            .ok_or_else(|| format!("partition {p}: the changelog lost its head"))?;
        if epoch != progress.epoch {
            return Err(format!("partition {p}: the standby follows another epoch"));
        }
        changelog::read::load(&src, epoch, &head, 0, &store, Some(progress))
            .map_err(|e| format!("partition {p}: completing the standby store: {e}"))?;
        same_as_the_log(topics, p, &head, &store, "completed standby store")?;
        checked += 1;
    }
    Ok(checked)
}

/// Deletes `topic` and creates it again, empty, as declared (retrying while the deletion is
/// still in progress).
pub async fn recreate_topic(topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        bhiv_bucket::kafka::security::client_config()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
    let done = admin
        .delete_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(done.iter().all(|r| r.is_ok()), "{done:?}");
    let declared = bhiv_bucket::ops::topics::parse(
        bhiv_bucket::ops::topics::DEFAULT_DECLARATION,
        Some("local"),
    )
    .unwrap();
    let mut spec = declared
        .into_iter()
        .find(|t| topic.starts_with(&t.name))
        .unwrap();
    spec.name = topic.to_string();
    spec.partitions = partitions;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if bhiv_bucket::ops::topics::apply(&brokers(), std::slice::from_ref(&spec))
            .await
            .is_ok_and(|r| {
                r.iter()
                    .all(|(_, s)| *s == bhiv_bucket::ops::topics::TopicStatus::Created)
            })
        {
            return;
        }
    }
    panic!("{topic} was not created again");
}

/// Copies a store directory (its files) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
