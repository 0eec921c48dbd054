//! Bearer tokens scoped to one product. The tokens file holds SHA-256 hashes only, so the repo
//! and the config never carry a secret; a request's token is hashed and looked up.

use std::collections::HashMap;

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
    /// An entry is unusable (bad hash, empty product, duplicate, a zero limit).
    #[error("tokens file: {0}")]
    Invalid(String),
}

/// Per-token limits: requests, content bytes and concurrent content streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenLimits {
    /// Sustained requests per second.
    pub requests_per_sec: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Sustained content bytes per second (content and single-version reads).
    pub content_bytes_per_sec: u32,
    /// Content bytes allowed at once; a content larger than this costs the whole burst.
    pub content_burst_bytes: u32,
    /// Content responses of one token being sent at the same time.
    pub max_content_streams: u32,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            requests_per_sec: 50,
            burst: 100,
            content_bytes_per_sec: 64 << 20,
            content_burst_bytes: 64 << 20,
            max_content_streams: 4,
        }
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Position in the tokens file: the key of its limiters.
    pub id: usize,
    /// Holder name from the tokens file.
    pub name: String,
    /// The product it may read.
    pub product: String,
    /// Its resolved limits (token, else product, else default).
    pub limits: TokenLimits,
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
    /// The tokens of checked entries; two entries with one hash are refused.
    pub(crate) fn from_principals(
        entries: Vec<([u8; 32], Principal)>,
    ) -> Result<Tokens, TokensError> {
        let mut by_hash = HashMap::new();
        for (hash, principal) in entries {
            if let Some(prev) = by_hash.insert(hash, principal) {
                return Err(TokensError::Invalid(format!(
                    "token {:?}: same hash as another entry",
                    prev.name
                )));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// Number of tokens loaded.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when no token is loaded (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Every principal, in no particular order.
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.by_hash.values()
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

    fn parse(text: &str) -> Result<Tokens, TokensError> {
        Ok(crate::api::config::ApiConfig::parse(text)?.tokens)
    }

    #[test]
    fn shipped_tokens_file_parses_and_demo_token_reads_its_product_only() {
        let tokens = parse(include_str!("../../deploy/api-tokens.toml")).unwrap();
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
        assert!(matches!(parse(bad), Err(TokensError::Invalid(_))));
        let unknown = "[[tokens]]\nname = \"x\"\nproduct = \"p\"\nsha256 = \"\"\nextra = 1\n";
        assert!(matches!(parse(unknown), Err(TokensError::Parse(_))));
        let h = "1c250c881a1d43c561e877d060963a388f20125bc70acc7fb95c3eb9d17410f6";
        let twice = format!(
            "[[tokens]]\nname = \"x\"\nproduct = \"p\"\nsha256 = \"{h}\"\n\
             [[tokens]]\nname = \"y\"\nproduct = \"q\"\nsha256 = \"{h}\"\n"
        );
        assert!(matches!(parse(&twice), Err(TokensError::Invalid(_))));
    }
}
