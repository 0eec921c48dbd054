//! Key files for integrations: an Ed25519 seed and an HMAC secret per key id, as files a
//! producer (or `bucket produce --keys-dir`) signs with. The gate only ever sees the public key
//! (inline in the policy) and HMAC secrets by reference.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::core::signature::SignKey;

/// Key file problems.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A key file does not hold a valid key.
    #[error("{0}: not a valid key file")]
    Invalid(PathBuf),
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Generates both keys; returns (base64 public key, ed25519 file, hmac file).
pub fn generate(
    integration: &str,
    dir: &Path,
    ed_id: &str,
    hmac_id: &str,
) -> Result<(String, PathBuf, PathBuf), KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let seed: [u8; 32] = rand::random();
    let key = SignKey::ed25519_from_seed(&seed);
    let public = STANDARD.encode(key.public_key().unwrap_or_default());
    let ed_path = dir.join(format!("{integration}.{ed_id}.ed25519"));
    write_private(&ed_path, &STANDARD.encode(seed))?;
    let secret: [u8; 32] = rand::random();
    let hmac_path = dir.join(format!("{integration}.{hmac_id}.hmac"));
    write_private(&hmac_path, &STANDARD.encode(secret))?;
    Ok((public, ed_path, hmac_path))
}

/// Loads the signing key for `integration` from `dir`: an Ed25519 key when `prefer_hmac` is
/// false and one exists, else an HMAC key. Returns (key id, key).
pub fn load(
    dir: &Path,
    integration: &str,
    prefer_hmac: bool,
) -> Result<Option<(String, SignKey)>, KeyError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut found: Vec<(String, String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let rest = name.strip_prefix(&format!("{integration}."))?;
            let (key_id, ext) = rest.rsplit_once('.')?;
            Some((key_id.to_string(), ext.to_string(), p))
        })
        .collect();
    found.sort();
    let wanted = if prefer_hmac { "hmac" } else { "ed25519" };
    let pick = found
        .iter()
        .find(|(_, ext, _)| ext == wanted)
        .or_else(|| found.first());
    let Some((key_id, ext, path)) = pick else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.clone(),
        source,
    })?;
    let key = match ext.as_str() {
        "ed25519" => {
            let seed: [u8; 32] = STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::Invalid(path.clone()))?;
            SignKey::ed25519_from_seed(&seed)
        }
        "hmac" => SignKey::Hmac(text.trim().as_bytes().to_vec()),
        _ => return Err(KeyError::Invalid(path.clone())),
    };
    Ok(Some((key_id.clone(), key)))
}
