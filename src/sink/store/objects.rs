//! Artifact content in object storage behind the S3 API (ADR 0018): one object per product and
//! SHA-256 digest, written by the sink before the row that references it, read by the API as a
//! stream, checked by reconcile and collected by purge and `bucket sink gc-objects`.
//!
//! Keys are `<prefix>/content/<product>/sha256/<digest>`: deduplication is per product, so one
//! product's purge, legal hold or erasure never depends on another product's rows, and no key
//! is ever shared across products. The client is `object_store` (HTTPS only, the stack's CA
//! added when `--s3-ca-file` names one).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt,
    RetryConfig,
};
use sha2::{Digest, Sha256};

/// Where the content objects live and how to reach them (`--content-store` and the `--s3-*`
/// flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// The S3 endpoint, `https://host:port` (None: AWS for the region).
    pub endpoint: Option<String>,
    /// Region the requests are signed for.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// PEM file of a CA to trust beside the system roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

/// Why an object store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The configuration is unusable (bad URL, plain HTTP, unreadable CA): retrying cannot help.
    #[error("object store configuration: {0}")]
    Config(String),
    /// The store failed or refused (outage, credentials, ...): retry.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// The content objects of every product, behind one S3 bucket; cheap to clone.
#[derive(Clone)]
pub struct ContentObjects {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl std::fmt::Debug for ContentObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentObjects")
            .field("url", &self.url)
            .finish()
    }
}

/// `s3://bucket/prefix` as (bucket, prefix).
fn parse_url(url: &str) -> Result<(String, Path), ObjectError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| ObjectError::Config(format!("{url:?} is not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(ObjectError::Config(format!("{url:?} names no bucket")));
    }
    let prefix = Path::parse(prefix.trim_matches('/'))
        .map_err(|e| ObjectError::Config(format!("bad prefix in {url:?}: {e}")))?;
    Ok((bucket.to_string(), prefix))
}

impl ContentObjects {
    /// Opens the store the configuration names (no request is made yet).
    pub fn open(config: &ObjectStoreConfig) -> Result<ContentObjects, ObjectError> {
        let (bucket, prefix) = parse_url(&config.url)?;
        let mut options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ObjectError::Config(format!("{}: {e}", ca.display())))?;
            for cert in object_store::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ObjectError::Config(format!("{}: {e}", ca.display())))?
            {
                options = options.with_root_certificate(cert);
            }
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_client_options(options)
            // Short retries: the sink and the API have their own retry loops and must see an
            // outage quickly rather than block a transaction for minutes.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            if !endpoint.starts_with("https://") {
                return Err(ObjectError::Config(format!(
                    "S3 endpoint {endpoint:?} is not https:// (content travels over TLS only)"
                )));
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        Ok(ContentObjects {
            store: Arc::new(builder.build()?),
            prefix,
            url: config.url.clone(),
        })
    }

    /// The URL it was opened from (logs, status).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where one product's content with this digest lives.
    pub fn key(&self, product: &str, sha256_hex: &str) -> Path {
        self.products()
            .join(product)
            .join("sha256")
            .join(sha256_hex)
    }

    /// The folder every product's content lives under.
    fn products(&self) -> Path {
        self.prefix.clone().join("content")
    }

    /// The folder of one product's content.
    pub fn product_prefix(&self, product: &str) -> Path {
        self.products().join(product)
    }

    /// (product, digest) of a key made by [`ContentObjects::key`]; None for any other object.
    pub fn parse_key(&self, key: &Path) -> Option<(String, String)> {
        let parts: Vec<_> = key.prefix_match(&self.products())?.collect();
        match parts.as_slice() {
            [product, kind, digest] if kind.as_ref() == "sha256" => {
                let product = percent_encoding::percent_decode_str(product.as_ref())
                    .decode_utf8()
                    .ok()?
                    .into_owned();
                Some((product, digest.as_ref().to_string()))
            }
            _ => None,
        }
    }

    /// Writes the content under its key (idempotent: the same key always holds the same bytes).
    pub async fn put(&self, key: &Path, content: Bytes) -> Result<(), ObjectError> {
        self.store.put(key, content.into()).await?;
        Ok(())
    }

    /// The object's size, or None when it does not exist.
    pub async fn size(&self, key: &Path) -> Result<Option<u64>, ObjectError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The object (or a byte range of it) as a stream; NotFound is an error here.
    pub async fn get(
        &self,
        key: &Path,
        range: Option<Range<u64>>,
    ) -> Result<GetResult, ObjectError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        Ok(self.store.get_opts(key, options).await?)
    }

    /// The whole object in memory (JSON answers that embed content; reconcile's deep check).
    pub async fn read_all(&self, key: &Path) -> Result<Bytes, ObjectError> {
        Ok(self.get(key, None).await?.bytes().await?)
    }

    /// The SHA-256 of the object as stored, read as a stream (bounded memory).
    pub async fn digest(&self, key: &Path) -> Result<String, ObjectError> {
        let mut stream = self.get(key, None).await?.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.try_next().await? {
            hasher.update(&chunk);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Deletes the object; one that is already gone is not an error.
    pub async fn delete(&self, key: &Path) -> Result<(), ObjectError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every content object (all products), for the orphan collector.
    pub fn list(&self) -> BoxStream<'static, Result<ObjectMeta, ObjectError>> {
        self.store
            .list(Some(&self.products()))
            .map(|r| r.map_err(ObjectError::from))
            .boxed()
    }

    /// Where the marker naming the database that owns this prefix lives.
    fn marker(&self) -> Path {
        self.prefix.clone().join("deployment")
    }

    /// The database that owns this prefix, per its marker; None when no marker exists yet.
    pub async fn owner(&self) -> Result<Option<String>, ObjectError> {
        match self.store.get(&self.marker()).await {
            Ok(r) => Ok(Some(
                String::from_utf8_lossy(&r.bytes().await?)
                    .trim()
                    .to_string(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes `deployment` (a database's identity) the owner of this prefix if it has none, and
    /// refuses a prefix another database owns (the sink at start and `migrate-content`).
    pub async fn claim(&self, deployment: &str) -> Result<(), ObjectError> {
        match self.owner().await? {
            None => {
                let marker = Bytes::from(deployment.to_string());
                self.store.put(&self.marker(), marker.into()).await?;
                Ok(())
            }
            Some(owner) => self.check_owner(&owner, deployment),
        }
    }

    /// Refuses to delete anything under a prefix that `deployment` does not own (purge's
    /// collection and `gc-objects`): without a marker nothing was ever stored there by a sink.
    pub async fn ensure_owned_by(&self, deployment: &str) -> Result<(), ObjectError> {
        match self.owner().await? {
            Some(owner) => self.check_owner(&owner, deployment),
            None => Err(ObjectError::Config(format!(
                "{} has no deployment marker: no sink has stored content there; refusing to delete",
                self.url
            ))),
        }
    }

    fn check_owner(&self, owner: &str, deployment: &str) -> Result<(), ObjectError> {
        if owner == deployment {
            return Ok(());
        }
        Err(ObjectError::Config(format!(
            "{} belongs to database {owner}, not to this one ({deployment}): one prefix per \
             database (docs/runbook.md, \"Content in object storage\")",
            self.url
        )))
    }

    /// A list of at most one key: Ok when the store answers and the credentials may read.
    pub async fn probe_read(&self) -> Result<(), ObjectError> {
        let mut listing = self.store.list(Some(&self.products()));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.into()),
        }
    }
}

/// The advisory lock key that serialises writers and collectors of one product's object: a
/// sink holds it shared from before its upload until its row commits, a collector exclusively
/// while it checks that no row references the object and deletes it, so a collector can never
/// delete an object a committing row is about to reference.
pub fn lock_key(product: &str, sha256_hex: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(b"bucket-content\0");
    h.update(product.as_bytes());
    h.update([0]);
    h.update(sha256_hex.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_be_bytes(first)
}

/// Hex SHA-256 of `content`.
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(url: &str) -> ContentObjects {
        ContentObjects::open(&ObjectStoreConfig {
            url: url.into(),
            endpoint: Some("https://127.0.0.1:8333".into()),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            ca_file: None,
        })
        .unwrap()
    }

    #[test]
    fn keys_are_per_product_and_digest_and_parse_back() {
        let o = objects("s3://bucket/tenant-a");
        let key = o.key("product-demo", "ab12");
        assert_eq!(key.as_ref(), "tenant-a/content/product-demo/sha256/ab12");
        assert_eq!(
            o.parse_key(&key),
            Some(("product-demo".into(), "ab12".into()))
        );
        let odd = o.key("a/b c", "ab12");
        assert_eq!(o.parse_key(&odd), Some(("a/b c".into(), "ab12".into())));
        assert_ne!(o.key("p1", "ab12"), o.key("p2", "ab12"));
        assert_eq!(o.parse_key(&Path::from("tenant-a/probe/sink")), None);
        let bare = objects("s3://bucket");
        assert_eq!(bare.key("p", "d").as_ref(), "content/p/sha256/d");
    }

    #[test]
    fn only_https_s3_urls_with_a_bucket_open() {
        let cfg = |url: &str, endpoint: &str| ObjectStoreConfig {
            url: url.into(),
            endpoint: Some(endpoint.into()),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            ca_file: None,
        };
        assert!(ContentObjects::open(&cfg("s3://b", "https://h:1")).is_ok());
        for (url, endpoint) in [
            ("s3://b", "http://h:1"),
            ("s3://", "https://h:1"),
            ("gs://b", "https://h:1"),
        ] {
            assert!(
                matches!(
                    ContentObjects::open(&cfg(url, endpoint)),
                    Err(ObjectError::Config(_))
                ),
                "{url} {endpoint}"
            );
        }
    }

    #[test]
    fn lock_keys_differ_by_product_and_digest() {
        assert_eq!(lock_key("p", "d"), lock_key("p", "d"));
        assert_ne!(lock_key("p", "d"), lock_key("q", "d"));
        assert_ne!(lock_key("p", "d"), lock_key("p", "e"));
        assert_ne!(lock_key("pd", ""), lock_key("p", "d"));
    }
}
