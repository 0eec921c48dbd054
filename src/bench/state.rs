//! `bucket bench state`: how restore time and memory grow with history. For each size it
//! writes a synthetic audit history on one partition ([`super::history`]), then restores that
//! partition in a child process (so its peak memory is the restore's alone): cold (no local
//! state) and warm (local state from the cold run, plus a short tail of new decisions). It
//! fits time and memory against the history and extrapolates to the seeds' scale.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::BenchError;
use super::history::{History, HistoryWriter};
use crate::kafka::registry::Registry;

/// The seeds' declared scale: live artifacts in the whole system.
pub const SEEDS_ARTIFACTS: f64 = 100_000_000.0;

/// What to measure.
#[derive(Debug, Clone)]
pub struct StateBenchOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Schema registry URL.
    pub registry_url: String,
    /// History lengths (decisions) to measure.
    pub sizes: Vec<u64>,
    /// Products the history spreads over.
    pub products: u32,
    /// Decisions appended after the cold restore, replayed by the warm one.
    pub tail: u64,
    /// Where the child processes keep their local state.
    pub state_dir: PathBuf,
    /// Topic profile for the throwaway audit topics.
    pub profile: String,
    /// Keep the throwaway topics.
    pub keep_topics: bool,
    /// The `bucket-bench` executable (the restores run in children of it).
    pub exe: PathBuf,
}

/// One restore, as the child reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RestoreRun {
    /// Wall time of the restore, ms.
    pub ms: f64,
    /// Audit links the restore read.
    pub links_read: i64,
    /// Artifacts the restored task knows.
    pub artifacts: u64,
    /// Peak resident memory of the child process (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Whether local state was used (warm) or not (cold).
    pub warm: bool,
    /// Where the state came from: "store", "changelog" or "audit".
    #[serde(default)]
    pub source: String,
    /// Changelog records written after the restore (a copy of the store), if asked to.
    #[serde(default)]
    pub changelog_records: u64,
}

impl RestoreRun {
    /// Live artifacts restored per second.
    pub fn artifacts_per_s(&self) -> f64 {
        if self.ms <= 0.0 {
            return 0.0;
        }
        self.artifacts as f64 / (self.ms / 1000.0)
    }
}

/// One history size: what was written and both restores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeFigures {
    /// The history.
    pub history: History,
    /// Restore without local state, folding the audit log.
    pub cold: RestoreRun,
    /// Restore without local state, loading the state changelog.
    #[serde(default)]
    pub cold_changelog: RestoreRun,
    /// Restore from local state plus the tail.
    pub warm: RestoreRun,
}

/// The whole report with fitted slopes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateReport {
    /// Per size, in order.
    pub sizes: Vec<SizeFigures>,
    /// Cold restore, ms per decision in the history (least-squares slope).
    pub cold_ms_per_decision: f64,
    /// Peak memory of a cold restore, KiB per live artifact (slope).
    pub cold_kib_per_artifact: f64,
    /// Peak memory of a warm restore, KiB per live artifact (slope).
    pub warm_kib_per_artifact: f64,
}

impl StateReport {
    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "decisions   live artifacts   cold(audit) ms   cold links   cold peak MiB   cold(changelog) ms   artifacts/s   peak MiB   warm ms   warm links   warm peak MiB\n",
        );
        for s in &self.sizes {
            out.push_str(&format!(
                "{:>9}   {:>14}   {:>14.0}   {:>10}   {:>13.1}   {:>18.0}   {:>11.0}   {:>8.1}   {:>7.0}   {:>10}   {:>13.1}\n",
                s.history.decisions,
                s.history.live_artifacts,
                s.cold.ms,
                s.cold.links_read,
                s.cold.peak_rss_kib as f64 / 1024.0,
                s.cold_changelog.ms,
                s.cold_changelog.artifacts_per_s(),
                s.cold_changelog.peak_rss_kib as f64 / 1024.0,
                s.warm.ms,
                s.warm.links_read,
                s.warm.peak_rss_kib as f64 / 1024.0,
            ));
        }
        if self.sizes.len() < 2 {
            out.push_str("(slopes and the extrapolation need at least two sizes)\n");
            return out;
        }
        let per_decision_ms = self.cold_ms_per_decision;
        out.push_str(&format!(
            "cold restore: {:.3} µs per decision; peak memory {:.3} KiB per live artifact cold, {:.3} warm\n",
            per_decision_ms * 1000.0,
            self.cold_kib_per_artifact,
            self.warm_kib_per_artifact,
        ));
        // The mix keeps ~40 % of decisions as live artifacts: 100 M artifacts ≈ 250 M decisions.
        if let Some(last) = self.sizes.last()
            && last.history.live_artifacts > 0
        {
            let decisions_per_artifact =
                last.history.decisions as f64 / last.history.live_artifacts as f64;
            let decisions = SEEDS_ARTIFACTS * decisions_per_artifact;
            out.push_str(&format!(
                "extrapolated to the seeds' {:.0} M artifacts on one gate ({:.0} M decisions): cold restore {:.0} s, cold peak {:.1} GiB, warm peak {:.1} GiB\n",
                SEEDS_ARTIFACTS / 1e6,
                decisions / 1e6,
                per_decision_ms * decisions / 1000.0,
                self.cold_kib_per_artifact * SEEDS_ARTIFACTS / 1024.0 / 1024.0,
                self.warm_kib_per_artifact * SEEDS_ARTIFACTS / 1024.0 / 1024.0,
            ));
        }
        out
    }
}

/// Least-squares slope of y over x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return points
            .first()
            .map_or(0.0, |(x, y)| if *x > 0.0 { y / x } else { 0.0 });
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// Peak and current resident memory of this process, KiB (VmHWM, VmRSS).
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Runs every size and returns the report.
pub fn run(opts: &StateBenchOptions, rt: &Handle) -> Result<StateReport, BenchError> {
    let registry = Registry::new(&opts.registry_url)?;
    let (ids, _) = rt.block_on(registry.output_ids(crate::wire::audit::LATEST_VERSION))?;
    let bench_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut sizes = Vec::new();
    let mut created = Vec::new();
    for (i, &n) in opts.sizes.iter().enumerate() {
        let topic = format!("bucket.audit.statebench-{bench_id}-{i}");
        let changelog = format!("bucket.state-changelog.statebench-{bench_id}-{i}");
        rt.block_on(create_bench_topics(
            &opts.brokers,
            &opts.profile,
            &topic,
            Some(&changelog),
        ))?;
        created.push(topic.clone());
        created.push(changelog.clone());
        let topics = (topic.as_str(), changelog.as_str());
        let bar = bar(n, &format!("history of {n} decisions"));
        let mut writer = HistoryWriter::new(opts.products, 0x5eed + i as u64);
        writer.append(&opts.brokers, &topic, ids.audit, n, &bar)?;
        bar.finish_and_clear();
        let dir = opts.state_dir.join(format!("{bench_id}-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        // Cold from the audit log; the child then copies its store into the changelog, as a
        // gate does after such a restore.
        let cold = restore_in_child(opts, topics, &dir, true)?;
        let _ = std::fs::remove_dir_all(&dir);
        let cold_changelog = restore_in_child(opts, topics, &dir, false)?;
        let bar = self::bar(opts.tail, "tail");
        let history = writer.append(&opts.brokers, &topic, ids.audit, opts.tail, &bar)?;
        bar.finish_and_clear();
        let warm = restore_in_child(opts, topics, &dir, false)?;
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "{n} decisions: cold from the audit log {:.0} ms / {} MiB, from the changelog {:.0} ms ({:.0} artifacts/s) / {} MiB, warm {:.0} ms / {} MiB",
            cold.ms,
            cold.peak_rss_kib / 1024,
            cold_changelog.ms,
            cold_changelog.artifacts_per_s(),
            cold_changelog.peak_rss_kib / 1024,
            warm.ms,
            warm.peak_rss_kib / 1024
        );
        sizes.push(SizeFigures {
            history,
            cold,
            cold_changelog,
            warm,
        });
    }
    if !opts.keep_topics {
        let _ = rt.block_on(super::kafka::delete_topics(&opts.brokers, &created));
    }
    let points = |f: &dyn Fn(&SizeFigures) -> (f64, f64)| -> Vec<(f64, f64)> {
        sizes.iter().map(f).collect()
    };
    Ok(StateReport {
        cold_ms_per_decision: slope(&points(&|s| (s.history.decisions as f64, s.cold.ms))),
        cold_kib_per_artifact: slope(&points(&|s| {
            (s.history.live_artifacts as f64, s.cold.peak_rss_kib as f64)
        })),
        warm_kib_per_artifact: slope(&points(&|s| {
            (s.history.live_artifacts as f64, s.warm.peak_rss_kib as f64)
        })),
        sizes,
    })
}

fn bar(n: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(n);
    b.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Creates a one-partition audit topic named `audit` (and a state changelog named `changelog`)
/// with the declared settings of `profile`.
pub(super) async fn create_bench_topics(
    brokers: &str,
    profile: &str,
    audit: &str,
    changelog: Option<&str>,
) -> Result<(), BenchError> {
    let mut specs =
        crate::ops::topics::parse(crate::ops::topics::DEFAULT_DECLARATION, Some(profile))?;
    specs.retain(|s| {
        s.name == "bucket.audit" || (changelog.is_some() && s.name == "bucket.state-changelog")
    });
    for s in &mut specs {
        s.name = match (s.name.as_str(), changelog) {
            ("bucket.audit", _) | (_, None) => audit.to_string(),
            (_, Some(changelog)) => changelog.to_string(),
        };
        s.partitions = 1;
    }
    crate::ops::topics::apply(brokers, &specs).await?;
    Ok(())
}

/// Runs `bucket-bench state-restore` on partition 0 of `topic` and reads its figures.
fn restore_in_child(
    opts: &StateBenchOptions,
    (topic, changelog): (&str, &str),
    dir: &Path,
    copy_to_changelog: bool,
) -> Result<RestoreRun, BenchError> {
    let mut cmd = Command::new(&opts.exe);
    cmd.args([
        "state-restore",
        "--topic",
        topic,
        "--changelog-topic",
        changelog,
    ]);
    if copy_to_changelog {
        cmd.arg("--copy-to-changelog");
    }
    let out = cmd
        .arg("--state-dir")
        .arg(dir)
        .env("BUCKET_BROKERS", &opts.brokers)
        .env("BUCKET_REGISTRY_URL", &opts.registry_url)
        .output()
        .map_err(|e| BenchError::Options(format!("running {}: {e}", opts.exe.display())))?;
    if !out.status.success() {
        return Err(BenchError::Incomplete(format!(
            "state-restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        BenchError::Incomplete(format!(
            "state-restore printed no figures ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        ))
    })
}

/// The child's side: restores partition 0 of `topics.0` on the local store in `state_dir` (warm
/// when the store has a checkpoint, else cold from the changelog `topics.1` when it holds the
/// state, else cold from the audit log) and reports time, links, memory; with `copy`, then
/// copies the store into the changelog when it did not hold it.
pub fn restore_once(
    brokers: &str,
    (topic, changelog): (&str, &str),
    state_dir: &Path,
    reader: &crate::wire::audit::AuditReader,
    copy: bool,
) -> Result<RestoreRun, BenchError> {
    let policy = crate::core::Policy::parse_with(
        &super::workload::policy_text(1, false),
        &super::workload::BenchSecrets,
    )?;
    let store = crate::gate::persist::StoreOptions {
        state_dir: state_dir.to_path_buf(),
        cache_bytes: 32 << 20,
        cluster: "bench".into(),
        intents_topic: "bench".into(),
    };
    let started = Instant::now();
    let sources = crate::gate::persist::RestoreSources {
        audit: crate::gate::task::AuditSource {
            brokers,
            topic,
            timeout: Duration::from_secs(3600),
            reader,
        },
        changelog_topic: changelog,
    };
    let (task, stats) = crate::gate::persist::restore_with_store(sources, 0, &policy, &store)
        .map_err(|e| BenchError::Incomplete(e.to_string()))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (peak_rss_kib, _) = memory_kib();
    let changelog_records = if copy && !task.changelog_current() {
        copy_to_changelog(brokers, changelog, &task)?
    } else {
        0
    };
    Ok(RestoreRun {
        ms,
        links_read: i64::try_from(stats.links_read).unwrap_or(i64::MAX),
        artifacts: task.artifact_count(),
        peak_rss_kib,
        warm: stats.warm,
        source: stats.source(true).to_string(),
        changelog_records,
    })
}

/// Copies a task's store into partition 0 of `changelog` (what a gate does after a restore
/// from the audit log, here outside a transaction).
fn copy_to_changelog(
    brokers: &str,
    changelog: &str,
    task: &crate::gate::persist::StoredTask,
) -> Result<u64, BenchError> {
    let producer = super::kafka::producer(brokers, false)?;
    let epoch = task.new_changelog_epoch();
    let mut cursor = crate::gate::store::ExportCursor::default();
    let mut copied = 0u64;
    let incomplete = |e: crate::gate::store::StateStoreError| BenchError::Incomplete(e.to_string());
    loop {
        let chunk = task
            .changelog_copy(&mut cursor, epoch, changelog, 0, 50_000)
            .map_err(incomplete)?;
        if chunk.is_empty() {
            break;
        }
        for r in &chunk {
            super::kafka::send_out_record(&producer, r)?;
        }
        copied += chunk.len() as u64;
    }
    let head = task
        .changelog_copy_head(epoch, changelog, 0)
        .map_err(incomplete)?;
    super::kafka::send_out_record(&producer, &head)?;
    super::kafka::flush(&producer)?;
    Ok(copied + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_one_point() {
        let s = slope(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!((s - 2.0).abs() < 1e-9, "{s}");
        assert!((slope(&[(4.0, 2.0)]) - 0.5).abs() < 1e-9);
        assert_eq!(slope(&[]), 0.0);
    }
}
