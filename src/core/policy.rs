//! Policy as code: the validated form of `deploy/policy.toml`. Parsing is pure; reading the file
//! and reloading it belong to the shell.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::intent::Operation;
use super::signature::VerifyKey;

/// Hard ceiling on artifact content, whatever the policy says (docs/origins.md#declared).
pub const MAX_CONTENT_BYTES: u64 = 16 * 1024 * 1024;
/// Hard ceiling on the number of products (docs/origins.md#declared).
pub const MAX_PRODUCTS: usize = 100;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The TOML does not parse or has unknown keys.
    #[error("policy does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// The TOML parses but breaks a rule.
    #[error("policy is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    limits: LimitsFile,
    #[serde(default)]
    threats: ThreatsFile,
    classes: BTreeMap<String, ClassFile>,
    products: BTreeMap<String, ProductFile>,
    #[serde(default)]
    integrations: BTreeMap<String, IntegrationFile>,
    #[serde(default)]
    audit: AuditFile,
    #[serde(default)]
    approvals: Option<super::approvals::ApprovalsFile>,
    quotas: QuotasFile,
    offenders: OffendersFile,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    #[serde(default)]
    keys: Vec<AuditKeyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditKeyFile {
    id: String,
    public_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_content_bytes: u64,
    max_metadata_bytes: usize,
    max_metadata_depth: usize,
    max_metadata_keys: usize,
    max_clock_skew_ms: i64,
    require_signature: bool,
    replay_window: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreatsFile {
    #[serde(default = "yes")]
    secret_scan: bool,
    #[serde(default = "default_scan_bytes")]
    secret_scan_max_bytes: usize,
    #[serde(default = "default_reserved")]
    reserved_metadata_keys: Vec<String>,
}

impl Default for ThreatsFile {
    fn default() -> Self {
        ThreatsFile {
            secret_scan: true,
            secret_scan_max_bytes: default_scan_bytes(),
            reserved_metadata_keys: default_reserved(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_scan_bytes() -> usize {
    1024 * 1024
}
fn default_reserved() -> Vec<String> {
    [
        "version",
        "decided_at",
        "policy_version",
        "accepted",
        "approved_by",
        "server_time",
    ]
    .map(String::from)
    .to_vec()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationFile {
    products: Vec<String>,
    #[serde(default = "active")]
    status: String,
    #[serde(default)]
    description: String,
    keys: Vec<KeyFile>,
}

fn active() -> String {
    "active".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: String,
    alg: String,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default = "active")]
    status: String,
}

/// Resolves secret references (`env:NAME`, `file:path`) for the policy; the shell provides it.
pub trait SecretSource {
    /// The secret bytes a reference points to.
    fn resolve(&self, reference: &str) -> Result<Vec<u8>, String>;
}

/// A secret source that knows no secrets (policies without HMAC keys, tests).
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn resolve(&self, reference: &str) -> Result<Vec<u8>, String> {
        Err(format!("no secret source for {reference:?}"))
    }
}

/// Bounds and switches that apply to every product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest metadata text, bytes.
    pub max_metadata_bytes: usize,
    /// Deepest metadata nesting.
    pub max_metadata_depth: usize,
    /// Most metadata keys, counted over all levels.
    pub max_metadata_keys: usize,
    /// Largest accepted |client_time − server time|, ms.
    pub max_clock_skew_ms: i64,
    /// Refuse intents without a valid signature.
    pub require_signature: bool,
    /// Intent ids remembered per partition for replay detection.
    pub replay_window: usize,
}

/// Threat detector settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threats {
    /// Scan content and metadata for secrets and private keys.
    pub secret_scan: bool,
    /// Scan at most this many bytes of content.
    pub secret_scan_max_bytes: usize,
    /// Metadata keys a client may not set (server-owned fields).
    pub reserved_metadata_keys: BTreeSet<String>,
}

/// Whether a key or integration may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In use.
    Active,
    /// Refused.
    Revoked,
}

/// One key of an integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRule {
    /// Key material.
    pub key: VerifyKey,
    /// Active or revoked.
    pub status: Status,
}

/// An approved integration: who may write for which products, with which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRule {
    /// Products it may write for.
    pub products: BTreeSet<String>,
    /// Active or revoked.
    pub status: Status,
    /// Keys by id (several allow rotation).
    pub keys: BTreeMap<String, KeyRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassFile {
    operations: Vec<String>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductFile {
    display_name: String,
    classes: Vec<String>,
    #[serde(default)]
    max_content_bytes: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    max_artifacts: Option<u64>,
    #[serde(default)]
    rate_per_sec: Option<u32>,
    #[serde(default)]
    burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotasFile {
    global_max_bytes: u64,
    global_max_artifacts: u64,
    product_max_bytes: u64,
    product_max_artifacts: u64,
    warning_ratio: f64,
    rate_per_sec: u32,
    burst: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffendersFile {
    threshold: u32,
    window_ms: i64,
    cool_off_ms: i64,
}

/// Storage quotas and rate limits (T1, T6: docs/origins.md#threats).
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    /// All products together, stored bytes.
    pub global_max_bytes: u64,
    /// All products together, live artifacts.
    pub global_max_artifacts: u64,
    /// Share of a quota at which a warning audit event is written.
    pub warning_ratio: f64,
}

/// Repeat-offender detection (T6, escalation cascades: docs/origins.md#t6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offenders {
    /// Rejections within `window_ms` that start a cooling-off.
    pub threshold: u32,
    /// Sliding window, ms.
    pub window_ms: i64,
    /// Cooling-off length, ms.
    pub cool_off_ms: i64,
}

/// Rules for one artifact class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRule {
    /// Operations the class permits; immutable classes permit only CREATE.
    pub operations: BTreeSet<Operation>,
    /// What the class is for.
    pub description: String,
}

/// Rules for one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRule {
    /// Human name.
    pub display_name: String,
    /// Classes this product may write.
    pub classes: BTreeSet<String>,
    /// Content size limit for this product (≤ the global limit).
    pub max_content_bytes: u64,
    /// Stored bytes quota (live versions).
    pub max_bytes: u64,
    /// Live artifacts quota.
    pub max_artifacts: u64,
    /// Sustained intents per second.
    pub rate_per_sec: u32,
    /// Intents allowed in a burst above the rate.
    pub burst: u32,
}

/// The active policy, validated, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Hex SHA-256 of the file bytes: stamped on every decision.
    pub version: String,
    /// Global content size limit.
    pub max_content_bytes: u64,
    /// Artifact classes by name.
    pub classes: BTreeMap<String, ClassRule>,
    /// Products by id.
    pub products: BTreeMap<String, ProductRule>,
    /// Approved integrations by id.
    pub integrations: BTreeMap<String, IntegrationRule>,
    /// Global bounds.
    pub limits: Limits,
    /// Threat detector settings.
    pub threats: Threats,
    /// Public keys of gates signing audit checkpoints, by key id.
    pub audit_keys: BTreeMap<String, VerifyKey>,
    /// Global quotas.
    pub quotas: Quotas,
    /// Repeat-offender settings.
    pub offenders: Offenders,
    /// Who approves the next policy (`[approvals]`); None: the policy names no approvers.
    pub approvals: Option<super::approvals::ApproverSet>,
}

fn status(s: &str, what: &str) -> Result<Status, PolicyError> {
    match s {
        "active" => Ok(Status::Active),
        "revoked" => Ok(Status::Revoked),
        other => Err(PolicyError::Invalid(format!(
            "{what}: status must be \"active\" or \"revoked\", got {other:?}"
        ))),
    }
}

fn key_rule(
    integration: &str,
    k: &KeyFile,
    secrets: &dyn SecretSource,
) -> Result<KeyRule, PolicyError> {
    use base64::Engine;
    let what = format!("integration {integration} key {}", k.id);
    let invalid = |m: String| PolicyError::Invalid(format!("{what}: {m}"));
    let key = match (k.alg.as_str(), &k.public_key, &k.secret) {
        ("ed25519", Some(pk), None) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(pk)
                .map_err(|e| invalid(format!("public_key is not base64: {e}")))?;
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| invalid("public_key must be 32 bytes".into()))?;
            VerifyKey::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&arr)
                    .map_err(|e| invalid(format!("bad public key: {e}")))?,
            )
        }
        ("hmac-sha256", None, Some(reference)) => {
            if !(reference.starts_with("env:") || reference.starts_with("file:")) {
                return Err(invalid(
                    "secret must be a reference (env:NAME or file:path), never inline".into(),
                ));
            }
            let secret = secrets.resolve(reference).map_err(invalid)?;
            if secret.len() < 16 {
                return Err(invalid("secret must be at least 16 bytes".into()));
            }
            VerifyKey::Hmac(secret)
        }
        ("ed25519", _, _) => return Err(invalid("ed25519 keys need public_key only".into())),
        ("hmac-sha256", _, _) => return Err(invalid("hmac-sha256 keys need secret only".into())),
        (alg, _, _) => return Err(invalid(format!("unknown alg {alg:?}"))),
    };
    Ok(KeyRule {
        key,
        status: status(&k.status, &what)?,
    })
}

impl Policy {
    /// Parses and validates a policy without HMAC secrets (they fail to resolve).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Self::parse_with(text, &NoSecrets)
    }

    /// Parses and validates policy text; the version is the SHA-256 of exactly these bytes.
    pub fn parse_with(text: &str, secrets: &dyn SecretSource) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        let version = hex::encode(Sha256::digest(text.as_bytes()));
        let invalid = |m: String| Err(PolicyError::Invalid(m));
        if file.limits.max_content_bytes == 0 || file.limits.max_content_bytes > MAX_CONTENT_BYTES {
            return invalid(format!(
                "limits.max_content_bytes must be in 1..={MAX_CONTENT_BYTES}, got {}",
                file.limits.max_content_bytes
            ));
        }
        if file.products.len() > MAX_PRODUCTS {
            return invalid(format!(
                "{} products declared, at most {MAX_PRODUCTS} allowed",
                file.products.len()
            ));
        }
        let mut classes = BTreeMap::new();
        for (name, c) in file.classes {
            let mut operations = BTreeSet::new();
            for op in &c.operations {
                match Operation::parse(op) {
                    Some(o) => operations.insert(o),
                    None => return invalid(format!("class {name}: unknown operation {op:?}")),
                };
            }
            if !operations.contains(&Operation::Create) {
                return invalid(format!("class {name}: must allow CREATE"));
            }
            classes.insert(
                name,
                ClassRule {
                    operations,
                    description: c.description,
                },
            );
        }
        for immutable in ["model_checkpoint", "audit_entry"] {
            match classes.get(immutable) {
                Some(c) if c.operations.len() == 1 => {}
                Some(_) => {
                    return invalid(format!(
                        "class {immutable} is immutable by contract: operations must be [\"CREATE\"]"
                    ));
                }
                None => return invalid(format!("class {immutable} must be declared")),
            }
        }
        let mut products = BTreeMap::new();
        for (id, p) in file.products {
            if id.is_empty() || id.contains('/') {
                return invalid(format!("product id {id:?} must be non-empty without '/'"));
            }
            for c in &p.classes {
                if !classes.contains_key(c) {
                    return invalid(format!("product {id}: unknown class {c:?}"));
                }
            }
            let max = p.max_content_bytes.unwrap_or(file.limits.max_content_bytes);
            if max == 0 || max > file.limits.max_content_bytes {
                return invalid(format!(
                    "product {id}: max_content_bytes {max} must be in 1..={}",
                    file.limits.max_content_bytes
                ));
            }
            let rate = p.rate_per_sec.unwrap_or(file.quotas.rate_per_sec);
            if rate == 0 {
                return invalid(format!("product {id}: rate_per_sec must be > 0"));
            }
            products.insert(
                id,
                ProductRule {
                    display_name: p.display_name,
                    classes: p.classes.into_iter().collect(),
                    max_content_bytes: max,
                    max_bytes: p.max_bytes.unwrap_or(file.quotas.product_max_bytes),
                    max_artifacts: p.max_artifacts.unwrap_or(file.quotas.product_max_artifacts),
                    rate_per_sec: rate,
                    burst: p.burst.unwrap_or(file.quotas.burst),
                },
            );
        }
        let mut integrations = BTreeMap::new();
        for (id, i) in &file.integrations {
            for p in &i.products {
                if !products.contains_key(p) {
                    return invalid(format!("integration {id}: unknown product {p:?}"));
                }
            }
            if i.keys.is_empty() {
                return invalid(format!("integration {id}: at least one key is required"));
            }
            let mut keys = BTreeMap::new();
            for k in &i.keys {
                if keys
                    .insert(k.id.clone(), key_rule(id, k, secrets)?)
                    .is_some()
                {
                    return invalid(format!("integration {id}: duplicate key id {:?}", k.id));
                }
            }
            let _ = &i.description;
            integrations.insert(
                id.clone(),
                IntegrationRule {
                    products: i.products.iter().cloned().collect(),
                    status: status(&i.status, &format!("integration {id}"))?,
                    keys,
                },
            );
        }
        let mut audit_keys = BTreeMap::new();
        for k in &file.audit.keys {
            let rule = key_rule(
                "audit",
                &KeyFile {
                    id: k.id.clone(),
                    alg: "ed25519".into(),
                    public_key: Some(k.public_key.clone()),
                    secret: None,
                    status: "active".into(),
                },
                secrets,
            )?;
            audit_keys.insert(k.id.clone(), rule.key);
        }
        let l = &file.limits;
        if l.max_clock_skew_ms <= 0 || l.replay_window == 0 || l.max_metadata_bytes == 0 {
            return invalid(
                "limits: max_clock_skew_ms, replay_window and max_metadata_bytes must be > 0"
                    .into(),
            );
        }
        let approvals = file
            .approvals
            .as_ref()
            .map(super::approvals::ApproverSet::from_file)
            .transpose()
            .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let ratio = file.quotas.warning_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return invalid(format!(
                "quotas: warning_ratio must be a number in (0, 1], not {ratio}"
            ));
        }
        Ok(Policy {
            version,
            max_content_bytes: file.limits.max_content_bytes,
            classes,
            products,
            integrations,
            limits: Limits {
                max_metadata_bytes: l.max_metadata_bytes,
                max_metadata_depth: l.max_metadata_depth,
                max_metadata_keys: l.max_metadata_keys,
                max_clock_skew_ms: l.max_clock_skew_ms,
                require_signature: l.require_signature,
                replay_window: l.replay_window,
            },
            threats: Threats {
                secret_scan: file.threats.secret_scan,
                secret_scan_max_bytes: file.threats.secret_scan_max_bytes,
                reserved_metadata_keys: file.threats.reserved_metadata_keys.into_iter().collect(),
            },
            audit_keys,
            quotas: Quotas {
                global_max_bytes: file.quotas.global_max_bytes,
                global_max_artifacts: file.quotas.global_max_artifacts,
                warning_ratio: file.quotas.warning_ratio,
            },
            offenders: Offenders {
                threshold: file.offenders.threshold,
                window_ms: file.offenders.window_ms,
                cool_off_ms: file.offenders.cool_off_ms,
            },
            approvals,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The policy shipped in `deploy/`, used by the core's tests.
    pub(crate) fn shipped() -> Policy {
        Policy::parse_with(include_str!("../../deploy/policy.toml"), &DemoSecrets)
            .expect("shipped policy parses")
    }

    /// Resolves `file:` references against the repository's deploy/ directory.
    pub(crate) struct DemoSecrets;
    impl SecretSource for DemoSecrets {
        fn resolve(&self, reference: &str) -> Result<Vec<u8>, String> {
            let path = reference
                .strip_prefix("file:")
                .ok_or("only file: in tests")?;
            let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy")
                .join(path);
            std::fs::read_to_string(&full)
                .map(|s| s.trim().as_bytes().to_vec())
                .map_err(|e| format!("{}: {e}", full.display()))
        }
    }

    #[test]
    fn shipped_policy_parses_with_seed_products() {
        let p = shipped();
        for id in [
            "ai_assistant",
            "ai_avatar",
            "gurukul",
            "enforcement_engine",
            "workflow",
        ] {
            assert!(p.products.contains_key(id), "missing {id}");
        }
        assert_eq!(p.version.len(), 64);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = include_str!("../../deploy/policy.toml")
            .replace("[limits]", "[limits]\nmax_contnet_bytes = 5");
        let err = Policy::parse_with(&text, &DemoSecrets).unwrap_err();
        assert!(err.to_string().contains("max_contnet_bytes"), "{err}");
    }

    #[test]
    fn the_quota_warning_ratio_must_be_a_share() {
        for bad in ["0.0", "1.5", "nan", "-0.2"] {
            let text = include_str!("../../deploy/policy.toml")
                .replace("warning_ratio = 0.9", &format!("warning_ratio = {bad}"));
            let err = Policy::parse_with(&text, &DemoSecrets).unwrap_err();
            assert!(err.to_string().contains("warning_ratio"), "{bad}: {err}");
        }
        let text = include_str!("../../deploy/policy.toml")
            .replace("warning_ratio = 0.9", "warning_ratio = 1.0");
        assert!(Policy::parse_with(&text, &DemoSecrets).is_ok());
    }

    #[test]
    fn immutable_classes_cannot_be_made_mutable() {
        let text = include_str!("../../deploy/policy.toml").replace(
            "[classes.model_checkpoint]\noperations = [\"CREATE\"]",
            "[classes.model_checkpoint]\noperations = [\"CREATE\", \"UPDATE\"]",
        );
        assert!(Policy::parse_with(&text, &DemoSecrets).is_err());
    }

    #[test]
    fn inline_hmac_secrets_are_refused() {
        let text = include_str!("../../deploy/policy.toml").replacen(
            "secret = \"file:",
            "secret = \"inline-",
            1,
        );
        let err = Policy::parse_with(&text, &DemoSecrets).unwrap_err();
        assert!(err.to_string().contains("never inline"), "{err}");
    }

    #[test]
    fn version_changes_with_bytes() {
        let a = include_str!("../../deploy/policy.toml");
        let b = format!("{a}\n# comment\n");
        assert_ne!(
            Policy::parse_with(a, &DemoSecrets).unwrap().version,
            Policy::parse_with(&b, &DemoSecrets).unwrap().version
        );
    }
}
