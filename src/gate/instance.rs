//! **One process per instance.** The instance id names the static group member and the
//! transactional id, and the state directory is the instance's own volume; two live processes
//! with the same id would fence each other in turn. Kafka fences the older one
//! (`FENCED_INSTANCE_ID`, a fenced producer, and the gate then stops); this lock refuses a
//! second process on the same state directory before it connects at all.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// File that marks a state directory as in use by a running instance.
pub const LOCK_FILE: &str = "LOCK";

/// Held for the life of the process: the instance's state directory is ours alone.
#[derive(Debug)]
pub struct InstanceLock {
    // Holding the open file holds the lock; the OS releases it when the process ends, even
    // on kill -9, so a crashed instance never leaves a stale lock behind.
    _file: File,
    path: PathBuf,
}

/// Why the instance may not start.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another live process holds the lock: the same instance id is already running here.
    #[error(
        "state directory in use: {holder} holds {path} (this process: instance {id:?}); every \
         instance needs its own --instance-id and --state-dir (docs/runbook.md, \"Instance ids\")"
    )]
    InUse {
        /// The instance id asked for.
        id: String,
        /// What the lock file says about its holder.
        holder: String,
        /// The lock file.
        path: String,
    },
    /// The id cannot name a directory.
    #[error("instance id {0:?} must be 1-200 characters of [A-Za-z0-9._-], not starting with '.'")]
    BadId(String),
    /// The directory or lock file could not be opened.
    #[error("state directory {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Refuses ids that cannot be a directory name, a `group.instance.id` and part of a
/// transactional id alike.
pub fn check_id(id: &str) -> Result<(), InstanceError> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InstanceError::BadId(id.to_string()))
    }
}

impl InstanceLock {
    /// Creates `dir` if needed and locks it for instance `id`, writing our pid into the lock
    /// file; fails at once (no waiting) when another process holds it.
    pub fn acquire(dir: &Path, id: &str) -> Result<InstanceLock, InstanceError> {
        check_id(id)?;
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| InstanceError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "held by another process".to_string(),
                    h => h.to_string(),
                };
                return Err(InstanceError::InUse {
                    id: id.to_string(),
                    holder,
                    path: path.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let note = format!("pid {} instance {id}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()))
            .map_err(io(&path))?;
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_of_the_same_directory_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("bucket-lock-{}", std::process::id()));
        let first = InstanceLock::acquire(&dir, "gate-0").unwrap();
        let err = InstanceLock::acquire(&dir, "gate-0").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, InstanceError::InUse { .. }), "{text}");
        assert!(text.contains("gate-0") && text.contains(&format!("pid {}", std::process::id())));
        drop(first);
        let again = InstanceLock::acquire(&dir, "gate-0").unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_that_cannot_name_a_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "gate 1", ".hidden", &"x".repeat(201)] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["gate-0", "bucket-gate-2.eu_1", "host.example.com"] {
            assert!(check_id(good).is_ok(), "{good:?} refused");
        }
    }
}
