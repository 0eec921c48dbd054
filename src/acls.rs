//! Kafka ACLs as code (`deploy/acls.toml`), applied by `bucket acls apply`.
//!
//! librdkafka (and so rdkafka) has no ACL admin API, so the bindings are applied through Kafka's
//! own `kafka-acls` tool (`org.apache.kafka.tools.AclCommand`; locally `deploy/local/kafka-cli.sh
//! acls`, elsewhere any Kafka distribution's `bin/kafka-acls.sh`). This module parses and
//! validates the declaration and turns it into the tool's arguments (pure, tested); [`apply`]
//! runs them, authenticated as the admin through the same `--kafka-*` security flags as every
//! other command. Adding an ACL that exists is a no-op on the broker, so applying is idempotent.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Why ACLs could not be declared or applied.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file does not parse.
    #[error("acls: {0}")]
    Parse(#[from] toml::de::Error),
    /// The file parses but breaks a rule.
    #[error("acls: grant {index}: {message}")]
    Invalid {
        /// 1-based grant number.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading the file or running the tool failed.
    #[error("acls: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The tool exited non-zero.
    #[error("acls: `{command}` failed ({status}): {stderr}")]
    Tool {
        /// Command line without secrets.
        command: String,
        /// Exit status.
        status: String,
        /// Its standard error (last lines).
        stderr: String,
    },
}

/// Kafka resource types an ACL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// A transactional id.
    TransactionalId,
    /// The cluster (IdempotentWrite, ...).
    Cluster,
}

/// How names match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Exact name.
    #[default]
    Literal,
    /// Every name starting with it.
    Prefixed,
}

/// One `[[grant]]`: operations allowed to principals on named resources of one type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `User:<name>` principals.
    pub principals: Vec<String>,
    /// Resource type.
    pub resource: Resource,
    /// Literal or prefixed names.
    #[serde(default)]
    pub pattern: Pattern,
    /// Resource names (not for `cluster`).
    #[serde(default)]
    pub names: Vec<String>,
    /// Kafka ACL operations (Read, Write, Describe, IdempotentWrite, ...).
    pub operations: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default)]
    grant: Vec<Grant>,
}

const OPERATIONS: &[&str] = &[
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "DescribeConfigs",
    "AlterConfigs",
    "IdempotentWrite",
    "All",
];

/// Parses and validates an ACL declaration.
pub fn parse(text: &str) -> Result<Vec<Grant>, AclError> {
    let file: AclFile = toml::from_str(text)?;
    for (i, g) in file.grant.iter().enumerate() {
        let invalid = |message: String| AclError::Invalid {
            index: i + 1,
            message,
        };
        if g.principals.is_empty() {
            return Err(invalid("no principals".into()));
        }
        if let Some(p) = g
            .principals
            .iter()
            .find(|p| !p.starts_with("User:") || p.len() <= 5 || p.contains(char::is_whitespace))
        {
            return Err(invalid(format!("principal {p:?} is not User:<name>")));
        }
        if g.operations.is_empty() {
            return Err(invalid("no operations".into()));
        }
        if let Some(op) = g
            .operations
            .iter()
            .find(|o| !OPERATIONS.contains(&o.as_str()))
        {
            return Err(invalid(format!("unknown operation {op:?}")));
        }
        match g.resource {
            Resource::Cluster if !g.names.is_empty() => {
                return Err(invalid("cluster grants take no names".into()));
            }
            Resource::Cluster => {}
            _ if g.names.is_empty() || g.names.iter().any(|n| n.trim().is_empty()) => {
                return Err(invalid("names must be non-empty".into()));
            }
            _ => {}
        }
        if g.resource != Resource::Cluster && g.operations.iter().any(|o| o == "IdempotentWrite") {
            return Err(invalid(
                "IdempotentWrite applies to the cluster only".into(),
            ));
        }
    }
    Ok(file.grant)
}

/// Every principal the declaration names.
pub fn principals(grants: &[Grant]) -> BTreeSet<String> {
    grants
        .iter()
        .flat_map(|g| g.principals.iter().cloned())
        .collect()
}

/// `kafka-acls --add` arguments of one grant (without `--bootstrap-server`/`--command-config`);
/// topic names get `topic_suffix` appended.
pub fn add_args(g: &Grant, topic_suffix: &str) -> Vec<String> {
    let mut a = vec!["--add".to_string()];
    for p in &g.principals {
        a.extend(["--allow-principal".into(), p.clone()]);
    }
    for o in &g.operations {
        a.extend(["--operation".into(), o.clone()]);
    }
    let flag = match g.resource {
        Resource::Topic => "--topic",
        Resource::Group => "--group",
        Resource::TransactionalId => "--transactional-id",
        Resource::Cluster => "--cluster",
    };
    if g.resource == Resource::Cluster {
        a.push(flag.into());
    } else {
        for n in &g.names {
            let name = if g.resource == Resource::Topic {
                format!("{n}{topic_suffix}")
            } else {
                n.clone()
            };
            a.extend([flag.into(), name]);
        }
    }
    let pattern = match (g.resource, g.pattern) {
        (Resource::Cluster, _) | (_, Pattern::Literal) => "literal",
        (_, Pattern::Prefixed) => "prefixed",
    };
    a.extend(["--resource-pattern-type".into(), pattern.into()]);
    a
}

/// How to reach the `kafka-acls` tool.
#[derive(Debug, Clone)]
pub struct AclTool {
    /// Program and leading arguments, e.g. `deploy/local/kafka-cli.sh acls`.
    pub command: Vec<String>,
    /// Bootstrap servers of the listener the admin authenticates on.
    pub bootstrap: String,
    /// Java client properties (`--command-config`) or None for an unauthenticated listener.
    pub client_properties: Option<String>,
}

/// Writes the admin's client properties to a private (0600) temporary file.
fn private_file(text: &str) -> Result<PathBuf, AclError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::env::temp_dir().join(format!(
        "bucket-acls-{}-{}.properties",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let io = |source| AclError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    Ok(path)
}

/// Runs one tool invocation.
fn run(tool: &AclTool, config: Option<&Path>, args: &[String]) -> Result<(), AclError> {
    let Some((program, lead)) = tool.command.split_first() else {
        return Err(AclError::Io {
            what: "kafka-acls command".into(),
            source: std::io::Error::other("empty"),
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(lead)
        .arg("--bootstrap-server")
        .arg(&tool.bootstrap);
    if let Some(c) = config {
        cmd.arg("--command-config").arg(c);
    }
    cmd.args(args);
    let shown = format!("{} {}", tool.command.join(" "), args.join(" "));
    let out = cmd.output().map_err(|source| AclError::Io {
        what: format!("running {program}"),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
    Err(AclError::Tool {
        command: shown,
        status: out.status.to_string(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// Applies every grant (two tool invocations at a time); returns the argument lists applied.
pub fn apply(
    tool: &AclTool,
    grants: &[Grant],
    topic_suffix: &str,
) -> Result<Vec<Vec<String>>, AclError> {
    let config = tool
        .client_properties
        .as_deref()
        .map(private_file)
        .transpose()?;
    let all: Vec<Vec<String>> = grants.iter().map(|g| add_args(g, topic_suffix)).collect();
    let result = all.chunks(2).try_for_each(|pair| {
        std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|args| s.spawn(|| run(tool, config.as_deref(), args)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(AclError::Io {
                        what: "kafka-acls runner".into(),
                        source: std::io::Error::other("thread panicked"),
                    })
                })
            })
        })
    });
    if let Some(c) = &config {
        let _ = std::fs::remove_file(c);
    }
    result.map(|()| all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_declaration_parses_and_keeps_products_to_intents() {
        let grants = parse(include_str!("../deploy/acls.toml")).unwrap();
        let ps = principals(&grants);
        for p in [
            "User:gate",
            "User:sink",
            "User:product-demo",
            "User:auditor",
        ] {
            assert!(ps.contains(p), "{p}");
        }
        // Products write bucket.intents only; only the gate writes the output topics.
        for g in &grants {
            let writes = g.operations.iter().any(|o| o == "Write" || o == "All");
            if g.resource == Resource::Topic && writes {
                if g.principals.iter().any(|p| p == "User:product-demo") {
                    assert_eq!(g.names, ["bucket.intents"]);
                    assert_eq!(g.pattern, Pattern::Literal);
                }
                if g.names.iter().any(|n| n != "bucket.intents") {
                    assert_eq!(g.principals, ["User:gate"], "{g:?}");
                }
            }
        }
    }

    #[test]
    fn arguments_carry_suffix_pattern_and_principals() {
        let g = &parse(
            r#"
            [[grant]]
            principals = ["User:a", "User:b"]
            resource = "topic"
            pattern = "prefixed"
            names = ["bucket.accepted"]
            operations = ["Read", "Describe"]
            "#,
        )
        .unwrap()[0];
        let a = add_args(g, ".t1");
        let joined = a.join(" ");
        assert_eq!(
            joined,
            "--add --allow-principal User:a --allow-principal User:b --operation Read \
             --operation Describe --topic bucket.accepted.t1 --resource-pattern-type prefixed"
        );
    }

    #[test]
    fn bad_declarations_are_refused() {
        for bad in [
            "[[grant]]\nprincipals=[\"gate\"]\nresource=\"topic\"\nnames=[\"t\"]\noperations=[\"Read\"]",
            "[[grant]]\nprincipals=[\"User:g\"]\nresource=\"topic\"\nnames=[\"t\"]\noperations=[\"Fly\"]",
            "[[grant]]\nprincipals=[\"User:g\"]\nresource=\"cluster\"\nnames=[\"t\"]\noperations=[\"IdempotentWrite\"]",
            "[[grant]]\nprincipals=[\"User:g\"]\nresource=\"topic\"\nnames=[\"t\"]\noperations=[\"IdempotentWrite\"]",
            "[[grant]]\nprincipals=[\"User:g\"]\nresource=\"queue\"\nnames=[\"t\"]\noperations=[\"Read\"]",
            "[[grant]]\nprincipals=[\"User:g\"]\nresource=\"topic\"\nnames=[]\noperations=[\"Read\"]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
