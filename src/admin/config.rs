//! `--admin-addr` and `--admin-token`: parsed and checked once, before anything binds.

use std::net::SocketAddr;
use std::path::Path;

use crate::core::policy::SecretSource;
use crate::policy::file::FileSecrets;

/// Default admin address of `bucket gate`.
pub const GATE_DEFAULT_ADDR: &str = "127.0.0.1:9600";
/// Default admin address of `bucket sink`.
pub const SINK_DEFAULT_ADDR: &str = "127.0.0.1:9601";

/// Why the admin settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminConfigError {
    /// The address is neither `off` nor `host:port`.
    #[error("--admin-addr {0:?}: expected ip:port or \"off\"")]
    Addr(String),
    /// The token reference could not be resolved, or the token is empty.
    #[error("--admin-token: {0}")]
    Token(String),
    /// Serving on a non-loopback address without a token would expose the admin API.
    #[error(
        "refusing to serve the admin API on non-loopback address {0} without a token: set \
         --admin-token (BUCKET_ADMIN_TOKEN, may be env:NAME or file:PATH) or bind 127.0.0.1"
    )]
    PublicWithoutToken(SocketAddr),
}

/// Validated admin settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where to listen; None when disabled (`off`).
    pub addr: Option<SocketAddr>,
    /// The resolved bearer token, if any.
    pub token: Option<String>,
}

impl AdminConfig {
    /// Parses the flags: `addr` is `ip:port` or `off`; `token` is a literal, `env:NAME` or
    /// `file:PATH` (relative to the working directory).
    pub fn parse(addr: &str, token: Option<&str>) -> Result<AdminConfig, AdminConfigError> {
        let addr = match addr.trim() {
            "off" | "none" | "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .map_err(|_| AdminConfigError::Addr(a.to_string()))?,
            ),
        };
        let token = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(resolve_token(t)?),
        };
        if let Some(a) = addr
            && token.is_none()
            && !a.ip().is_loopback()
        {
            return Err(AdminConfigError::PublicWithoutToken(a));
        }
        Ok(AdminConfig { addr, token })
    }
}

/// Resolves `env:NAME` / `file:PATH` like the policy's secrets; other values are the token.
fn resolve_token(value: &str) -> Result<String, AdminConfigError> {
    let resolved = if value.starts_with("env:") || value.starts_with("file:") {
        let bytes = FileSecrets::new(Path::new("."))
            .resolve(value)
            .map_err(AdminConfigError::Token)?;
        String::from_utf8(bytes)
            .map_err(|_| AdminConfigError::Token(format!("{value}: not UTF-8")))?
    } else {
        value.to_string()
    };
    let token = resolved.trim().to_string();
    if token.is_empty() {
        return Err(AdminConfigError::Token(format!("{value}: empty token")));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_disables_and_loopback_needs_no_token() {
        assert_eq!(AdminConfig::parse("off", None).unwrap().addr, None);
        let c = AdminConfig::parse("127.0.0.1:9600", None).unwrap();
        assert_eq!(c.addr, Some("127.0.0.1:9600".parse().unwrap()));
        assert!(AdminConfig::parse("[::1]:9600", None).is_ok());
    }

    #[test]
    fn public_bind_without_token_is_refused() {
        let e = AdminConfig::parse("0.0.0.0:9600", None).unwrap_err();
        assert!(matches!(e, AdminConfigError::PublicWithoutToken(_)));
        assert!(e.to_string().contains("--admin-token"));
        let ok = AdminConfig::parse("0.0.0.0:9600", Some("s3cret")).unwrap();
        assert_eq!(ok.token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn token_references_resolve_and_bad_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "from-file\n").unwrap();
        let c = AdminConfig::parse("127.0.0.1:1", Some(&format!("file:{}", f.display()))).unwrap();
        assert_eq!(c.token.as_deref(), Some("from-file"));
        let missing = AdminConfig::parse("127.0.0.1:1", Some("env:BUCKET_NO_SUCH_VAR_X"));
        assert!(matches!(missing, Err(AdminConfigError::Token(_))));
        assert!(matches!(
            AdminConfig::parse("nonsense", None),
            Err(AdminConfigError::Addr(_))
        ));
    }
}
