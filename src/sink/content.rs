//! Content objects' housekeeping (docs/decisions/0018): deleting the objects no version
//! references any more (after a purge, and `bucket sink gc-objects` for uploads whose row never
//! committed), and `bucket sink migrate-content`, which moves content out of PostgreSQL's
//! `content` column into objects, resumably and verified by digest.
//!
//! Every deletion takes the object's advisory lock exclusively and checks for a referencing
//! row under it; the sink holds the same lock shared from before its upload until its row
//! commits. So an object is deleted only when no committed row names it and no writer is
//! between its upload and its commit.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio_postgres::Row;

use super::store::objects::{self, ContentObjects};
use super::store::{Store, StoreError};

/// "Does a version of this product still keep its content in this object?"
const REFERENCED: &str = "SELECT 1 FROM artifact_versions WHERE product_id = $1 \
     AND content_sha256 = $2 AND content_object IS NOT NULL LIMIT 1";

/// What a collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CollectReport {
    /// Objects looked at.
    pub examined: usize,
    /// Objects deleted because no version references them.
    pub deleted: usize,
    /// Objects under the content prefix whose name is not a content key (left alone).
    pub foreign: usize,
}

/// What a `migrate-content` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// Versions with content in the row that this batch looked at (0: nothing is left).
    pub scanned: usize,
    /// Versions whose content moved into an object.
    pub moved: usize,
    /// Bytes moved.
    pub moved_bytes: u64,
    /// Versions left in the row because their content does not hash to their digest (an
    /// incident: docs/runbook.md, "Content migration").
    pub digest_mismatches: Vec<String>,
}

impl Store {
    /// Deletes the object of `product`'s content `sha256` unless a version references it;
    /// true when it was deleted (or was already gone).
    pub async fn delete_if_unreferenced(
        &mut self,
        objects: &ContentObjects,
        product: &str,
        sha256: &str,
    ) -> Result<bool, StoreError> {
        let tx = self.client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&objects::lock_key(product, sha256)],
        )
        .await?;
        let referenced = tx.query_opt(REFERENCED, &[&product, &sha256]).await?;
        if referenced.is_none() {
            objects.delete(&objects.key(product, sha256)).await?;
        }
        tx.commit().await?;
        Ok(referenced.is_none())
    }

    /// After purge run `run_id`: deletes the objects of its purged versions that no remaining
    /// version references.
    pub async fn collect_purged(
        &mut self,
        objects: &ContentObjects,
        run_id: i64,
    ) -> Result<CollectReport, StoreError> {
        objects
            .ensure_owned_by(&self.deployment_id().await?)
            .await?;
        let rows = self
            .client
            .query(
                "SELECT DISTINCT product_id, content_sha256 FROM purged_versions \
                 WHERE run_id = $1 AND content_sha256 <> ''",
                &[&run_id],
            )
            .await?;
        let mut report = CollectReport::default();
        for r in rows {
            let (product, sha256): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            report.examined += 1;
            if self
                .delete_if_unreferenced(objects, &product, &sha256)
                .await?
            {
                report.deleted += 1;
            }
        }
        Ok(report)
    }

    /// Lists every content object and deletes those no version references: uploads whose row
    /// never committed (a sink killed mid-batch) and anything a purge could not finish.
    pub async fn collect_orphans(
        &mut self,
        objects: &ContentObjects,
    ) -> Result<CollectReport, StoreError> {
        objects
            .ensure_owned_by(&self.deployment_id().await?)
            .await?;
        let mut report = CollectReport::default();
        let mut listing = objects.list();
        while let Some(meta) = listing.try_next().await? {
            report.examined += 1;
            let Some((product, sha256)) = objects.parse_key(&meta.location) else {
                report.foreign += 1;
                continue;
            };
            let referenced = self
                .client
                .query_opt(REFERENCED, &[&product, &sha256])
                .await?;
            if referenced.is_none()
                && self
                    .delete_if_unreferenced(objects, &product, &sha256)
                    .await?
            {
                tracing::info!(object = %meta.location, "orphan content object deleted");
                report.deleted += 1;
            }
        }
        Ok(report)
    }

    /// Moves up to `batch` versions' content from the row into objects in one transaction and
    /// returns what it did; call until it moves nothing. Resumable: a version is moved (row
    /// updated) only in the transaction that uploaded and checked its object, so a run stopped
    /// at any point leaves each version either in its row or in a verified object. Needs the
    /// owner role (UPDATE on `artifact_versions`), and history's trigger lets the update through
    /// only while `bucket.moving_content` is on and only for this move (migration 0005).
    pub async fn migrate_content_batch(
        &mut self,
        objects: &ContentObjects,
        batch: i64,
        after: &mut Option<(String, String, i64)>,
    ) -> Result<MigrateReport, StoreError> {
        objects.claim(&self.deployment_id().await?).await?;
        let tx = self.client.transaction().await?;
        let (p, a, v) = after
            .clone()
            .unwrap_or((String::new(), String::new(), i64::MIN));
        let rows = tx
            .query(
                "SELECT product_id, artifact_id, version, content_sha256, content \
                 FROM artifact_versions WHERE content IS NOT NULL AND content_object IS NULL \
                 AND (product_id, artifact_id, version) > ($1, $2, $3) \
                 ORDER BY product_id, artifact_id, version LIMIT $4 FOR UPDATE",
                &[&p, &a, &v, &batch],
            )
            .await?;
        let mut report = MigrateReport {
            scanned: rows.len(),
            ..MigrateReport::default()
        };
        let mut moving: Vec<(String, String, i64, String, Vec<u8>)> = Vec::new();
        for r in &rows {
            let (product, artifact, version, sha256, content) = migrating(r)?;
            *after = Some((product.clone(), artifact.clone(), version));
            if objects::sha256_hex(&content) != sha256 {
                report
                    .digest_mismatches
                    .push(format!("{product}/{artifact} version {version}"));
                continue;
            }
            moving.push((product, artifact, version, sha256, content));
        }
        let lock = tx
            .prepare("SELECT pg_advisory_xact_lock_shared($1)")
            .await?;
        for (product, _, _, sha256, _) in &moving {
            tx.execute(&lock, &[&objects::lock_key(product, sha256)])
                .await?;
        }
        let uploads: Vec<(object_store::path::Path, bytes::Bytes)> = moving
            .iter()
            .map(|(product, _, _, sha256, content)| {
                let key = objects.key(product, sha256);
                (key, bytes::Bytes::copy_from_slice(content))
            })
            .collect();
        futures::stream::iter(uploads)
            .map(|(key, content)| async move {
                let len = content.len() as u64;
                objects.put(&key, content).await?;
                match objects.size(&key).await? {
                    Some(n) if n == len => Ok(()),
                    other => Err(StoreError::Corrupt(format!(
                        "object {key} reads back as {other:?} bytes, not {len}"
                    ))),
                }
            })
            .buffer_unordered(super::store::placement::UPLOADS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        tx.execute(
            "SELECT set_config('bucket.moving_content', 'on', true)",
            &[],
        )
        .await?;
        let update = tx
            .prepare(
                "UPDATE artifact_versions SET content = NULL, content_object = $4 \
                 WHERE product_id = $1 AND artifact_id = $2 AND version = $3",
            )
            .await?;
        for (product, artifact, version, sha256, content) in &moving {
            let key = objects.key(product, sha256).to_string();
            tx.execute(&update, &[product, artifact, version, &key])
                .await?;
            report.moved += 1;
            report.moved_bytes += content.len() as u64;
        }
        tx.commit().await?;
        Ok(report)
    }
}

fn migrating(r: &Row) -> Result<(String, String, i64, String, Vec<u8>), StoreError> {
    Ok((
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
    ))
}
