//! The reads of stored versions the API serves, as one trait both storage backends answer:
//! PostgreSQL through the reader pool ([`Reader`]) and the filesystem's data directory
//! ([`FsStore`]). Decisions, receipts and usage are not here: they come from the audit index
//! (`audit_decisions`) and the usage counters (`product_usage`), which only PostgreSQL keeps
//! (the filesystem backend runs no audit indexer), so [`Reader`] serves them directly.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

use super::read::{Reader, StorageReadError, VersionView};
use crate::sink::StoreError;
use crate::sink::store::FsStore;
use crate::sink::store::fs::IndexEntry;

/// Where the API reads artifact versions from, whichever backend stores them.
pub trait VersionReads: Send + Sync {
    /// The version `version` (the latest, a tombstone when deleted, when None) and its content
    /// size, without the content: what the content limits are charged before it is read.
    fn size_of<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        version: Option<i64>,
    ) -> BoxFuture<'a, Result<Option<(i64, i64)>, StorageReadError>>;

    /// One version with content.
    fn version<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        version: i64,
    ) -> BoxFuture<'a, Result<Option<VersionView>, StorageReadError>>;

    /// Versions below `before`, newest first, at most `limit` (without content).
    fn history<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        before: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<VersionView>, StorageReadError>>;
}

impl VersionReads for Reader {
    fn size_of<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        version: Option<i64>,
    ) -> BoxFuture<'a, Result<Option<(i64, i64)>, StorageReadError>> {
        Box::pin(Reader::size_of(self, product, artifact, version))
    }

    fn version<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        version: i64,
    ) -> BoxFuture<'a, Result<Option<VersionView>, StorageReadError>> {
        Box::pin(Reader::version(self, product, artifact, version))
    }

    fn history<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        before: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<VersionView>, StorageReadError>> {
        Box::pin(Reader::history(self, product, artifact, before, limit))
    }
}

/// A version of the data directory as the API returns it; the content only when asked for.
fn view_of(
    store: &FsStore,
    (entry, stored_at): (IndexEntry, SystemTime),
    with_content: bool,
) -> Result<VersionView, StoreError> {
    let content = if with_content {
        store.content(&entry)?
    } else {
        None
    };
    let stored_at_ms = stored_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(VersionView {
        row: entry.row,
        stored_at_ms,
        content_base64: None,
        content,
        content_object: None,
    })
}

/// Runs blocking file reads off the async workers.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StorageReadError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| StorageReadError::Store(StoreError::Fs(std::io::Error::other(e))))?
        .map_err(StorageReadError::Store)
}

impl VersionReads for FsStore {
    fn size_of<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        version: Option<i64>,
    ) -> BoxFuture<'a, Result<Option<(i64, i64)>, StorageReadError>> {
        let (store, product, artifact) = (self.clone(), product.to_string(), artifact.to_string());
        Box::pin(blocking(move || {
            let found = match version {
                Some(v) => store.version_of(&product, &artifact, v)?,
                None => store.versions_of(&product, &artifact)?.pop(),
            };
            Ok(found.map(|(e, _)| (e.row.version, e.row.content_size)))
        }))
    }

    fn version<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        version: i64,
    ) -> BoxFuture<'a, Result<Option<VersionView>, StorageReadError>> {
        let (store, product, artifact) = (self.clone(), product.to_string(), artifact.to_string());
        Box::pin(blocking(move || {
            store
                .version_of(&product, &artifact, version)?
                .map(|found| view_of(&store, found, true))
                .transpose()
        }))
    }

    fn history<'a>(
        &'a self,
        product: &'a str,
        artifact: &'a str,
        before: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<VersionView>, StorageReadError>> {
        let (store, product, artifact) = (self.clone(), product.to_string(), artifact.to_string());
        let limit = usize::try_from(limit).unwrap_or(0);
        Box::pin(blocking(move || {
            store
                .versions_of(&product, &artifact)?
                .into_iter()
                .rev()
                .filter(|(e, _)| e.row.version < before)
                .take(limit)
                .map(|found| view_of(&store, found, false))
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::store::Accepted;
    use crate::wire::accepted::tests::sample;

    fn accepted(offset: i64, version: i64, content: Option<&[u8]>) -> Accepted {
        let mut a = sample();
        a.version = version;
        a.intent_id = format!("i{version}");
        a.deleted = content.is_none();
        a.content = content.map(<[u8]>::to_vec);
        a.content_size = content.map_or(0, |c| c.len() as i64);
        Accepted {
            topic: "bucket.accepted".into(),
            partition: 0,
            offset,
            artifact: a,
        }
    }

    #[tokio::test]
    async fn the_data_directory_answers_the_version_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let batch = [
            accepted(0, 1, Some(b"one")),
            accepted(1, 2, Some(b"two!")),
            accepted(2, 3, None),
        ];
        store.write_batch_blocking(&batch, &[]).unwrap();
        let (p, a) = (
            &batch[0].artifact.product_id,
            &batch[0].artifact.artifact_id,
        );
        let reads: &dyn VersionReads = &store;
        assert_eq!(reads.size_of(p, a, None).await.unwrap(), Some((3, 0)));
        assert_eq!(reads.size_of(p, a, Some(2)).await.unwrap(), Some((2, 4)));
        assert_eq!(reads.size_of(p, a, Some(9)).await.unwrap(), None);
        assert_eq!(reads.size_of(p, "other", None).await.unwrap(), None);
        let two = reads.version(p, a, 2).await.unwrap().unwrap();
        assert_eq!(two.content.as_deref(), Some(&b"two!"[..]));
        assert_eq!(two.row.intent_id, "i2");
        assert!(two.stored_at_ms > 0);
        let tombstone = reads.version(p, a, 3).await.unwrap().unwrap();
        assert!(tombstone.row.deleted && tombstone.content.is_none());
        let versions =
            |page: Vec<VersionView>| -> Vec<i64> { page.iter().map(|v| v.row.version).collect() };
        let page = reads.history(p, a, i64::MAX, 2).await.unwrap();
        assert!(page.iter().all(|v| v.content.is_none()));
        assert_eq!(versions(page), [3, 2]);
        assert_eq!(versions(reads.history(p, a, 2, 5).await.unwrap()), [1]);
        assert!(
            reads
                .history(p, "other", i64::MAX, 5)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
