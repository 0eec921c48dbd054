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

/// One ACL binding as the broker lists it (`kafka-acls --list`): the unit compared between the
/// declaration and the cluster. Fields use the broker's spelling (`TOPIC`, `LITERAL`, `WRITE`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// `User:<name>`.
    pub principal: String,
    /// `TOPIC`, `GROUP`, `TRANSACTIONAL_ID`, `CLUSTER`, ...
    pub resource_type: String,
    /// Resource name (`kafka-cluster` for the cluster).
    pub name: String,
    /// `LITERAL` or `PREFIXED`.
    pub pattern_type: String,
    /// Host the binding applies to (`*` for any).
    pub host: String,
    /// `READ`, `WRITE`, `IDEMPOTENT_WRITE`, ...
    pub operation: String,
    /// `ALLOW` or `DENY`.
    pub permission: String,
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} on {} {} ({}, host {})",
            self.permission,
            self.principal,
            self.operation,
            self.resource_type,
            self.name,
            self.pattern_type,
            self.host
        )
    }
}

/// `IdempotentWrite` → `IDEMPOTENT_WRITE` (the broker's spelling of an operation).
fn upper_snake(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `IDEMPOTENT_WRITE` → `IdempotentWrite` (the tool's spelling of an operation).
fn pascal(upper: &str) -> String {
    upper
        .split('_')
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut cs = lower.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every binding the declaration asks for, with topic names suffixed by `topic_suffix`.
pub fn declared_bindings(grants: &[Grant], topic_suffix: &str) -> BTreeSet<Binding> {
    let mut out = BTreeSet::new();
    for g in grants {
        let (resource_type, names) = match g.resource {
            Resource::Cluster => ("CLUSTER", vec!["kafka-cluster".to_string()]),
            Resource::Topic => (
                "TOPIC",
                g.names
                    .iter()
                    .map(|n| format!("{n}{topic_suffix}"))
                    .collect(),
            ),
            Resource::Group => ("GROUP", g.names.clone()),
            Resource::TransactionalId => ("TRANSACTIONAL_ID", g.names.clone()),
        };
        let pattern_type = match (g.resource, g.pattern) {
            (Resource::Cluster, _) | (_, Pattern::Literal) => "LITERAL",
            (_, Pattern::Prefixed) => "PREFIXED",
        };
        for principal in &g.principals {
            for name in &names {
                for op in &g.operations {
                    out.insert(Binding {
                        principal: principal.clone(),
                        resource_type: resource_type.into(),
                        name: name.clone(),
                        pattern_type: pattern_type.into(),
                        host: "*".into(),
                        operation: upper_snake(op),
                        permission: "ALLOW".into(),
                    });
                }
            }
        }
    }
    out
}

/// Parses the output of `kafka-acls --list` into bindings; lines it does not recognise are
/// skipped.
pub fn parse_listing(text: &str) -> Vec<Binding> {
    fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        let start = text.find(&format!("{key}="))? + key.len() + 1;
        let rest = &text[start..];
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
    let mut out = Vec::new();
    let mut resource: Option<(String, String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Current ACLs for resource") {
            resource = match (
                field(line, "resourceType"),
                field(line, "name"),
                field(line, "patternType"),
            ) {
                (Some(t), Some(n), Some(p)) => Some((t.into(), n.into(), p.into())),
                _ => None,
            };
        } else if line.starts_with("(principal=")
            && let Some((t, n, p)) = &resource
            && let (Some(principal), Some(host), Some(operation), Some(permission)) = (
                field(line, "principal"),
                field(line, "host"),
                field(line, "operation"),
                field(line, "permissionType"),
            )
        {
            out.push(Binding {
                principal: principal.into(),
                resource_type: t.clone(),
                name: n.clone(),
                pattern_type: p.clone(),
                host: host.into(),
                operation: operation.into(),
                permission: permission.into(),
            });
        }
    }
    out
}

/// Bindings of the declared principals that the declaration does not ask for. With a topic
/// suffix (tests, side-by-side stacks) only topics carrying that suffix are compared; groups,
/// transactional ids and the cluster always are.
pub fn stale(declared: &BTreeSet<Binding>, listed: &[Binding], topic_suffix: &str) -> Vec<Binding> {
    let principals: BTreeSet<&str> = declared.iter().map(|b| b.principal.as_str()).collect();
    let mut out: Vec<Binding> = listed
        .iter()
        .filter(|b| principals.contains(b.principal.as_str()))
        .filter(|b| b.resource_type != "TOPIC" || b.name.ends_with(topic_suffix))
        .filter(|b| !declared.contains(*b))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `kafka-acls --remove` arguments of one binding; None for a resource type the tool cannot
/// name here.
pub fn remove_args(b: &Binding) -> Option<Vec<String>> {
    let principal_flag = if b.permission == "DENY" {
        "--deny-principal"
    } else {
        "--allow-principal"
    };
    let host_flag = if b.permission == "DENY" {
        "--deny-host"
    } else {
        "--allow-host"
    };
    let mut a: Vec<String> = vec![
        "--remove".into(),
        "--force".into(),
        principal_flag.into(),
        b.principal.clone(),
        host_flag.into(),
        b.host.clone(),
        "--operation".into(),
        pascal(&b.operation),
    ];
    match b.resource_type.as_str() {
        "CLUSTER" => a.push("--cluster".into()),
        "TOPIC" => a.extend(["--topic".into(), b.name.clone()]),
        "GROUP" => a.extend(["--group".into(), b.name.clone()]),
        "TRANSACTIONAL_ID" => a.extend(["--transactional-id".into(), b.name.clone()]),
        _ => return None,
    }
    a.extend([
        "--resource-pattern-type".into(),
        b.pattern_type.to_ascii_lowercase(),
    ]);
    Some(a)
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

/// Runs one tool invocation; returns its standard output.
fn run(tool: &AclTool, config: Option<&Path>, args: &[String]) -> Result<String, AclError> {
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
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
    Err(AclError::Tool {
        command: shown,
        status: out.status.to_string(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// Runs `lists` of tool arguments two at a time, with the admin's client properties in a
/// private temporary file; returns each invocation's standard output, in order.
fn run_all(tool: &AclTool, lists: &[Vec<String>]) -> Result<Vec<String>, AclError> {
    let config = tool
        .client_properties
        .as_deref()
        .map(private_file)
        .transpose()?;
    let mut outputs = Vec::new();
    let result = lists.chunks(2).try_for_each(|pair| {
        std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|args| s.spawn(|| run(tool, config.as_deref(), args)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                let out = h.join().unwrap_or_else(|_| {
                    Err(AclError::Io {
                        what: "kafka-acls runner".into(),
                        source: std::io::Error::other("thread panicked"),
                    })
                })?;
                outputs.push(out);
                Ok(())
            })
        })
    });
    if let Some(c) = &config {
        let _ = std::fs::remove_file(c);
    }
    result.map(|()| outputs)
}

/// Applies every grant (two tool invocations at a time); returns the argument lists applied.
pub fn apply(
    tool: &AclTool,
    grants: &[Grant],
    topic_suffix: &str,
) -> Result<Vec<Vec<String>>, AclError> {
    let all: Vec<Vec<String>> = grants.iter().map(|g| add_args(g, topic_suffix)).collect();
    run_all(tool, &all).map(|_| all)
}

/// Lists the cluster's bindings of every declared principal and returns those the declaration
/// does not ask for (see [`stale`]).
pub fn find_stale(
    tool: &AclTool,
    grants: &[Grant],
    topic_suffix: &str,
) -> Result<Vec<Binding>, AclError> {
    let lists: Vec<Vec<String>> = principals(grants)
        .into_iter()
        .map(|p| vec!["--list".into(), "--principal".into(), p])
        .collect();
    let listed: Vec<Binding> = run_all(tool, &lists)?
        .iter()
        .flat_map(|out| parse_listing(out))
        .collect();
    Ok(stale(
        &declared_bindings(grants, topic_suffix),
        &listed,
        topic_suffix,
    ))
}

/// Removes `bindings` from the cluster; returns the argument lists run.
pub fn remove(tool: &AclTool, bindings: &[Binding]) -> Result<Vec<Vec<String>>, AclError> {
    let all: Vec<Vec<String>> = bindings.iter().filter_map(remove_args).collect();
    run_all(tool, &all).map(|_| all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_declaration_parses_and_keeps_products_to_intents() {
        let grants = parse(include_str!("../../deploy/acls.toml")).unwrap();
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

    const LISTING: &str = "ACLs for principal `User:product-demo`
Current ACLs for resource `ResourcePattern(resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL)`:
 \t(principal=User:product-demo, host=*, operation=IDEMPOTENT_WRITE, permissionType=ALLOW)

Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=bucket.intents.t1, patternType=LITERAL)`:
 \t(principal=User:product-demo, host=*, operation=WRITE, permissionType=ALLOW)
 \t(principal=User:product-demo, host=*, operation=DESCRIBE, permissionType=ALLOW)

Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=bucket.accepted.t1, patternType=LITERAL)`:
 \t(principal=User:product-demo, host=*, operation=WRITE, permissionType=ALLOW)

Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=bucket.accepted.t2, patternType=LITERAL)`:
 \t(principal=User:product-demo, host=*, operation=WRITE, permissionType=ALLOW)
";

    #[test]
    fn a_listing_parses_into_bindings() {
        let b = parse_listing(LISTING);
        assert_eq!(b.len(), 5);
        assert_eq!(b[0].resource_type, "CLUSTER");
        assert_eq!(b[0].operation, "IDEMPOTENT_WRITE");
        assert_eq!(b[2].name, "bucket.intents.t1");
        assert_eq!(b[2].operation, "DESCRIBE");
        assert_eq!(b[2].host, "*");
        assert_eq!(b[2].permission, "ALLOW");
        assert!(parse_listing("no acls here\n(principal=User:x)").is_empty());
    }

    /// A product granted WRITE on an output topic behind the declaration's back is reported,
    /// scoped to this suffix; what the declaration grants is not.
    #[test]
    fn bindings_beyond_the_declaration_are_stale_within_the_suffix() {
        let grants = parse(include_str!("../../deploy/acls.toml")).unwrap();
        let declared = declared_bindings(&grants, ".t1");
        let extra = stale(&declared, &parse_listing(LISTING), ".t1");
        assert_eq!(extra.len(), 1, "{extra:?}");
        assert_eq!(extra[0].name, "bucket.accepted.t1");
        assert_eq!(extra[0].operation, "WRITE");
        assert_eq!(
            remove_args(&extra[0]).unwrap().join(" "),
            "--remove --force --allow-principal User:product-demo --allow-host * --operation Write --topic bucket.accepted.t1 --resource-pattern-type literal"
        );
        // Without a suffix every topic counts.
        let everything = stale(&declared_bindings(&grants, ""), &parse_listing(LISTING), "");
        assert!(everything.len() >= 3, "{everything:?}");
    }

    #[test]
    fn operation_spellings_round_trip() {
        for op in OPERATIONS {
            assert_eq!(pascal(&upper_snake(op)), *op);
        }
        assert_eq!(upper_snake("IdempotentWrite"), "IDEMPOTENT_WRITE");
    }
}
