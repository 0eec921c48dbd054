//! Retention: `bucket sink purge`. Calls the database's `bucket_purge()` (SECURITY DEFINER, see
//! `migrations/0002_audit_retention.sql`), which deletes prior versions superseded before the
//! window and artifacts whose tombstone is older than the window, skips legal holds, logs each
//! purged version and one summary row in `purge_runs`, all in one transaction. The caller needs
//! only EXECUTE on that function (`bucket_purger` or the owner); the sink role cannot purge.

use std::time::Duration;

use serde::Serialize;

use super::store::{Store, StoreError};

/// Default retention window of prior versions and tombstones.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(90 * 24 * 3600);

/// The summary of one purge run, as recorded in `purge_runs` and, by `bucket sink purge`, in the
/// audit chain (`STORAGE_PURGED` through `bucket.control`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PurgeReport {
    /// Row id in `purge_runs`.
    pub run_id: i64,
    /// When the run started, ms since the epoch.
    pub started_at_ms: i64,
    /// Versions superseded (or tombstoned) before this instant were eligible, ms.
    pub cutoff_ms: i64,
    /// The window, seconds.
    pub window_seconds: i64,
    /// True when nothing was deleted (report only).
    pub dry_run: bool,
    /// Non-tombstone versions purged.
    pub purged_versions: i64,
    /// Tombstones purged.
    pub purged_tombstones: i64,
    /// Content bytes purged.
    pub purged_bytes: i64,
    /// Eligible versions kept because of a legal hold.
    pub held_versions: i64,
    /// Database role that ran it.
    pub run_by: String,
}

/// Parses a window like `90d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("window {text:?}: expected a number and s, m, h or d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("window {text:?}: unit must be s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|s| *s <= i64::MAX as u64)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("window {text:?} is too large"))
}

impl Store {
    /// Runs one purge with `window` (see module docs); `dry_run` only counts and records.
    pub async fn purge(&self, window: Duration, dry_run: bool) -> Result<PurgeReport, StoreError> {
        let seconds = i64::try_from(window.as_secs())
            .map_err(|_| StoreError::Config("retention window too large".into()))?;
        let row = self
            .client
            .query_one(
                "SELECT run_id, (extract(epoch FROM started_at) * 1000)::bigint, \
                 (extract(epoch FROM cutoff) * 1000)::bigint, window_seconds, dry_run, \
                 purged_versions, purged_tombstones, purged_bytes, held_versions, run_by \
                 FROM bucket_purge($1, $2)",
                &[&seconds, &dry_run],
            )
            .await?;
        let report = PurgeReport {
            run_id: row.try_get(0)?,
            started_at_ms: row.try_get(1)?,
            cutoff_ms: row.try_get(2)?,
            window_seconds: row.try_get(3)?,
            dry_run: row.try_get(4)?,
            purged_versions: row.try_get(5)?,
            purged_tombstones: row.try_get(6)?,
            purged_bytes: row.try_get(7)?,
            held_versions: row.try_get(8)?,
            run_by: row.try_get(9)?,
        };
        tracing::info!(
            run_id = report.run_id,
            dry_run,
            purged_versions = report.purged_versions,
            purged_tombstones = report.purged_tombstones,
            purged_bytes = report.purged_bytes,
            held_versions = report.held_versions,
            "purge run recorded"
        );
        Ok(report)
    }

    /// Places a legal hold on a product (`artifact` None) or one artifact; idempotent.
    pub async fn place_hold(
        &self,
        product: &str,
        artifact: Option<&str>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.client
            .execute(
                "INSERT INTO legal_holds (product_id, artifact_id, reason) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&product, &artifact.unwrap_or(""), &reason],
            )
            .await?;
        Ok(())
    }

    /// Lifts a legal hold; returns whether one existed.
    pub async fn lift_hold(
        &self,
        product: &str,
        artifact: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = self
            .client
            .execute(
                "DELETE FROM legal_holds WHERE product_id = $1 AND artifact_id = $2",
                &[&product, &artifact.unwrap_or("")],
            )
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_with_units_and_refuse_junk() {
        assert_eq!(parse_window("90d").unwrap(), DEFAULT_WINDOW);
        assert_eq!(parse_window("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_window("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_window("1w").is_err());
        assert!(parse_window("d").is_err());
        assert!(parse_window("99999999999999999999d").is_err());
    }
}
