//! Transaction error paths of the gate's commit, against librdkafka's mock cluster (no stack):
//! the errors a real broker cannot be made to return on demand. Each case drives the gate's own
//! pieces (`gate::clients` settings and `commit_within`, `gate::txn::OpenTxn` offsets) and
//! checks the classification `gate::session::eos` acts on:
//!
//! - a retriable coordinator error on EndTxn is retried inside the commit, which succeeds;
//! - an abortable error (EndTxn `UNKNOWN_PRODUCER_ID`, AddOffsetsToTxn
//!   `GROUP_AUTHORIZATION_FAILED`) is reported as `txn_requires_abort`; after
//!   `abort_transaction` the same producer commits the next transaction (the gate's
//!   abort-and-rewind path), and the rewind is the batch's first offset;
//! - a fencing error (EndTxn `INVALID_PRODUCER_EPOCH`) is fatal: the session must end;
//! - losing the transaction coordinator (its broker down, the coordinator moved to another
//!   broker) mid-transaction never blocks the loop past the commit deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bhiv_bucket::gate::clients::{
    COMMIT_DEADLINE, commit_within, consumer_config, producer_config,
};
use bhiv_bucket::gate::txn::{OpenTxn, Rewind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

const INTENTS: &str = "bucket.intents";
const OUT: &str = "bucket.accepted";
const TIMEOUT: Duration = Duration::from_secs(30);

type TxProducer = Arc<ThreadedProducer<DefaultProducerContext>>;

/// A mock cluster with the gate's topics and a consumer that has joined the group.
fn cluster() -> (MockCluster<'static, DefaultProducerContext>, BaseConsumer) {
    let mock = MockCluster::new(3).expect("mock cluster");
    mock.create_topic(INTENTS, 2, 3).expect("intents topic");
    mock.create_topic(OUT, 2, 3).expect("outcome topic");
    let consumer: BaseConsumer = consumer_config(&mock.bootstrap_servers(), "gate", "c1")
        .create()
        .expect("consumer");
    consumer.subscribe(&[INTENTS]).expect("subscribe");
    let deadline = Instant::now() + TIMEOUT;
    while consumer.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the consumer never joined the group"
        );
        let _ = consumer.poll(Duration::from_millis(100));
    }
    (mock, consumer)
}

fn producer(mock: &MockCluster<'static, DefaultProducerContext>, id: &str) -> TxProducer {
    let p: ThreadedProducer<DefaultProducerContext> =
        producer_config(&mock.bootstrap_servers(), id)
            .create()
            .expect("producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    Arc::new(p)
}

/// Begins a transaction, produces one outcome and notes intents 7 and 8 of partition 0 decided.
fn batch(p: &TxProducer) -> OpenTxn {
    p.begin_transaction().expect("begin");
    p.send(
        BaseRecord::<[u8], [u8]>::to(OUT)
            .key(&b"k"[..])
            .payload(&b"v"[..]),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    let mut txn = OpenTxn::new(Instant::now());
    txn.decided(0, 7);
    txn.decided(0, 8);
    txn
}

/// Commits `txn` the way the session does; None when the commit did not return in time.
fn commit(
    p: &TxProducer,
    consumer: &BaseConsumer,
    txn: &OpenTxn,
) -> Option<Result<(), KafkaError>> {
    let mut offsets = TopicPartitionList::new();
    for (partition, next) in txn.commit_offsets(|_| None) {
        offsets
            .add_partition_offset(INTENTS, partition, Offset::Offset(next))
            .expect("offset");
    }
    let group = consumer.group_metadata().expect("group metadata");
    commit_within(p, offsets, group, COMMIT_DEADLINE)
}

fn requires_abort(r: &Option<Result<(), KafkaError>>) -> bool {
    matches!(r, Some(Err(KafkaError::Transaction(e))) if e.txn_requires_abort() && !e.is_fatal())
}

#[test]
fn a_retriable_coordinator_error_is_retried_and_the_commit_succeeds() {
    let (mock, consumer) = cluster();
    let p = producer(&mock, "gate-retriable");
    let txn = batch(&p);
    mock.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE],
    );
    let r = commit(&p, &consumer, &txn);
    assert!(matches!(r, Some(Ok(()))), "{r:?}");
}

#[test]
fn abortable_errors_are_reported_as_such_and_the_producer_recovers_after_an_abort() {
    let (mock, consumer) = cluster();
    let p = producer(&mock, "gate-abortable");
    for (api, err) in [
        (
            RDKafkaApiKey::EndTxn,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID,
        ),
        (
            RDKafkaApiKey::AddOffsetsToTxn,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
        ),
    ] {
        let txn = batch(&p);
        mock.request_errors(api, &[err]);
        let r = commit(&p, &consumer, &txn);
        assert!(requires_abort(&r), "{api:?} {err:?}: {r:?}");
        // The session's abort-and-rewind path: abort, then seek back to the batch's start.
        p.abort_transaction(TIMEOUT).expect("abort");
        assert_eq!(
            txn.rewinds(&[0, 1]),
            vec![Rewind {
                partition: 0,
                seek_to: Some(7)
            }]
        );
        mock.clear_request_errors(api);
        let again = batch(&p);
        let r = commit(&p, &consumer, &again);
        assert!(matches!(r, Some(Ok(()))), "after {err:?}: {r:?}");
    }
}

#[test]
fn a_fencing_error_is_fatal() {
    let (mock, consumer) = cluster();
    let p = producer(&mock, "gate-fenced");
    let txn = batch(&p);
    mock.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH],
    );
    let r = commit(&p, &consumer, &txn);
    match &r {
        Some(Err(KafkaError::Transaction(e))) => {
            assert!(e.is_fatal(), "{e:?}");
            assert!(!e.txn_requires_abort(), "{e:?}");
        }
        other => panic!("expected a fatal transaction error, got {other:?}"),
    }
}

#[test]
fn losing_the_transaction_coordinator_never_blocks_past_the_commit_deadline() {
    let (mock, consumer) = cluster();
    let id = "gate-coordinator-lost";
    mock.coordinator(MockCoordinator::Transaction(id.into()), 1)
        .expect("coordinator on broker 1");
    let p = producer(&mock, id);
    let txn = batch(&p);
    // The coordinator's broker goes away and the coordinator moves to another broker.
    mock.coordinator(MockCoordinator::Transaction(id.into()), 2)
        .expect("coordinator moves to broker 2");
    mock.broker_down(1).expect("broker 1 down");
    let started = Instant::now();
    let r = commit(&p, &consumer, &txn);
    let took = started.elapsed();
    assert!(
        took <= COMMIT_DEADLINE + Duration::from_secs(2),
        "the commit held the loop for {took:?}"
    );
    // Either librdkafka found the new coordinator and committed, or the deadline ended the
    // attempt (the session is then abandoned and the next one aborts the transaction). What
    // must never happen is an error the session would mistake for a committed transaction.
    match &r {
        Some(Ok(())) | None => {}
        // The flush before the commit ran out of the same deadline and returned just before the
        // wait did: the session treats it as a failed commit (ends, the next one aborts).
        Some(Err(KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut))) => {}
        Some(Err(KafkaError::Transaction(e))) => {
            assert!(
                e.txn_requires_abort() || e.is_fatal() || e.is_retriable(),
                "{e:?}"
            )
        }
        Some(Err(e)) => panic!("unexpected commit error {e:?}"),
    }
    eprintln!("coordinator lost: {r:?} after {took:?}");
}
