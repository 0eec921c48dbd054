//! Bearer tokens scoped to one product. The tokens file holds SHA-256 hashes only, so the repo
//! and the config never carry a secret; a request's token is hashed and looked up.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("reading tokens file {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("tokens file: {0}")]
    Parse(#[from] toml::de::Error),
    /// An entry is unusable (bad hash, empty product, duplicate).
    #[error("tokens file: {0}")]
    Invalid(String),
}

/// The tokens file: `[[tokens]]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    /// Every accepted token.
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// One token: who holds it, which product it may read, the hex SHA-256 of the secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Holder, for logs.
    name: String,
    /// The only product this token may read.
    product: String,
    /// Lowercase hex SHA-256 of the bearer token.
    sha256: String,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Holder name from the tokens file.
    pub name: String,
    /// The product it may read.
    pub product: String,
}

/// The loaded tokens, keyed by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Principal>,
}

/// Hex SHA-256 of a token, as stored in the tokens file (`bucket api hash-token`).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Parses a tokens file's text.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let file: TokensFile = toml::from_str(text)?;
        let mut by_hash = HashMap::new();
        for t in file.tokens {
            if t.product.trim().is_empty() || t.name.trim().is_empty() {
                return Err(TokensError::Invalid(format!(
                    "token {:?}: name and product must not be empty",
                    t.name
                )));
            }
            let bytes = hex::decode(t.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    TokensError::Invalid(format!("token {:?}: sha256 is not 64 hex digits", t.name))
                })?;
            let principal = Principal {
                name: t.name,
                product: t.product,
            };
            if let Some(prev) = by_hash.insert(bytes, principal) {
                return Err(TokensError::Invalid(format!(
                    "token {:?}: same hash as another entry",
                    prev.name
                )));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// Reads and parses a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Tokens::parse(&text)
    }

    /// Number of tokens loaded.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when no token is loaded (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The principal of an `Authorization` header value (`Bearer <token>`), if valid.
    pub fn authenticate(&self, header: Option<&str>) -> Option<&Principal> {
        let token = header?.strip_prefix("Bearer ")?.trim();
        if token.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tokens_file_parses_and_demo_token_reads_its_product_only() {
        let tokens = Tokens::parse(include_str!("../../deploy/api-tokens.toml")).unwrap();
        assert!(!tokens.is_empty());
        let p = tokens
            .authenticate(Some("Bearer demo-ai-assistant-token"))
            .unwrap();
        assert_eq!(p.product, "ai_assistant");
        assert!(tokens.authenticate(Some("Bearer nope")).is_none());
        assert!(
            tokens
                .authenticate(Some("demo-ai-assistant-token"))
                .is_none()
        );
        assert!(tokens.authenticate(None).is_none());
    }

    #[test]
    fn bad_entries_are_refused() {
        let bad = "[[tokens]]\nname = \"x\"\nproduct = \"p\"\nsha256 = \"zz\"\n";
        assert!(matches!(Tokens::parse(bad), Err(TokensError::Invalid(_))));
        let unknown = "[[tokens]]\nname = \"x\"\nproduct = \"p\"\nsha256 = \"\"\nextra = 1\n";
        assert!(matches!(Tokens::parse(unknown), Err(TokensError::Parse(_))));
    }
}
