//! Which Kafka errors a leader election or a restarting broker causes. Those go away on their own
//! (librdkafka finds the new leader or coordinator), so readers that must ride through a broker
//! fault retry them instead of failing: the gate's restore and the auditor's `verify`.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Longest `through_elections` keeps retrying, and longest a reader tolerates such errors
/// without progress.
pub const ELECTION_WAIT: Duration = Duration::from_secs(60);

/// True for errors that a leader election or a broker restart causes and that clear by themselves.
pub fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::CoordinatorLoadInProgress
                | C::OperationTimedOut
                | C::RequestTimedOut
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::DestroyBroker
        )
    )
}

/// Runs `f` again (it should build a fresh client each time) while it fails with a transient
/// error, for at most [`ELECTION_WAIT`].
pub fn through_elections<T>(mut f: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let deadline = Instant::now() + ELECTION_WAIT;
    loop {
        match f() {
            Err(e) if is_transient(&e) && Instant::now() < deadline => {
                tracing::warn!(error = %e, "cluster not settled; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elections_are_transient_and_authorisation_is_not() {
        let leader = KafkaError::MetadataFetch(RDKafkaErrorCode::NotLeaderForPartition);
        let denied = KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert!(is_transient(&leader));
        assert!(!is_transient(&denied));
        assert!(!is_transient(&KafkaError::PartitionEOF(0)));
    }

    #[test]
    fn a_transient_failure_is_retried_until_it_clears() {
        let mut calls = 0;
        let got = through_elections(|| {
            calls += 1;
            if calls < 3 {
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::LeaderNotAvailable,
                ))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got.ok(), Some(3));
        let mut denied_calls = 0;
        let denied: Result<(), _> = through_elections(|| {
            denied_calls += 1;
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::TopicAuthorizationFailed,
            ))
        });
        assert!(denied.is_err());
        assert_eq!(denied_calls, 1, "a permanent error is not retried");
    }
}
