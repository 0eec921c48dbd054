//! The decision index the tiles service keeps beside the tiles (`DIR/index/<partition>/`), so
//! that `bucket audit prove` and the read API find a decision's leaf without reading Kafka:
//! intent id → (partition, seq) and accepted (product, artifact, version) → (partition, seq).
//!
//! Layout: per partition, [`BUCKETS`] append-only files `NN.idx` (NN = bucket in hex), one line
//! per key: `<32 hex: key hash> <seq> <16 hex: product hash>\n`. The key hash is the first 16
//! bytes of SHA-256 of the key (`intent\0<id>` or `version\0<product>\0<artifact>\0<version>`),
//! so ids need no escaping and a bucket holds about 1/64 of a partition's keys (≈13 MB at 10 M
//! decisions, scanned with `memmem` in a few ms). The product hash lets the API refuse another
//! product's decision without decoding it. The files are written in seq order and truncated back
//! to the saved lengths on restart, so they equal a rebuild byte for byte.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Bucket files per partition.
pub const BUCKETS: usize = 64;

/// What to look a decision up by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Key {
    /// The intent id of the decision.
    Intent(String),
    /// The accepted version of an artifact.
    Version {
        /// Product id.
        product: String,
        /// Artifact id.
        artifact: String,
        /// Version number.
        version: i64,
    },
}

impl Key {
    /// The 16-byte key hash.
    fn digest(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        match self {
            Key::Intent(id) => {
                h.update(b"intent\0");
                h.update(id.as_bytes());
            }
            Key::Version {
                product,
                artifact,
                version,
            } => {
                h.update(b"version\0");
                h.update(product.as_bytes());
                h.update(b"\0");
                h.update(artifact.as_bytes());
                h.update(b"\0");
                h.update(version.to_string().as_bytes());
            }
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }
}

/// The 8-byte product hash stored with each key, as hex.
pub fn product_hash(product: &str) -> String {
    hex::encode(&Sha256::digest(product.as_bytes())[..8])
}

/// One index hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Audit partition.
    pub partition: i32,
    /// Chain seq (the leaf index).
    pub seq: u64,
    /// [`product_hash`] of the decision's product.
    pub product_hash: String,
}

/// Index failures.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Filesystem trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The files are shorter than the saved state says (lost writes, or another directory).
    #[error("index {0} is shorter than its saved length; delete the tiles directory and rebuild")]
    Short(String),
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> IndexError {
    move |source| IndexError::Io { context, source }
}

/// The index directory of `partition` under the tiles directory `dir`.
pub fn partition_dir(dir: &Path, partition: i32) -> PathBuf {
    dir.join("index").join(partition.to_string())
}

fn bucket_path(pdir: &Path, bucket: usize) -> PathBuf {
    pdir.join(format!("{bucket:02x}.idx"))
}

fn bucket_of(digest: &[u8; 16]) -> usize {
    usize::from(digest[0]) % BUCKETS
}

/// Appends one partition's keys; buffered until [`IndexWriter::flush`].
#[derive(Debug)]
pub struct IndexWriter {
    dir: PathBuf,
    lens: Vec<u64>,
    pending: Vec<Vec<u8>>,
}

impl IndexWriter {
    /// Opens the index of a partition at the saved lengths `lens` (empty: a new index), cutting
    /// off anything written after them (the replay writes it again, identically).
    pub fn open(dir: PathBuf, lens: &[u64]) -> Result<IndexWriter, IndexError> {
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut out = Vec::with_capacity(BUCKETS);
        for b in 0..BUCKETS {
            let want = lens.get(b).copied().unwrap_or(0);
            let p = bucket_path(&dir, b);
            match fs::metadata(&p) {
                Ok(m) if m.len() > want => {
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .open(&p)
                        .map_err(io(format!("opening {}", p.display())))?;
                    f.set_len(want)
                        .and_then(|()| f.sync_all())
                        .map_err(io(format!("truncating {}", p.display())))?;
                }
                Ok(m) if m.len() < want => return Err(IndexError::Short(p.display().to_string())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && want == 0 => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(IndexError::Short(p.display().to_string()));
                }
                Err(e) => return Err(io(format!("reading {}", p.display()))(e)),
            }
            out.push(want);
        }
        Ok(IndexWriter {
            dir,
            lens: out,
            pending: vec![Vec::new(); BUCKETS],
        })
    }

    /// Adds `key` → `seq` of a decision of `product`.
    pub fn add(&mut self, key: &Key, seq: u64, product: &str) {
        let d = key.digest();
        let line = format!("{} {seq} {}\n", hex::encode(d), product_hash(product));
        if let Some(p) = self.pending.get_mut(bucket_of(&d)) {
            p.extend_from_slice(line.as_bytes());
        }
    }

    /// Writes and syncs what was added; returns the lengths to save with the state.
    pub fn flush(&mut self) -> Result<&[u64], IndexError> {
        for (b, pending) in self.pending.iter_mut().enumerate() {
            if pending.is_empty() {
                continue;
            }
            let p = bucket_path(&self.dir, b);
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(io(format!("opening {}", p.display())))?;
            f.write_all(pending)
                .and_then(|()| f.sync_data())
                .map_err(io(format!("appending to {}", p.display())))?;
            if let Some(l) = self.lens.get_mut(b) {
                *l += pending.len() as u64;
            }
            pending.clear();
        }
        Ok(&self.lens)
    }
}

/// The partitions with an index under `dir`, sorted.
pub fn partitions(dir: &Path) -> Result<Vec<i32>, IndexError> {
    let idx = dir.join("index");
    let mut out = Vec::new();
    let entries = match fs::read_dir(&idx) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(format!("listing {}", idx.display()))(e)),
    };
    for e in entries.flatten() {
        if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            out.push(p);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Every hit of `key` in every partition's index under `dir`, by partition then seq. A torn
/// last line (a write in progress) is skipped.
pub fn lookup(dir: &Path, key: &Key) -> Result<Vec<Hit>, IndexError> {
    let d = key.digest();
    let needle = hex::encode(d);
    let mut out = Vec::new();
    for partition in partitions(dir)? {
        let p = bucket_path(&partition_dir(dir, partition), bucket_of(&d));
        let data = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(format!("reading {}", p.display()))(e)),
        };
        for at in memchr::memmem::find_iter(&data, needle.as_bytes()) {
            if at > 0 && data.get(at - 1) != Some(&b'\n') {
                continue;
            }
            let rest = &data[at + needle.len()..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                continue;
            };
            let line = String::from_utf8_lossy(&rest[..end]);
            let mut parts = line.split_whitespace();
            if let (Some(seq), Some(ph), None) = (parts.next(), parts.next(), parts.next())
                && let Ok(seq) = seq.parse::<u64>()
            {
                out.push(Hit {
                    partition,
                    seq,
                    product_hash: ph.to_string(),
                });
            }
        }
    }
    out.sort_by_key(|h| (h.partition, h.seq));
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_after_a_truncating_reopen_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let v = |n| Key::Version {
            product: "p".into(),
            artifact: "a/b\tc".into(),
            version: n,
        };
        let mut w = IndexWriter::open(partition_dir(dir.path(), 2), &[]).unwrap();
        for i in 0..500u64 {
            w.add(&Key::Intent(format!("i{i}")), i, "p");
            w.add(&v(i as i64), i, "p");
        }
        let saved = w.flush().unwrap().to_vec();
        w.add(&Key::Intent("late".into()), 900, "q");
        w.flush().unwrap();
        assert_eq!(
            lookup(dir.path(), &Key::Intent("late".into()))
                .unwrap()
                .len(),
            1
        );
        // Restart at the saved lengths: what came after is cut off.
        drop(IndexWriter::open(partition_dir(dir.path(), 2), &saved).unwrap());
        assert!(
            lookup(dir.path(), &Key::Intent("late".into()))
                .unwrap()
                .is_empty()
        );
        let hits = lookup(dir.path(), &Key::Intent("i42".into())).unwrap();
        assert_eq!(
            hits,
            vec![Hit {
                partition: 2,
                seq: 42,
                product_hash: product_hash("p")
            }]
        );
        assert_eq!(lookup(dir.path(), &v(7)).unwrap()[0].seq, 7);
        assert!(lookup(dir.path(), &v(700)).unwrap().is_empty());
        // A torn line at the end of a bucket.
        let d = Key::Intent("torn".into()).digest();
        let p = bucket_path(&partition_dir(dir.path(), 2), bucket_of(&d));
        let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
        write!(f, "{} 12", hex::encode(d)).unwrap();
        assert!(
            lookup(dir.path(), &Key::Intent("torn".into()))
                .unwrap()
                .is_empty()
        );
        // Shorter than saved: refused.
        let long: Vec<u64> = saved.iter().map(|l| l + 1000).collect();
        assert!(IndexWriter::open(partition_dir(dir.path(), 2), &long).is_err());
    }
}
