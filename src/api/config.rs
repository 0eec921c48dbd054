//! The read API's file (`--tokens`, `deploy/api-tokens.toml`): the tokens, the limits each token
//! gets (a default, per product, per token) and the server's request bounds (docs/api.md,
//! "Limits"). Parsed and checked once at start-up: a bad value refuses to start.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{Principal, TokenLimits, Tokens, TokensError};

/// The server's request bounds and the limit on requests without a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time from a request's headers to its response's headers (503 after it).
    pub request_timeout: Duration,
    /// Time a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Longest a connection lives; then it is closed after its current response (a client that
    /// stops reading a content cannot hold a stream for longer).
    pub connection_max_age: Duration,
    /// Largest request head (request line and headers); over it: 431.
    pub max_header_bytes: usize,
    /// Largest request body (the API has no request bodies); over it: 413.
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Page size of list endpoints when `limit` is not given.
    pub default_page_size: i64,
    /// Largest `limit` of list endpoints; more is a 400.
    pub max_page_size: i64,
    /// Requests per second per client address that present no valid token.
    pub unauthenticated_per_sec: u32,
    /// Burst of those.
    pub unauthenticated_burst: u32,
    /// Client addresses the unauthenticated limiter tracks before it is cleaned early.
    pub max_tracked_addresses: usize,
    /// How often idle limiter state is dropped.
    pub cleanup_interval: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            connection_max_age: Duration::from_secs(300),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024,
            max_connections: 1024,
            default_page_size: 50,
            max_page_size: 1000,
            unauthenticated_per_sec: 10,
            unauthenticated_burst: 20,
            max_tracked_addresses: 100_000,
            cleanup_interval: Duration::from_secs(10),
        }
    }
}

/// The whole file, checked.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Accepted tokens, each with its resolved limits.
    pub tokens: Tokens,
    /// Server-wide bounds.
    pub server: ServerLimits,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    server: ServerSpec,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// `[[tokens]]`: who holds it, which product it reads, the hex SHA-256 of the secret, and
/// optionally its own limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    product: String,
    sha256: String,
    #[serde(default)]
    limits: LimitsSpec,
}

/// `[limits]`: `default` for every token, `products.<id>` for a product's tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    #[serde(default)]
    default: LimitsSpec,
    #[serde(default)]
    products: HashMap<String, LimitsSpec>,
}

/// Limits as written: every field optional, the more specific level wins field by field.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    requests_per_sec: Option<u32>,
    burst: Option<u32>,
    content_bytes_per_sec: Option<u32>,
    content_burst_bytes: Option<u32>,
    max_content_streams: Option<u32>,
}

impl LimitsSpec {
    fn over(&self, base: TokenLimits) -> TokenLimits {
        TokenLimits {
            requests_per_sec: self.requests_per_sec.unwrap_or(base.requests_per_sec),
            burst: self.burst.unwrap_or(base.burst),
            content_bytes_per_sec: self
                .content_bytes_per_sec
                .unwrap_or(base.content_bytes_per_sec),
            content_burst_bytes: self.content_burst_bytes.unwrap_or(base.content_burst_bytes),
            max_content_streams: self.max_content_streams.unwrap_or(base.max_content_streams),
        }
    }
}

/// `[server]` as written (milliseconds and bytes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSpec {
    request_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    connection_max_age_ms: Option<u64>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    default_page_size: Option<i64>,
    max_page_size: Option<i64>,
    unauthenticated_per_sec: Option<u32>,
    unauthenticated_burst: Option<u32>,
    max_tracked_addresses: Option<usize>,
    cleanup_interval_ms: Option<u64>,
}

fn invalid(msg: String) -> TokensError {
    TokensError::Invalid(msg)
}

impl ServerSpec {
    fn resolve(&self) -> Result<ServerLimits, TokensError> {
        let d = ServerLimits::default();
        let ms = |v: Option<u64>, default: Duration, name: &str| match v {
            Some(0) => Err(invalid(format!("[server] {name} must be > 0"))),
            Some(v) => Ok(Duration::from_millis(v)),
            None => Ok(default),
        };
        let s = ServerLimits {
            request_timeout: ms(
                self.request_timeout_ms,
                d.request_timeout,
                "request_timeout_ms",
            )?,
            header_read_timeout: ms(
                self.header_read_timeout_ms,
                d.header_read_timeout,
                "header_read_timeout_ms",
            )?,
            connection_max_age: ms(
                self.connection_max_age_ms,
                d.connection_max_age,
                "connection_max_age_ms",
            )?,
            max_header_bytes: self.max_header_bytes.unwrap_or(d.max_header_bytes),
            max_body_bytes: self.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            default_page_size: self.default_page_size.unwrap_or(d.default_page_size),
            max_page_size: self.max_page_size.unwrap_or(d.max_page_size),
            unauthenticated_per_sec: self
                .unauthenticated_per_sec
                .unwrap_or(d.unauthenticated_per_sec),
            unauthenticated_burst: self
                .unauthenticated_burst
                .unwrap_or(d.unauthenticated_burst),
            max_tracked_addresses: self
                .max_tracked_addresses
                .unwrap_or(d.max_tracked_addresses),
            cleanup_interval: ms(
                self.cleanup_interval_ms,
                d.cleanup_interval,
                "cleanup_interval_ms",
            )?,
        };
        // hyper's read buffer cannot be smaller than 8 KiB.
        if s.max_header_bytes < 8192 {
            return Err(invalid("[server] max_header_bytes must be >= 8192".into()));
        }
        if s.max_connections == 0 || s.max_tracked_addresses == 0 {
            return Err(invalid(
                "[server] max_connections and max_tracked_addresses must be > 0".into(),
            ));
        }
        if s.max_page_size < 1 || !(1..=s.max_page_size).contains(&s.default_page_size) {
            return Err(invalid(
                "[server] need 1 <= default_page_size <= max_page_size".into(),
            ));
        }
        if s.unauthenticated_per_sec == 0 || s.unauthenticated_burst == 0 {
            return Err(invalid(
                "[server] unauthenticated_per_sec and unauthenticated_burst must be > 0".into(),
            ));
        }
        Ok(s)
    }
}

fn check_limits(l: &TokenLimits, whose: &str) -> Result<(), TokensError> {
    let fields = [
        ("requests_per_sec", l.requests_per_sec),
        ("burst", l.burst),
        ("content_bytes_per_sec", l.content_bytes_per_sec),
        ("content_burst_bytes", l.content_burst_bytes),
        ("max_content_streams", l.max_content_streams),
    ];
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(invalid(format!("{whose}: {name} must be > 0"))),
        None => Ok(()),
    }
}

impl ApiConfig {
    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<ApiConfig, TokensError> {
        let file: File = toml::from_str(text)?;
        let server = file.server.resolve()?;
        let default = file.limits.default.over(TokenLimits::default());
        check_limits(&default, "[limits.default]")?;
        for (product, spec) in &file.limits.products {
            check_limits(&spec.over(default), &format!("[limits.products.{product}]"))?;
        }
        let mut principals = Vec::with_capacity(file.tokens.len());
        for t in file.tokens {
            if t.product.trim().is_empty() || t.name.trim().is_empty() {
                return Err(invalid(format!(
                    "token {:?}: name and product must not be empty",
                    t.name
                )));
            }
            let hash = hex::decode(t.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    invalid(format!("token {:?}: sha256 is not 64 hex digits", t.name))
                })?;
            let product_level = file
                .limits
                .products
                .get(&t.product)
                .map_or(default, |s| s.over(default));
            let limits = t.limits.over(product_level);
            check_limits(&limits, &format!("token {:?}", t.name))?;
            principals.push((
                hash,
                Principal {
                    id: principals.len(),
                    name: t.name,
                    product: t.product,
                    limits,
                },
            ));
        }
        Ok(ApiConfig {
            tokens: Tokens::from_principals(principals)?,
            server,
        })
    }

    /// Reads and parses the file.
    pub fn load(path: &std::path::Path) -> Result<ApiConfig, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ApiConfig::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "1c250c881a1d43c561e877d060963a388f20125bc70acc7fb95c3eb9d17410f6";
    const HASH_B: &str = "295bf591ab7907cf205ed6eae44b246caf3b71ff91e8351a1fdabcea5ac7d9cc";

    #[test]
    fn token_over_product_over_default_field_by_field() {
        let text = format!(
            "[server]\nmax_page_size = 10\ndefault_page_size = 5\n\
             [limits.default]\nrequests_per_sec = 7\n\
             [limits.products.ai_avatar]\nburst = 3\nmax_content_streams = 1\n\
             [[tokens]]\nname = \"a\"\nproduct = \"ai_assistant\"\nsha256 = \"{HASH_A}\"\n\
             [[tokens]]\nname = \"b\"\nproduct = \"ai_avatar\"\nsha256 = \"{HASH_B}\"\n\
             limits = {{ requests_per_sec = 2 }}\n"
        );
        let c = ApiConfig::parse(&text).unwrap();
        assert_eq!(c.server.max_page_size, 10);
        assert_eq!(c.server.default_page_size, 5);
        let a = c
            .tokens
            .authenticate(Some("Bearer demo-ai-assistant-token"))
            .unwrap();
        assert_eq!(
            a.limits,
            TokenLimits {
                requests_per_sec: 7,
                ..TokenLimits::default()
            }
        );
        let b = c
            .tokens
            .authenticate(Some("Bearer demo-ai-avatar-token"))
            .unwrap();
        assert_eq!(b.limits.requests_per_sec, 2);
        assert_eq!(b.limits.burst, 3);
        assert_eq!(b.limits.max_content_streams, 1);
        assert_eq!(b.limits.content_bytes_per_sec, 64 << 20);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn zero_limits_and_bad_bounds_are_refused() {
        for bad in [
            "[limits.default]\nburst = 0\n",
            "[limits.products.x]\nmax_content_streams = 0\n",
            "[server]\nmax_header_bytes = 100\n",
            "[server]\nrequest_timeout_ms = 0\n",
            "[server]\ndefault_page_size = 20\nmax_page_size = 10\n",
            "[server]\nunauthenticated_burst = 0\n",
        ] {
            assert!(
                matches!(ApiConfig::parse(bad), Err(TokensError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ApiConfig::parse("[server]\nnope = 1\n"),
            Err(TokensError::Parse(_))
        ));
        let token_zero = format!(
            "[[tokens]]\nname = \"a\"\nproduct = \"p\"\nsha256 = \"{HASH_A}\"\n\
             limits = {{ requests_per_sec = 0 }}\n"
        );
        assert!(matches!(
            ApiConfig::parse(&token_zero),
            Err(TokensError::Invalid(_))
        ));
    }

    #[test]
    fn the_shipped_file_gives_every_demo_product_a_token() {
        let c = ApiConfig::parse(include_str!("../../deploy/api-tokens.toml")).unwrap();
        let policy: toml::Value = toml::from_str(include_str!("../../deploy/policy.toml")).unwrap();
        let products: Vec<&String> = policy["products"].as_table().unwrap().keys().collect();
        assert_eq!(products.len(), 5, "{products:?}");
        for p in &products {
            let token = format!("Bearer demo-{}-token", p.replace('_', "-"));
            let principal = c.tokens.authenticate(Some(&token));
            assert_eq!(
                principal.map(|x| x.product.as_str()),
                Some(p.as_str()),
                "{p}"
            );
        }
    }
}
