//! Where a batch's content goes before its rows are inserted (ADR 0018): the digest check that
//! keeps content out of an object named by another digest, and the uploads, each under the
//! object's shared advisory lock, done inside the batch's transaction.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use tokio_postgres::Transaction;

use super::objects::{self, ContentObjects};
use super::{Accepted, StoreError};

/// Uploads of one batch in flight at once. Measured against the local versitygw with 1 KiB
/// contents: 8 in flight stored 875 versions/s, 32 stored 466/s (the server, not the client, is
/// the bound; docs/scale-readiness.md, "Content at the seeds' scale").
pub(crate) const UPLOADS_IN_FLIGHT: usize = 8;

/// The batch split into versions that may be placed and versions whose content does not hash
/// to the digest the gate stamped (an object is named by its digest, so those would be stored
/// under a wrong name: the caller quarantines them, never uploads them).
pub(super) fn split_by_digest(accepted: &[Accepted]) -> (Vec<&Accepted>, Vec<&Accepted>) {
    accepted.iter().partition(|a| {
        let v = &a.artifact;
        v.content
            .as_deref()
            .is_none_or(|c| objects::sha256_hex(c) == v.content_sha256)
    })
}

/// Puts each version's content where its row will say it is: with `objects`, every distinct
/// (product, digest) of the batch is locked shared (until the transaction ends) and uploaded,
/// [`UPLOADS_IN_FLIGHT`] at a time, and the version's key returned; without, every key is None (content in
/// the row). The digest is the one the gate stamped; [`split_by_digest`] has already set
/// aside any version whose content does not hash to it.
pub(super) async fn place_content(
    tx: &Transaction<'_>,
    objects: Option<&ContentObjects>,
    accepted: &[Accepted],
) -> Result<Vec<Option<String>>, StoreError> {
    let Some(objects) = objects else {
        return Ok(vec![None; accepted.len()]);
    };
    let mut distinct: BTreeMap<(&str, &str), &[u8]> = BTreeMap::new();
    let keys = accepted
        .iter()
        .map(|a| {
            let v = &a.artifact;
            let content = v.content.as_deref().filter(|_| !v.deleted)?;
            distinct.insert((&v.product_id, &v.content_sha256), content);
            Some(objects.key(&v.product_id, &v.content_sha256).to_string())
        })
        .collect();
    let lock = tx
        .prepare("SELECT pg_advisory_xact_lock_shared($1)")
        .await?;
    let lock_keys: Vec<i64> = distinct
        .keys()
        .map(|(product, digest)| objects::lock_key(product, digest))
        .collect();
    let lock = &lock;
    try_join_all(
        lock_keys
            .iter()
            .map(|k| async move { tx.execute(lock, &[k]).await }),
    )
    .await?;
    let uploads: Vec<(object_store::path::Path, bytes::Bytes)> = distinct
        .into_iter()
        .map(|((product, digest), content)| {
            let key = objects.key(product, digest);
            (key, bytes::Bytes::copy_from_slice(content))
        })
        .collect();
    futures::stream::iter(uploads)
        .map(|(key, content)| async move { objects.put(&key, content).await })
        .buffer_unordered(UPLOADS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(keys)
}
