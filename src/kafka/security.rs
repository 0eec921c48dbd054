//! Kafka client security: one set of flags (`--kafka-security-protocol`, `--kafka-sasl-*`,
//! `--kafka-ssl-ca`, `--kafka-ssl-cert`/`--kafka-ssl-key` for mTLS, env `BUCKET_KAFKA_*`) for
//! every command, resolved once at start and applied by [`client_config`] to every rdkafka
//! `ClientConfig` the binary builds (gate, sink, produce, audit tail/verify, topics, state
//! rebuild, bench). The SASL password is a secret reference
//! (`env:NAME` or `file:path`), never inline, and is never printed (docs/security.md).

use std::path::PathBuf;
use std::sync::OnceLock;

use rdkafka::ClientConfig;

/// Why the Kafka security settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Unknown `--kafka-security-protocol`.
    #[error(
        "kafka security protocol must be plaintext, ssl, sasl_plaintext or sasl_ssl, got {0:?}"
    )]
    Protocol(String),
    /// Unknown `--kafka-sasl-mechanism`.
    #[error("kafka SASL mechanism must be SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN, got {0:?}")]
    Mechanism(String),
    /// A SASL protocol without user name or password.
    #[error("{0} needs --kafka-sasl-username and --kafka-sasl-password")]
    MissingCredentials(&'static str),
    /// The password is not a reference.
    #[error(
        "a password must be given as a reference (env:NAME or file:path), never the password itself"
    )]
    InlineSecret,
    /// The reference could not be resolved.
    #[error("kafka SASL password {reference}: {reason}")]
    Unresolved {
        /// The reference (never the secret).
        reference: String,
        /// What went wrong.
        reason: String,
    },
    /// The CA file is missing.
    #[error("kafka CA file {0}: not readable")]
    CaFile(PathBuf),
    /// A client certificate without its key, or a key without its certificate.
    #[error("--kafka-ssl-cert and --kafka-ssl-key go together (mTLS needs both)")]
    HalfClientCert,
    /// A client certificate or key file is missing.
    #[error("kafka client certificate or key file {0}: not readable")]
    ClientCertFile(PathBuf),
    /// A client certificate on a protocol without TLS.
    #[error("--kafka-ssl-cert needs --kafka-security-protocol ssl or sasl_ssl, got {0}")]
    ClientCertWithoutTls(&'static str),
    /// Installed twice with different settings.
    #[error("kafka security settings already installed")]
    AlreadyInstalled,
}

/// Command-line flags (global to every subcommand) for Kafka client security.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaSecurityArgs {
    /// Kafka security protocol: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(
        long,
        global = true,
        env = "BUCKET_KAFKA_SECURITY_PROTOCOL",
        default_value = "plaintext"
    )]
    pub kafka_security_protocol: String,
    /// SASL mechanism (with sasl_*): SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.
    #[arg(
        long,
        global = true,
        env = "BUCKET_KAFKA_SASL_MECHANISM",
        default_value = "SCRAM-SHA-512"
    )]
    pub kafka_sasl_mechanism: String,
    /// SASL user name (the Kafka principal User:<name>).
    #[arg(long, global = true, env = "BUCKET_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// SASL password as a reference only: env:NAME or file:path (never the password itself).
    #[arg(
        long,
        global = true,
        env = "BUCKET_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub kafka_sasl_password: Option<String>,
    /// PEM CA certificate(s) the brokers' TLS certificates are verified with (system store if
    /// absent).
    #[arg(long, global = true, env = "BUCKET_KAFKA_SSL_CA")]
    pub kafka_ssl_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (the principal is its subject, e.g. a Strimzi `tls`
    /// KafkaUser's user.crt); with --kafka-ssl-key.
    #[arg(long, global = true, env = "BUCKET_KAFKA_SSL_CERT")]
    pub kafka_ssl_cert: Option<PathBuf>,
    /// PEM private key of --kafka-ssl-cert (unencrypted PKCS#8, e.g. a Strimzi user.key).
    #[arg(long, global = true, env = "BUCKET_KAFKA_SSL_KEY")]
    pub kafka_ssl_key: Option<PathBuf>,
}

/// A password resolved from its reference; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Resolved Kafka client security settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KafkaSecurity {
    protocol: &'static str,
    sasl: Option<(String, String, Password)>,
    ca: Option<PathBuf>,
    /// Client certificate and key files (mTLS).
    client_cert: Option<(PathBuf, PathBuf)>,
}

/// Resolves a secret reference (`env:NAME` or `file:path`) to its trimmed text.
pub fn resolve_secret(reference: &str) -> Result<String, SecurityError> {
    let unresolved = |reason: String| SecurityError::Unresolved {
        reference: reference.to_string(),
        reason,
    };
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name)
            .map(|v| v.trim().to_string())
            .map_err(|_| unresolved("environment variable not set".into()));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|v| v.trim().to_string())
            .map_err(|e| unresolved(e.to_string()));
    }
    Err(SecurityError::InlineSecret)
}

impl KafkaSecurityArgs {
    /// Validates the flags and resolves the password reference.
    pub fn resolve(&self) -> Result<KafkaSecurity, SecurityError> {
        let protocol = match self.kafka_security_protocol.to_ascii_lowercase().as_str() {
            "plaintext" => "plaintext",
            "ssl" => "ssl",
            "sasl_plaintext" => "sasl_plaintext",
            "sasl_ssl" => "sasl_ssl",
            _ => {
                return Err(SecurityError::Protocol(
                    self.kafka_security_protocol.clone(),
                ));
            }
        };
        let sasl = if protocol.starts_with("sasl_") {
            let mechanism = self.kafka_sasl_mechanism.to_ascii_uppercase();
            if !matches!(
                mechanism.as_str(),
                "SCRAM-SHA-512" | "SCRAM-SHA-256" | "PLAIN"
            ) {
                return Err(SecurityError::Mechanism(self.kafka_sasl_mechanism.clone()));
            }
            let (Some(user), Some(reference)) =
                (&self.kafka_sasl_username, &self.kafka_sasl_password)
            else {
                return Err(SecurityError::MissingCredentials(protocol));
            };
            let password = resolve_secret(reference)?;
            Some((mechanism, user.clone(), Password(password)))
        } else {
            None
        };
        if let Some(ca) = &self.kafka_ssl_ca
            && std::fs::metadata(ca).is_err()
        {
            return Err(SecurityError::CaFile(ca.clone()));
        }
        let client_cert = match (&self.kafka_ssl_cert, &self.kafka_ssl_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                if !protocol.ends_with("ssl") {
                    return Err(SecurityError::ClientCertWithoutTls(protocol));
                }
                for f in [cert, key] {
                    if std::fs::metadata(f).is_err() {
                        return Err(SecurityError::ClientCertFile(f.clone()));
                    }
                }
                Some((cert.clone(), key.clone()))
            }
            _ => return Err(SecurityError::HalfClientCert),
        };
        Ok(KafkaSecurity {
            protocol,
            sasl,
            ca: self.kafka_ssl_ca.clone(),
            client_cert,
        })
    }
}

impl KafkaSecurity {
    /// Sets `security.protocol`, the SASL and the TLS settings on `c`.
    pub fn apply(&self, c: &mut ClientConfig) {
        if self.protocol.is_empty() {
            return;
        }
        c.set("security.protocol", self.protocol);
        if let Some((mechanism, user, password)) = &self.sasl {
            c.set("sasl.mechanism", mechanism)
                .set("sasl.username", user)
                .set("sasl.password", &password.0);
        }
        if let Some(ca) = &self.ca
            && self.protocol.ends_with("ssl")
        {
            c.set("ssl.ca.location", ca.to_string_lossy());
        }
        if let Some((cert, key)) = &self.client_cert {
            c.set("ssl.certificate.location", cert.to_string_lossy())
                .set("ssl.key.location", key.to_string_lossy());
        }
    }

    /// The same settings as Java client properties (`--command-config` of the Kafka CLI tools);
    /// None for plaintext. Contains the password: write it only to a private file.
    pub fn java_client_properties(&self) -> Option<String> {
        if self.protocol.is_empty() || self.protocol == "plaintext" {
            return None;
        }
        let mut p = format!("security.protocol={}\n", self.protocol.to_ascii_uppercase());
        if let Some((mechanism, user, password)) = &self.sasl {
            let module = if mechanism == "PLAIN" {
                "org.apache.kafka.common.security.plain.PlainLoginModule"
            } else {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            };
            // JAAS quoting, then the properties file's own backslash escaping.
            let quote = |v: &str| {
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\\', "\\\\")
            };
            p.push_str(&format!(
                "sasl.mechanism={mechanism}\nsasl.jaas.config={module} required username=\"{}\" password=\"{}\";\n",
                quote(user),
                quote(&password.0)
            ));
        }
        if let Some(ca) = &self.ca {
            p.push_str(&format!(
                "ssl.truststore.type=PEM\nssl.truststore.location={}\n",
                ca.display()
            ));
        }
        if let Some((cert, key)) = &self.client_cert {
            // Java reads PEM key stores inline; a properties value escapes its line breaks.
            let inline = |f: &PathBuf| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .trim()
                    .replace('\\', "\\\\")
                    .replace('\n', "\\n")
            };
            p.push_str(&format!(
                "ssl.keystore.type=PEM\nssl.keystore.certificate.chain={}\nssl.keystore.key={}\n",
                inline(cert),
                inline(key)
            ));
        }
        Some(p)
    }

    /// The principal this client authenticates as (`User:<name>`), if SASL is on.
    pub fn principal(&self) -> Option<String> {
        self.sasl.as_ref().map(|(_, u, _)| format!("User:{u}"))
    }
}

static ACTIVE: OnceLock<KafkaSecurity> = OnceLock::new();

/// Makes `s` the settings of every client built by [`client_config`] in this process (once).
pub fn install(s: KafkaSecurity) -> Result<(), SecurityError> {
    let same = s.clone();
    if ACTIVE.set(s).is_err() && ACTIVE.get() != Some(&same) {
        return Err(SecurityError::AlreadyInstalled);
    }
    Ok(())
}

/// The installed settings, if any.
pub fn active() -> Option<&'static KafkaSecurity> {
    ACTIVE.get()
}

/// A new rdkafka `ClientConfig` with the installed security settings (plaintext if none).
pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    if let Some(s) = ACTIVE.get() {
        s.apply(&mut c);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(protocol: &str, password: Option<&str>) -> KafkaSecurityArgs {
        KafkaSecurityArgs {
            kafka_security_protocol: protocol.into(),
            kafka_sasl_mechanism: "SCRAM-SHA-512".into(),
            kafka_sasl_username: Some("gate".into()),
            kafka_sasl_password: password.map(String::from),
            kafka_ssl_ca: None,
            kafka_ssl_cert: None,
            kafka_ssl_key: None,
        }
    }

    #[test]
    fn inline_passwords_are_refused_and_references_resolve() {
        assert!(matches!(
            args("sasl_ssl", Some("hunter2")).resolve(),
            Err(SecurityError::InlineSecret)
        ));
        assert!(matches!(
            args("sasl_ssl", None).resolve(),
            Err(SecurityError::MissingCredentials("sasl_ssl"))
        ));
        assert!(matches!(
            args("tls", None).resolve(),
            Err(SecurityError::Protocol(_))
        ));
        let dir = std::env::temp_dir().join(format!("ks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        let s = args("SASL_SSL", Some(&format!("file:{}", file.display())))
            .resolve()
            .unwrap();
        assert!(!format!("{s:?}").contains("s3cret-value"));
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.password"), Some("s3cret-value"));
        assert_eq!(s.principal().as_deref(), Some("User:gate"));
        assert!(!format!("{c:?}").contains("s3cret-value"));
        let props = s.java_client_properties().unwrap();
        assert!(props.contains("security.protocol=SASL_SSL\n"), "{props}");
        assert!(props.contains("username=\"gate\" password=\"s3cret-value\";"));
        let missing = args("sasl_ssl", Some("env:BUCKET_TEST_SURELY_UNSET_VAR")).resolve();
        assert!(matches!(missing, Err(SecurityError::Unresolved { .. })));
    }

    #[test]
    fn plaintext_sets_only_the_protocol() {
        let s = args("plaintext", None).resolve().unwrap();
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("sasl.username"), None);
    }

    #[test]
    fn client_certificates_set_the_mtls_locations() {
        let dir = std::env::temp_dir().join(format!("ks-mtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("user.crt"), dir.join("user.key"));
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let mut a = args("ssl", None);
        a.kafka_ssl_cert = Some(cert.clone());
        a.kafka_ssl_key = Some(key.clone());
        let s = a.resolve().unwrap();
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(
            c.get("ssl.certificate.location"),
            Some(cert.to_string_lossy().as_ref())
        );
        assert_eq!(
            c.get("ssl.key.location"),
            Some(key.to_string_lossy().as_ref())
        );
        assert_eq!(c.get("sasl.username"), None);
        let props = s.java_client_properties().unwrap();
        assert!(props.contains("security.protocol=SSL\n"), "{props}");
        assert!(
            props.contains(
                "ssl.keystore.key=-----BEGIN PRIVATE KEY-----\\nBBBB\\n-----END PRIVATE KEY-----\n"
            ),
            "{props}"
        );
        // Half a pair, a missing file, or a certificate on plaintext are refused.
        let mut half = args("ssl", None);
        half.kafka_ssl_cert = Some(cert.clone());
        assert!(matches!(half.resolve(), Err(SecurityError::HalfClientCert)));
        let mut missing = a.clone();
        missing.kafka_ssl_key = Some(dir.join("absent.key"));
        assert!(matches!(
            missing.resolve(),
            Err(SecurityError::ClientCertFile(_))
        ));
        let mut plain = a.clone();
        plain.kafka_security_protocol = "sasl_plaintext".into();
        plain.kafka_sasl_password = Some("env:BUCKET_TEST_SURELY_UNSET_VAR".into());
        plain.kafka_sasl_username = Some("gate".into());
        // The credentials are resolved first; with them unresolvable that error wins.
        assert!(plain.resolve().is_err());
        let mut plain = a;
        plain.kafka_security_protocol = "plaintext".into();
        assert!(matches!(
            plain.resolve(),
            Err(SecurityError::ClientCertWithoutTls("plaintext"))
        ));
    }
}
