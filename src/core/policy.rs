//! Policy as code: the validated form of `deploy/policy.toml`. Parsing is pure; reading the file
//! and reloading it belong to the shell.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::intent::Operation;

/// Hard ceiling on artifact content, whatever the policy says (SPEC §5).
pub const MAX_CONTENT_BYTES: u64 = 16 * 1024 * 1024;
/// Hard ceiling on the number of products (SPEC §5).
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
    classes: BTreeMap<String, ClassFile>,
    products: BTreeMap<String, ProductFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_content_bytes: u64,
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
}

/// The active policy, validated, with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Hex SHA-256 of the file bytes: stamped on every decision.
    pub version: String,
    /// Global content size limit.
    pub max_content_bytes: u64,
    /// Artifact classes by name.
    pub classes: BTreeMap<String, ClassRule>,
    /// Products by id.
    pub products: BTreeMap<String, ProductRule>,
}

impl Policy {
    /// Parses and validates policy text; the version is the SHA-256 of exactly these bytes.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
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
            products.insert(
                id,
                ProductRule {
                    display_name: p.display_name,
                    classes: p.classes.into_iter().collect(),
                    max_content_bytes: max,
                },
            );
        }
        Ok(Policy {
            version,
            max_content_bytes: file.limits.max_content_bytes,
            classes,
            products,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The policy shipped in `deploy/`, used by the core's tests.
    pub(crate) fn shipped() -> Policy {
        Policy::parse(include_str!("../../deploy/policy.toml")).expect("shipped policy parses")
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
        let err = Policy::parse(&text).unwrap_err();
        assert!(err.to_string().contains("max_contnet_bytes"), "{err}");
    }

    #[test]
    fn immutable_classes_cannot_be_made_mutable() {
        let text = include_str!("../../deploy/policy.toml").replace(
            "[classes.model_checkpoint]\noperations = [\"CREATE\"]",
            "[classes.model_checkpoint]\noperations = [\"CREATE\", \"UPDATE\"]",
        );
        assert!(Policy::parse(&text).is_err());
    }

    #[test]
    fn version_changes_with_bytes() {
        let a = include_str!("../../deploy/policy.toml");
        let b = format!("{a}\n# comment\n");
        assert_ne!(
            Policy::parse(a).unwrap().version,
            Policy::parse(&b).unwrap().version
        );
    }
}
