//! Loading the policy file: reads it, resolves secret references (`env:NAME`, `file:path`
//! relative to the policy file) and validates it into a [`Policy`]. The shell side of
//! policy-as-code; parsing itself is pure ([`Policy::parse_with`]).

use std::path::{Path, PathBuf};

use crate::core::Policy;
use crate::core::policy::{PolicyError, SecretSource};

/// Why a policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("reading policy {path}: {source}")]
    Io {
        /// Policy file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("policy {path}: {source}")]
    Invalid {
        /// Policy file.
        path: PathBuf,
        /// What is wrong.
        source: PolicyError,
    },
}

/// Resolves secret references relative to a base directory.
pub struct FileSecrets {
    base: PathBuf,
}

impl FileSecrets {
    /// A source resolving `file:` references relative to `base`.
    pub fn new(base: impl Into<PathBuf>) -> FileSecrets {
        FileSecrets { base: base.into() }
    }
}

impl SecretSource for FileSecrets {
    fn resolve(&self, reference: &str) -> Result<Vec<u8>, String> {
        if let Some(name) = reference.strip_prefix("env:") {
            return std::env::var(name)
                .map(|v| v.trim().as_bytes().to_vec())
                .map_err(|_| format!("environment variable {name} is not set"));
        }
        if let Some(path) = reference.strip_prefix("file:") {
            let full = self.base.join(path);
            return std::fs::read_to_string(&full)
                .map(|v| v.trim().as_bytes().to_vec())
                .map_err(|e| format!("secret file {}: {e}", full.display()));
        }
        Err(format!("unsupported secret reference {reference:?}"))
    }
}

/// Reads and validates a policy file; also returns its text (for diffs and audit).
pub fn load(path: &Path) -> Result<(Policy, String), PolicyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let secrets = FileSecrets {
        base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let policy =
        Policy::parse_with(&text, &secrets).map_err(|source| PolicyFileError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((policy, text))
}
