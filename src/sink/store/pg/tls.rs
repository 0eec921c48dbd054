//! TLS for every PostgreSQL client of the binary (sink, read API, admin probe, purge, hold,
//! reconcile, migrate, audit indexer) and of the integration tests.
//!
//! The settings ride in the PostgreSQL URL the commands already take (`--pg-url`,
//! `BUCKET_PG_URL`, `BUCKET_API_PG_URL`), libpq style:
//!
//! ```text
//! postgres://user:pass@db.example:5432/bucket?sslmode=verify-full&sslrootcert=/etc/bucket/pg-ca.crt
//! ```
//!
//! | `sslmode`     | encrypted          | server certificate checked                       |
//! | ------------- | ------------------ | ------------------------------------------------ |
//! | `disable`     | no                 | -                                                |
//! | `prefer`      | if the server can  | no (chain only when `sslrootcert` is given)      |
//! | `require`     | yes                | no (chain only when `sslrootcert` is given)      |
//! | `verify-ca`   | yes                | chains to `sslrootcert`; host name not checked   |
//! | `verify-full` | yes                | chains to `sslrootcert` and names the URL's host |
//!
//! No `sslmode` means `prefer`, as in libpq. `require` with `sslrootcert` behaves as
//! `verify-ca`, as libpq does when a root certificate is present. `verify-ca` and
//! `verify-full` need `sslrootcert` (a PEM file of one or more CA certificates); the system
//! trust store is not read. Both parameters are taken out of the URL here, the rest is handed to
//! tokio-postgres unchanged (it accepts only `disable|prefer|require`). TLS is rustls with the
//! aws-lc-rs provider (TLS 1.2 and 1.3); channel binding (SCRAM-SHA-256-PLUS) is offered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`: whether the connection is encrypted and how much of the server's
/// certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS if the server offers it, else plaintext (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is not checked unless `sslrootcert` is given.
    Require,
    /// TLS, certificate chain verified against `sslrootcert`; the host name is not checked.
    VerifyCa,
    /// TLS, chain verified against `sslrootcert` and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, for messages and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = PgTlsError;

    fn from_str(s: &str) -> Result<SslMode, PgTlsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(PgTlsError::BadSslMode(other.to_string())),
        })
    }
}

/// What the client checks of the server's certificate, derived from `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing: encrypted against passive eavesdroppers only (or plaintext for `disable`).
    None,
    /// The chain ends at a CA of `sslrootcert` (valid dates, server-auth usage), any host name.
    Chain,
    /// The chain as above and the certificate's names include the host of the URL.
    ChainAndHost,
}

/// Why a PostgreSQL URL cannot become a connection configuration: an operator mistake,
/// retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    /// `sslmode` has a value libpq does not know.
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    BadSslMode(String),
    /// `sslmode` or `sslrootcert` appears twice in the URL.
    #[error("{0} is given twice in the PostgreSQL URL")]
    Duplicate(&'static str),
    /// A query parameter is not valid percent-encoded UTF-8.
    #[error("{0} in the PostgreSQL URL is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    /// `verify-ca`/`verify-full` without a CA file to verify against.
    #[error("sslmode={0} needs sslrootcert=<CA certificate file, PEM> in the PostgreSQL URL")]
    MissingRootCert(&'static str),
    /// The CA file cannot be read or holds no usable certificate.
    #[error("sslrootcert {}: {reason}", path.display())]
    RootCert {
        /// The file named by `sslrootcert`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS parameters in a `key=value` connection string (only URLs carry them).
    #[error(
        "sslmode=verify-ca|verify-full and sslrootcert are read from postgres:// URLs only, not key=value strings"
    )]
    KeyValueTls,
    /// tokio-postgres refuses the rest of the URL.
    #[error("{0}")]
    Url(String),
    /// rustls refuses the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why connecting failed: the URL (operator mistake) or the server/network/TLS handshake.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    /// The URL or its TLS settings are wrong.
    #[error("bad PostgreSQL URL: {0}")]
    Config(#[from] PgTlsError),
    /// Connecting failed: refused, unreachable, authentication or certificate rejected.
    #[error("postgres: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// The connection half tokio-postgres hands back; the caller spawns it.
pub type PgConnection = Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// A PostgreSQL URL turned into what tokio-postgres connects with plus the TLS it must use.
#[derive(Clone)]
pub struct PgConnectConfig {
    config: tokio_postgres::Config,
    mode: SslMode,
    root_cert: Option<PathBuf>,
    verification: Verification,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for PgConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No password: tokio_postgres::Config's Debug redacts it.
        f.debug_struct("PgConnectConfig")
            .field("config", &self.config)
            .field("sslmode", &self.mode.as_str())
            .field("sslrootcert", &self.root_cert)
            .field("verification", &self.verification)
            .finish()
    }
}

impl PgConnectConfig {
    /// Parses `url` (libpq URL, `sslmode`/`sslrootcert` in its query) and loads the CA file,
    /// so a bad URL or CA fails here, before any connection is attempted.
    pub fn from_url(url: &str) -> Result<PgConnectConfig, PgTlsError> {
        let (rest, params) = split_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| PgTlsError::Url(describe(&e)))?;
        let mode = match params.mode {
            Some(mode) => mode,
            None if params.from_url => SslMode::Prefer,
            // key=value string: tokio-postgres parsed its own sslmode (disable|prefer|require).
            None => match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => SslMode::Disable,
                tokio_postgres::config::SslMode::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
        };
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let verification = verification(mode, params.root_cert.is_some())?;
        let roots = match &params.root_cert {
            Some(path) if mode != SslMode::Disable => Some(load_roots(path)?),
            _ => None,
        };
        let tls = MakeRustlsConnect::new(client_config(verification, roots)?);
        Ok(PgConnectConfig {
            config,
            mode,
            root_cert: params.root_cert,
            verification,
            tls,
        })
    }

    /// The `sslmode` in force (explicit or libpq's default `prefer`).
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// The CA file the server's certificate is verified against, if any.
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// What of the server's certificate is checked.
    pub fn verification(&self) -> Verification {
        self.verification
    }

    /// The tokio-postgres settings (host, user, database, options...) without the TLS ones.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector the URL asked for (connection pools connect through it).
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// Connects with the configured TLS; the caller spawns the returned connection.
    pub async fn connect(&self) -> Result<(Client, PgConnection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// Parses `url` and connects in one step (tools, probes, tests); the caller spawns the
/// returned connection.
pub async fn connect(url: &str) -> Result<(Client, PgConnection), PgConnectError> {
    let config = PgConnectConfig::from_url(url)?;
    Ok(config.connect().await?)
}

/// A tokio-postgres error with its cause chain: its own `Display` says only "db error" or
/// "error performing TLS handshake", which hides the server's message or the certificate
/// problem an operator needs.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `sslmode` and `sslrootcert` as found in the URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    mode: Option<SslMode>,
    root_cert: Option<PathBuf>,
    /// The string was a URL (so tokio-postgres never saw an `sslmode`).
    from_url: bool,
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query; returns the URL without them (other
/// parameters kept as written, in order) and their values.
fn split_tls_params(url: &str) -> Result<(String, TlsParams), PgTlsError> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_url {
        if url.contains("sslrootcert") || url.contains("verify-ca") || url.contains("verify-full") {
            return Err(PgTlsError::KeyValueTls);
        }
        return Ok((url.to_string(), TlsParams::default()));
    }
    let mut params = TlsParams {
        from_url: true,
        ..TlsParams::default()
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key, "parameter name")?.as_str() {
            "sslmode" => {
                if params.mode.is_some() {
                    return Err(PgTlsError::Duplicate("sslmode"));
                }
                params.mode = Some(decode(value, "sslmode")?.parse()?);
            }
            "sslrootcert" => {
                if params.root_cert.is_some() {
                    return Err(PgTlsError::Duplicate("sslrootcert"));
                }
                params.root_cert = Some(PathBuf::from(decode(value, "sslrootcert")?));
            }
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

fn decode(s: &str, what: &'static str) -> Result<String, PgTlsError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| PgTlsError::Encoding(what))
}

/// What `mode` checks, given whether a CA file is configured (libpq's rules).
fn verification(mode: SslMode, has_root_cert: bool) -> Result<Verification, PgTlsError> {
    Ok(match (mode, has_root_cert) {
        (SslMode::Disable, _) => Verification::None,
        (SslMode::Prefer | SslMode::Require, false) => Verification::None,
        (SslMode::Prefer | SslMode::Require, true) => Verification::Chain,
        (SslMode::VerifyCa, true) => Verification::Chain,
        (SslMode::VerifyFull, true) => Verification::ChainAndHost,
        (SslMode::VerifyCa | SslMode::VerifyFull, false) => {
            return Err(PgTlsError::MissingRootCert(mode.as_str()));
        }
    })
}

/// Reads every certificate of the PEM file at `path` into a trust store.
fn load_roots(path: &Path) -> Result<RootCertStore, PgTlsError> {
    let err = |reason: String| PgTlsError::RootCert {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(
    verification: Verification,
    roots: Option<RootCertStore>,
) -> Result<ClientConfig, PgTlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match (verification, roots) {
        (Verification::ChainAndHost, Some(roots)) => builder.with_root_certificates(roots),
        (Verification::ChainAndHost, None) => {
            return Err(PgTlsError::MissingRootCert(SslMode::VerifyFull.as_str()));
        }
        (Verification::Chain, roots) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                    roots: roots.map(Arc::new),
                    algorithms: provider.signature_verification_algorithms,
                }))
        }
        (Verification::None, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                roots: None,
                algorithms: provider.signature_verification_algorithms,
            })),
    };
    Ok(config.with_no_client_auth())
}

/// libpq's weaker modes: `verify-ca` (chain, any name) and `require`/`prefer` without a CA
/// (nothing checked). Handshake signatures are always verified.
#[derive(Debug)]
struct LibpqVerifier {
    /// `Some`: the chain must end at one of these; `None`: any certificate is taken.
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsParams) {
        split_tls_params(url).unwrap()
    }

    #[test]
    fn plain_url_is_untouched_and_defaults_to_prefer() {
        let (rest, p) = split("postgres://u:p@127.0.0.1:5432/bucket");
        assert_eq!(rest, "postgres://u:p@127.0.0.1:5432/bucket");
        assert_eq!(p.mode, None);
        assert_eq!(p.root_cert, None);
        let c = PgConnectConfig::from_url("postgres://u:p@127.0.0.1:5432/bucket").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Prefer);
        assert_eq!(c.verification(), Verification::None);
        assert_eq!(
            c.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
    }

    #[test]
    fn tls_params_are_taken_out_and_the_rest_kept_in_order() {
        let (rest, p) = split(
            "postgresql://u:p@h/db?connect_timeout=3&sslmode=verify-full&options=-csearch_path%3Ds&sslrootcert=%2Ftmp%2Fmy%20ca.crt",
        );
        assert_eq!(
            rest,
            "postgresql://u:p@h/db?connect_timeout=3&options=-csearch_path%3Ds"
        );
        assert_eq!(p.mode, Some(SslMode::VerifyFull));
        assert_eq!(p.root_cert, Some(PathBuf::from("/tmp/my ca.crt")));
        let (rest, p) = split("postgres://h/db?sslmode=disable");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(p.mode, Some(SslMode::Disable));
    }

    #[test]
    fn every_libpq_mode_parses_and_others_are_refused() {
        for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(m.parse::<SslMode>().unwrap().as_str(), m);
        }
        for bad in ["allow", "VERIFY-FULL", "verify_full", ""] {
            assert!(matches!(
                split_tls_params(&format!("postgres://h/db?sslmode={bad}")),
                Err(PgTlsError::BadSslMode(_))
            ));
        }
    }

    #[test]
    fn duplicates_and_bad_encoding_are_refused() {
        assert!(matches!(
            split_tls_params("postgres://h/db?sslmode=require&sslmode=disable"),
            Err(PgTlsError::Duplicate("sslmode"))
        ));
        assert!(matches!(
            split_tls_params("postgres://h/db?sslrootcert=a&sslrootcert=b"),
            Err(PgTlsError::Duplicate("sslrootcert"))
        ));
        assert!(matches!(
            split_tls_params("postgres://h/db?sslrootcert=%FF"),
            Err(PgTlsError::Encoding("sslrootcert"))
        ));
    }

    #[test]
    fn verify_modes_need_a_root_cert() {
        for m in ["verify-ca", "verify-full"] {
            let e = PgConnectConfig::from_url(&format!("postgres://h/db?sslmode={m}")).unwrap_err();
            assert!(matches!(e, PgTlsError::MissingRootCert(_)), "{e}");
            assert!(e.to_string().contains("sslrootcert"), "{e}");
        }
    }

    #[test]
    fn what_each_mode_checks() {
        use SslMode::*;
        use Verification::*;
        let cases = [
            (Disable, false, None),
            (Disable, true, None),
            (Prefer, false, None),
            (Prefer, true, Chain),
            (Require, false, None),
            (Require, true, Chain),
            (VerifyCa, true, Chain),
            (VerifyFull, true, ChainAndHost),
        ];
        for (mode, root, want) in cases {
            assert_eq!(verification(mode, root).unwrap(), want, "{mode:?} {root}");
        }
    }

    #[test]
    fn root_cert_file_problems_are_reported_with_the_path() {
        let e = PgConnectConfig::from_url(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.crt"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = PgConnectConfig::from_url(&format!(
            "postgres://h/db?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ))
        .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn tokio_postgres_modes_follow_sslmode() {
        use tokio_postgres::config::SslMode as T;
        for (m, want) in [
            ("disable", T::Disable),
            ("prefer", T::Prefer),
            ("require", T::Require),
        ] {
            let c = PgConnectConfig::from_url(&format!("postgres://h/db?sslmode={m}")).unwrap();
            assert_eq!(c.config().get_ssl_mode(), want, "{m}");
        }
        // key=value strings keep tokio-postgres's own parsing of the three modes it knows.
        let c = PgConnectConfig::from_url("host=h dbname=db sslmode=require").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Require);
        assert!(matches!(
            PgConnectConfig::from_url("host=h sslmode=verify-full sslrootcert=/ca.crt"),
            Err(PgTlsError::KeyValueTls)
        ));
    }

    #[test]
    fn other_bad_urls_still_fail_in_tokio_postgres() {
        let e = PgConnectConfig::from_url("postgres://h/db?nosuchoption=1").unwrap_err();
        assert!(matches!(e, PgTlsError::Url(_)), "{e}");
    }
}
