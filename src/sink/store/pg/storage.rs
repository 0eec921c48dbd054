//! PostgreSQL as a [`Storage`]: opening the sink's store (connect with backoff, check the
//! schema, claim the object-store prefix) and the [`PgSink`] it writes through, the readiness
//! check, and reading what the database holds for reconcile.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::super::objects::{ContentObjects, ObjectError, ObjectStoreConfig};
use super::super::placement;
use super::super::storage::{BackendStore, Fingerprint, Storage, StorageSide};
use super::super::{Accepted, BatchReport, StoreError, Undecodable, VersionStore};
use super::{Store, quarantine_of};
use crate::sink::{RETRY_FIRST, RETRY_MAX, SinkError};

/// The PostgreSQL backend: the database at `url`, content in `objects` when configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStorage {
    /// libpq URL, e.g. `postgres://bucket_sink@127.0.0.1:5432/bucket`.
    pub url: String,
    /// The object store content goes to (`--content-store`); None keeps it in the row.
    pub objects: Option<ObjectStoreConfig>,
}

impl Storage for PgStorage {
    fn name(&self) -> &'static str {
        "pg"
    }

    fn open<'a>(
        &'a self,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Option<BackendStore>, SinkError>> {
        Box::pin(async move {
            let objects = self
                .objects
                .as_ref()
                .map(ContentObjects::open)
                .transpose()
                .map_err(|e| SinkError::Config(e.to_string()))?;
            let Some(store) = connect_until_up(&self.url, shutdown).await? else {
                return Ok(None);
            };
            store.check_schema().await.map_err(|e| {
                SinkError::Config(format!(
                    "database schema not ready ({e}); run the migrations as the owner role first"
                ))
            })?;
            if let Some(o) = &objects {
                claim_until_answered(o, &store, shutdown).await?;
                tracing::info!(content_store = o.url(), "content goes to the object store");
            }
            let sink = PgSink {
                store,
                url: self.url.clone(),
                objects,
            };
            Ok(Some(Box::new(sink) as BackendStore))
        })
    }

    fn storage_side<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<StorageSide, StoreError>> {
        Box::pin(async move {
            let objects = self
                .objects
                .as_ref()
                .map(ContentObjects::open)
                .transpose()?;
            let store = Store::connect(&self.url).await?;
            store.storage_side(topic, objects.as_ref()).await
        })
    }

    /// `SELECT 1` on a fresh connection, and a one-key listing of the object store when
    /// content goes to one (each within 3 s).
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            probe(&self.url).await?;
            let Some(config) = &self.objects else {
                return Ok(());
            };
            let objects = ContentObjects::open(config).map_err(|e| e.to_string())?;
            match tokio::time::timeout(Duration::from_secs(3), objects.probe_read()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("object store: no answer within 3 s".into()),
            }
        })
    }
}

/// Claims the object-store prefix for this database (its `<prefix>/deployment` marker),
/// retrying while the store does not answer; another database's prefix stops the sink.
async fn claim_until_answered(
    objects: &ContentObjects,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<(), SinkError> {
    let deployment = store
        .deployment_id()
        .await
        .map_err(|e| SinkError::Config(format!("reading the deployment identity: {e}")))?;
    let mut delay = crate::sink::RETRY_FIRST;
    loop {
        match objects.claim(&deployment).await {
            Ok(()) => return Ok(()),
            Err(e @ ObjectError::Config(_)) => return Err(SinkError::Config(e.to_string())),
            Err(error) => tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                "object store unavailable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(crate::sink::RETRY_MAX);
    }
}

/// The PostgreSQL store with the URL it reconnects to.
#[derive(Debug)]
pub struct PgSink {
    /// The connection.
    pub store: Store,
    /// Where to reconnect.
    pub url: String,
    /// Where content goes when not in the row (None: the `content` column).
    pub objects: Option<ContentObjects>,
}

impl VersionStore for PgSink {
    fn write_batch<'a>(
        &'a mut self,
        accepted: &'a [Accepted],
        undecodable: &'a [Undecodable],
    ) -> BoxFuture<'a, Result<BatchReport, StoreError>> {
        Box::pin(self.write_placed(accepted, undecodable))
    }

    fn recover(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.store.is_closed() {
                self.store = Store::connect(&self.url).await?;
                tracing::info!("reconnected to the database");
            }
            Ok(())
        })
    }
}

impl PgSink {
    /// A batch written with content in the object store when there is one; a version whose
    /// content does not hash to its digest is quarantined rather than uploaded.
    async fn write_placed(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
    ) -> Result<BatchReport, StoreError> {
        let Some(objects) = &self.objects else {
            return self.store.write_batch(accepted, undecodable).await;
        };
        let (good, bad) = placement::split_by_digest(accepted);
        if bad.is_empty() {
            return self
                .store
                .write_batch_placed(accepted, undecodable, Some(objects))
                .await;
        }
        let good: Vec<Accepted> = good.into_iter().cloned().collect();
        let mut quarantined = undecodable.to_vec();
        for a in &bad {
            tracing::warn!(partition = a.partition, offset = a.offset,
                product = %a.artifact.product_id, artifact = %a.artifact.artifact_id,
                "content does not hash to its digest; quarantined");
            quarantined.push(quarantine_of(
                a,
                "content does not hash to content_sha256".into(),
            ));
        }
        let mut report = self
            .store
            .write_batch_placed(&good, &quarantined, Some(objects))
            .await?;
        report.versions_quarantined += bad.len();
        Ok(report)
    }
}

/// Connects to the database, retrying with backoff; None if shutdown came first.
pub(crate) async fn connect_until_up(
    url: &str,
    shutdown: &CancellationToken,
) -> Result<Option<Store>, SinkError> {
    let mut delay = RETRY_FIRST;
    loop {
        match Store::connect(url).await {
            Ok(store) => return Ok(Some(store)),
            Err(e @ StoreError::Config(_)) => return Err(e.into()),
            Err(error) => tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                "database unavailable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// Connects and runs `SELECT 1`, within 3 s (the admin server's storage check).
pub(crate) async fn probe(url: &str) -> Result<(), String> {
    let attempt = async {
        let (client, conn) = crate::sink::store::pg::tls::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let task = tokio::spawn(conn);
        let r = client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        drop(client);
        task.abort();
        r
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(r) => r,
        Err(_) => Err("no answer within 3 s".into()),
    }
}

impl Store {
    /// Reads storage for reconciliation: every version's intent and the SHA-256 of its stored
    /// bytes (computed by the database for content in the row, by reading the object for
    /// content in `objects`: each distinct object once, as a stream), purged keys and
    /// quarantined coordinates of `topic`. A referenced object that is missing or unreadable
    /// shows as a stored digest of `missing object <key>: <why>`, so `diff` reports a mismatch.
    pub async fn storage_side(
        &self,
        topic: &str,
        objects: Option<&ContentObjects>,
    ) -> Result<StorageSide, StoreError> {
        let mut side = StorageSide::default();
        let rows = self
            .client
            .query(
                "SELECT product_id, artifact_id, version, intent_id, \
                 coalesce(encode(sha256(content), 'hex'), ''), content_object \
                 FROM artifact_versions",
                &[],
            )
            .await?;
        let mut referenced: BTreeMap<String, String> = BTreeMap::new();
        for r in &rows {
            if let Some(key) = r.try_get::<_, Option<String>>(5)? {
                referenced.insert(key, String::new());
            }
        }
        if !referenced.is_empty() {
            let Some(objects) = objects else {
                return Err(StoreError::Corrupt(format!(
                    "{} stored versions keep their content in an object store; \
                     name it with --content-store",
                    referenced.len()
                )));
            };
            let digests: Vec<(String, String)> = futures::stream::iter(referenced.into_keys())
                .map(|key| async move {
                    let path = object_store::path::Path::from(key.as_str());
                    let digest = match objects.digest(&path).await {
                        Ok(d) => d,
                        Err(e) => format!("missing object {key}: {e}"),
                    };
                    (key, digest)
                })
                .buffer_unordered(8)
                .collect()
                .await;
            referenced = digests.into_iter().collect();
        }
        for r in rows {
            let key: Option<String> = r.try_get(5)?;
            let content_sha256 = match key {
                Some(key) => referenced.get(&key).cloned().unwrap_or_default(),
                None => r.try_get(4)?,
            };
            side.versions.insert(
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
                Fingerprint {
                    intent_id: r.try_get(3)?,
                    content_sha256,
                },
            );
        }
        for r in self
            .client
            .query(
                "SELECT product_id, artifact_id, version FROM purged_versions",
                &[],
            )
            .await?
        {
            side.purged
                .insert((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        for r in self
            .client
            .query(
                "SELECT \"partition\", \"offset\" FROM sink_undecodable WHERE topic = $1",
                &[&topic],
            )
            .await?
        {
            side.quarantined.insert((r.try_get(0)?, r.try_get(1)?));
        }
        Ok(side)
    }
}
