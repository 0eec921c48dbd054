//! A client context for short-lived readers that use `enable.partition.eof`: librdkafka also
//! reports each end-of-partition as a global error, which is expected there, not an error.

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use tracing::warn;

/// Logs client errors except partition EOF.
#[derive(Debug, Default, Clone, Copy)]
pub struct EofQuietContext;

impl ClientContext for EofQuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if !eof {
            warn!(%error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for EofQuietContext {}
