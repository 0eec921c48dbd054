//! Topics as code: parses `topics/topics.toml`, creates what is missing, and reports drift
//! between the declaration and the cluster without ever altering a live topic.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use serde::Deserialize;

/// Topic declaration or cluster problems.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// The declaration file does not parse or breaks a rule.
    #[error("topic declaration: {0}")]
    Declaration(String),
    /// Kafka admin call failed.
    #[error("kafka admin: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    defaults: Replication,
    #[serde(default)]
    profiles: BTreeMap<String, Replication>,
    topic: Vec<TopicFile>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Replication {
    replication_factor: i32,
    min_insync_replicas: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicFile {
    name: String,
    partitions: i32,
    #[serde(default)]
    doc: String,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

/// One topic as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Topic configs, including `min.insync.replicas`.
    pub config: BTreeMap<String, String>,
    /// What the topic is for.
    pub doc: String,
}

/// The default declaration, compiled in so the binary works outside the repo.
pub const DEFAULT_DECLARATION: &str = include_str!("../../topics/topics.toml");

/// Parses a declaration for a profile (`None` = production defaults).
pub fn parse(text: &str, profile: Option<&str>) -> Result<Vec<TopicSpec>, TopicsError> {
    let file: File = toml::from_str(text).map_err(|e| TopicsError::Declaration(e.to_string()))?;
    let rep = match profile {
        None => file.defaults,
        Some(p) => *file
            .profiles
            .get(p)
            .ok_or_else(|| TopicsError::Declaration(format!("no profile {p:?}")))?,
    };
    let specs: Vec<TopicSpec> = file
        .topic
        .into_iter()
        .map(|t| {
            let mut config = t.config;
            config.insert(
                "min.insync.replicas".into(),
                rep.min_insync_replicas.to_string(),
            );
            TopicSpec {
                name: t.name,
                partitions: t.partitions,
                replication_factor: rep.replication_factor,
                config,
                doc: t.doc,
            }
        })
        .collect();
    let count = |n: &str| specs.iter().find(|t| t.name == n).map(|t| t.partitions);
    if count("bucket.intents") != count("bucket.audit") {
        return Err(TopicsError::Declaration(
            "bucket.audit must have as many partitions as bucket.intents".into(),
        ));
    }
    let changelog = count("bucket.state-changelog");
    if changelog.is_some_and(|n| Some(n) != count("bucket.intents")) {
        return Err(TopicsError::Declaration(
            "bucket.state-changelog must have as many partitions as bucket.intents".into(),
        ));
    }
    if count("bucket.control").is_some_and(|n| n != 1) {
        return Err(TopicsError::Declaration(
            "bucket.control must have exactly one partition (one ordered stream)".into(),
        ));
    }
    Ok(specs)
}

/// What `apply` did or found for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    /// Created now.
    Created,
    /// Exists and matches the declaration.
    UpToDate,
    /// Exists and differs; each string names one difference. Nothing was changed.
    Drift(Vec<String>),
}

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, TopicsError> {
    Ok(crate::kafka::security::client_config()
        .set("bootstrap.servers", brokers)
        .create()?)
}

/// Creates missing topics and reports drift on existing ones, in declaration order.
pub async fn apply(
    brokers: &str,
    specs: &[TopicSpec],
) -> Result<Vec<(String, TopicStatus)>, TopicsError> {
    let admin = admin(brokers)?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut out = Vec::new();
    for spec in specs {
        let configs: Vec<(&str, &str)> = spec
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut new = NewTopic::new(
            &spec.name,
            spec.partitions,
            TopicReplication::Fixed(spec.replication_factor),
        );
        for (k, v) in &configs {
            new = new.set(k, v);
        }
        let result = admin.create_topics([&new], &opts).await?;
        match result.into_iter().next() {
            Some(Ok(_)) => out.push((spec.name.clone(), TopicStatus::Created)),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                let drift = drift(&admin, spec).await?;
                let status = if drift.is_empty() {
                    TopicStatus::UpToDate
                } else {
                    TopicStatus::Drift(drift)
                };
                out.push((spec.name.clone(), status));
            }
            Some(Err((_, code))) => {
                return Err(TopicsError::Kafka(rdkafka::error::KafkaError::AdminOp(
                    code,
                )));
            }
            None => {
                return Err(TopicsError::Declaration(format!(
                    "no result creating {}",
                    spec.name
                )));
            }
        }
    }
    Ok(out)
}

async fn drift(
    admin: &AdminClient<DefaultClientContext>,
    spec: &TopicSpec,
) -> Result<Vec<String>, TopicsError> {
    let mut diffs = Vec::new();
    let md = admin
        .inner()
        .fetch_metadata(Some(&spec.name), Duration::from_secs(10))?;
    if let Some(t) = md.topics().first() {
        let partitions = t.partitions().len() as i32;
        if partitions != spec.partitions {
            diffs.push(format!(
                "partitions: declared {}, live {partitions}",
                spec.partitions
            ));
        }
        if let Some(p) = t.partitions().first() {
            let rf = p.replicas().len() as i32;
            if rf != spec.replication_factor {
                diffs.push(format!(
                    "replication factor: declared {}, live {rf}",
                    spec.replication_factor
                ));
            }
        }
    }
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&spec.name)], &opts)
        .await?;
    if let Some(Ok(resource)) = described.into_iter().next() {
        for (key, want) in &spec.config {
            let live = resource.get(key).and_then(|e| e.value.clone());
            if live.as_deref() != Some(want.as_str()) {
                diffs.push(format!(
                    "{key}: declared {want}, live {}",
                    live.unwrap_or_else(|| "<unset>".into())
                ));
            }
        }
    }
    Ok(diffs)
}

/// The Kubernetes resource name of a topic: lower case, `.` and `_` become `-` (Strimzi keeps
/// the real name in `spec.topicName`).
pub fn resource_name(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect()
}

/// Strimzi `KafkaTopic` manifests (YAML, one document per topic) for `cluster`, in `namespace`
/// when it is not empty. Deterministic: the same declaration always gives the same text, so a
/// committed copy can be compared with it.
pub fn strimzi_manifests(specs: &[TopicSpec], cluster: &str, namespace: &str) -> String {
    // JSON strings are valid YAML scalars and quote whatever a name or value holds.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut out = String::from(
        "# Strimzi KafkaTopic resources for BHIV Bucket. GENERATED from topics/topics.toml by\n\
         # `bucket topics manifests --format strimzi --out deploy/k8s/base/topics.yaml`: do not\n\
         # edit, change the declaration and regenerate (tests/manifests.rs fails on any\n\
         # difference).\n",
    );
    for t in specs {
        out.push_str("---\n");
        for line in t.doc.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str("apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata:\n");
        out.push_str(&format!("  name: {}\n", q(&resource_name(&t.name))));
        if !namespace.is_empty() {
            out.push_str(&format!("  namespace: {}\n", q(namespace)));
        }
        out.push_str("  labels:\n");
        out.push_str(&format!("    strimzi.io/cluster: {}\n", q(cluster)));
        out.push_str("    app.kubernetes.io/part-of: bhiv-bucket\n");
        out.push_str("spec:\n");
        out.push_str(&format!("  topicName: {}\n", q(&t.name)));
        out.push_str(&format!("  partitions: {}\n", t.partitions));
        out.push_str(&format!("  replicas: {}\n", t.replication_factor));
        out.push_str("  config:\n");
        for (k, v) in &t.config {
            out.push_str(&format!("    {}: {}\n", q(k), q(v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strimzi_manifests_carry_the_declaration() {
        let specs = parse(DEFAULT_DECLARATION, None).unwrap();
        let yaml = strimzi_manifests(&specs, "bucket", "bhiv-bucket");
        let docs: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), specs.len());
        for (doc, spec) in docs.iter().zip(&specs) {
            assert_eq!(doc["kind"], "KafkaTopic");
            assert_eq!(doc["metadata"]["labels"]["strimzi.io/cluster"], "bucket");
            assert_eq!(doc["spec"]["topicName"], spec.name.as_str());
            assert_eq!(doc["spec"]["partitions"], spec.partitions);
            assert_eq!(doc["spec"]["replicas"], 3);
            assert_eq!(doc["spec"]["config"]["min.insync.replicas"], "2");
            assert_eq!(
                doc["spec"]["config"]["max.message.bytes"],
                spec.config["max.message.bytes"].as_str()
            );
        }
        assert_eq!(docs[0]["metadata"]["name"], "bucket-intents");
        assert!(!strimzi_manifests(&specs, "c", "").contains("namespace:"));
        assert_eq!(
            resource_name("bucket.accepted.Ai_Avatar"),
            "bucket-accepted-ai-avatar"
        );
    }

    #[test]
    fn shipped_declaration_parses_for_both_profiles() {
        let prod = parse(DEFAULT_DECLARATION, None).unwrap();
        let local = parse(DEFAULT_DECLARATION, Some("local")).unwrap();
        assert_eq!(prod.len(), 6);
        let control = prod.iter().find(|t| t.name == "bucket.control").unwrap();
        assert_eq!(control.partitions, 1);
        let changelog = prod
            .iter()
            .find(|t| t.name == "bucket.state-changelog")
            .unwrap();
        assert_eq!(changelog.config["cleanup.policy"], "compact");
        assert!(prod.iter().all(|t| t.replication_factor == 3));
        assert!(local.iter().all(|t| t.replication_factor == 1));
        let intents = prod.iter().find(|t| t.name == "bucket.intents").unwrap();
        assert_eq!(intents.config["max.message.bytes"], "20971520");
        assert!(parse(DEFAULT_DECLARATION, Some("nope")).is_err());
    }

    #[test]
    fn the_changelog_must_be_co_partitioned_with_the_intents() {
        let text = DEFAULT_DECLARATION.replace(
            "partitions = 6                      # must equal bucket.intents: one changelog",
            "partitions = 3 # one changelog",
        );
        assert_ne!(text, DEFAULT_DECLARATION);
        assert!(parse(&text, None).is_err());
    }

    #[test]
    fn the_control_topic_must_be_one_ordered_partition() {
        let text = DEFAULT_DECLARATION.replace(
            "partitions = 1                      # one ordered stream",
            "partitions = 2 #",
        );
        assert_ne!(text, DEFAULT_DECLARATION);
        assert!(parse(&text, None).is_err());
    }

    #[test]
    fn audit_partitions_must_match_intents() {
        let text = DEFAULT_DECLARATION.replace(
            "partitions = 6                      # must equal",
            "partitions = 3                      # must equal",
        );
        assert!(parse(&text, None).is_err());
    }
}
