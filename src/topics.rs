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
pub const DEFAULT_DECLARATION: &str = include_str!("../topics/topics.toml");

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
    Ok(crate::kafka_security::client_config()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_declaration_parses_for_both_profiles() {
        let prod = parse(DEFAULT_DECLARATION, None).unwrap();
        let local = parse(DEFAULT_DECLARATION, Some("local")).unwrap();
        assert_eq!(prod.len(), 4);
        assert!(prod.iter().all(|t| t.replication_factor == 3));
        assert!(local.iter().all(|t| t.replication_factor == 1));
        let intents = prod.iter().find(|t| t.name == "bucket.intents").unwrap();
        assert_eq!(intents.config["max.message.bytes"], "20971520");
        assert!(parse(DEFAULT_DECLARATION, Some("nope")).is_err());
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
