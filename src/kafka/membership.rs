//! **Group membership**: static members (KIP-345) named by the instance id, the session timeout
//! that bounds how long a silent member keeps its partitions, and which fatal errors mean that
//! another process took this instance's identity. Shared by the gate and the sink.

use std::time::Duration;

use rdkafka::ClientConfig;

/// How long the group waits for a silent member before it moves the member's partitions.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Group membership of a consumer: with `instance_id`, a static member (KIP-345) that gets its
/// partitions back without a rebalance when it restarts within `session_timeout`, and does not
/// leave the group when it closes; without, a dynamic member. The heartbeat is a third of the
/// session, as Kafka recommends.
pub fn apply(c: &mut ClientConfig, instance_id: Option<&str>, session_timeout: Duration) {
    c.set(
        "session.timeout.ms",
        session_timeout.as_millis().to_string(),
    )
    .set(
        "heartbeat.interval.ms",
        (session_timeout.as_millis() / 3).max(1).to_string(),
    );
    if let Some(id) = instance_id {
        c.set("group.instance.id", id);
    }
    if std::env::var(GROUP_PROTOCOL_ENV).is_ok_and(|v| v == "consumer") {
        consumer_protocol(c);
    }
}

/// Environment variable that switches a consumer to KIP-848's `consumer` group protocol
/// (`consumer`; anything else: the classic protocol). Not a supported setting: it exists to
/// measure the two protocols against each other (ADR 0017).
pub const GROUP_PROTOCOL_ENV: &str = "BUCKET_GROUP_PROTOCOL";

/// KIP-848: the broker assigns and times sessions out, so librdkafka refuses the classic
/// protocol's client-side settings.
fn consumer_protocol(c: &mut ClientConfig) {
    c.set("group.protocol", "consumer");
    for classic_only in [
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "partition.assignment.strategy",
    ] {
        c.remove(classic_only);
    }
}

/// Whether a fatal client error means another process took this instance's identity: a static
/// member with the same `group.instance.id` joined, or a producer with the same transactional
/// id initialised after ours.
pub fn is_fencing(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::FencedInstanceId | C::ProducerFenced | C::InvalidProducerEpoch | C::Fenced
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn a_static_member_carries_its_instance_id_and_a_dynamic_one_none() {
        let mut c = ClientConfig::new();
        apply(&mut c, Some("gate-1"), Duration::from_secs(12));
        assert_eq!(c.get("group.instance.id"), Some("gate-1"));
        assert_eq!(c.get("session.timeout.ms"), Some("12000"));
        assert_eq!(c.get("heartbeat.interval.ms"), Some("4000"));
        let mut d = ClientConfig::new();
        apply(&mut d, None, DEFAULT_SESSION_TIMEOUT);
        assert_eq!(d.get("group.instance.id"), None);
        assert_eq!(d.get("session.timeout.ms"), Some("10000"));
    }

    #[test]
    fn the_consumer_protocol_drops_the_classic_only_settings() {
        let mut c = ClientConfig::new();
        c.set("partition.assignment.strategy", "cooperative-sticky");
        apply(&mut c, Some("g"), DEFAULT_SESSION_TIMEOUT);
        consumer_protocol(&mut c);
        assert_eq!(c.get("group.protocol"), Some("consumer"));
        assert_eq!(c.get("group.instance.id"), Some("g"));
        for gone in [
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
        ] {
            assert_eq!(c.get(gone), None, "{gone}");
        }
    }

    #[test]
    fn only_fencing_codes_mean_the_identity_is_taken() {
        for code in [C::FencedInstanceId, C::ProducerFenced, C::Fenced] {
            assert!(is_fencing(code), "{code:?}");
        }
        for code in [C::BrokerTransportFailure, C::NotCoordinator, C::Fatal] {
            assert!(!is_fencing(code), "{code:?}");
        }
    }
}
