//! Per-intent CPU costs of the gate, without Kafka: framing, Avro decode (per call as the gate
//! does today, and with the schema resolved once), decide, audit chain hashing and the full
//! output build (accepted record + sealed, encoded audit link).

use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use bhiv_bucket::core::{ArtifactIntent, Envelope, Operation, PartitionState, Policy, decide};
use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::gate::consumed::Consumed;
use bhiv_bucket::gate::records::OutputWriter;
use bhiv_bucket::gate::task::ChainHead;
use bhiv_bucket::kafka::registry::OutputSchemaIds;
use bhiv_bucket::wire::accepted::{self, AcceptedArtifact};
use bhiv_bucket::wire::audit::{AuditEvent, DecisionRecord, GENESIS_HASH, StateFacts, chain_hash};
use bhiv_bucket::wire::schemas::APPROVED;
use bhiv_bucket::wire::{framing, intent, value_oracle};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn sample(size: usize) -> ArtifactIntent {
    ArtifactIntent {
        intent_id: "6f1c2a57-3f49-4d55-9f0e-1a2b3c4d5e6f".into(),
        product_id: "bench_p000".into(),
        integration_id: "bench_p000-backend".into(),
        owner_id: "alice".into(),
        requester_id: "alice".into(),
        artifact_id: "doc-1".into(),
        artifact_class: "document".into(),
        operation: Operation::Create,
        expected_version: None,
        content: Some(vec![b'a'; size]),
        content_type: "text/plain".into(),
        metadata: "{\"k\":1}".into(),
        purpose: "bench".into(),
        client_time: 1_700_000_000_000,
    }
}

fn wire(c: &mut Criterion) {
    let body = intent::encode(&sample(1024)).expect("encode");
    let framed = framing::frame(7, &body);
    let mut g = c.benchmark_group("wire_1KiB");
    g.throughput(Throughput::Elements(1));
    g.bench_function("framing_unframe", |b| {
        b.iter(|| framing::unframe(Some(black_box(&framed))))
    });
    g.bench_function("framing_frame", |b| {
        b.iter(|| framing::frame(7, black_box(&body)))
    });
    g.bench_function("avro_decode_intent_gate_path", |b| {
        b.iter(|| intent::decode(black_box(&body)))
    });
    let reader = GenericDatumReader::builder(&APPROVED.intent.schema)
        .build()
        .expect("reader");
    g.bench_function("avro_decode_value_schema_resolved_once", |b| {
        b.iter(|| reader.read_value(&mut black_box(&body[..])))
    });
    g.bench_function("avro_encode_intent", |b| {
        let i = sample(1024);
        b.iter(|| intent::encode(black_box(&i)))
    });
    g.finish();
}

fn core(c: &mut Criterion) {
    let policy = Policy::parse_with(
        &bhiv_bucket::bench::workload::policy_text(1, true),
        &bhiv_bucket::bench::workload::BenchSecrets,
    )
    .expect("policy");
    let state = PartitionState::default();
    let i = sample(1024);
    let key = i.product_id.clone().into_bytes();
    let partitions = 6;
    let home = bhiv_bucket::core::partitioner::home_partition(&key, partitions);
    let value = intent::encode(&i).expect("encode");
    let header = bhiv_bucket::core::signature::SignKey::ed25519_from_seed(
        &bhiv_bucket::bench::sign::BENCH_ED25519_SEED,
    )
    .header(&i.integration_id, "bench-ed25519-1", &value);
    let env = Envelope {
        key: Some(&key),
        partition: home,
        partition_count: partitions,
        payload: Ok(&i),
        value: &value,
        signature: Some(header.as_bytes()).into(),
    };
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decide_accept_create", |b| {
        b.iter(|| decide(black_box(&env), &state, &policy, 1_700_000_000_100))
    });
    let decision = decide(&env, &state, &policy, 1_700_000_000_100);
    let event = AuditEvent {
        seq: 41,
        prev_hash: GENESIS_HASH.into(),
        hash: String::new(),
        recorded_at: 1,
        gate_id: "g1".into(),
        policy_version: policy.version.clone(),
        decision: Some(DecisionRecord {
            source_offset: 41,
            value_sha256: "ab".repeat(32),
            accepted: true,
            intent_id: Some(i.intent_id.clone()),
            product_id: Some(i.product_id.clone()),
            artifact_id: Some(i.artifact_id.clone()),
            version: Some(1),
            content_size: 1024,
            content_sha256: Some("cd".repeat(32)),
            ..DecisionRecord::default()
        }),
        governance: None,
    };
    g.bench_function("audit_chain_hash", |b| {
        b.iter(|| chain_hash(black_box(&event)))
    });
    let topics = TopicNames::default();
    let writer = OutputWriter {
        topics: &topics,
        ids: OutputSchemaIds {
            accepted: 2,
            audit: 3,
        },
        gate_id: "g1",
        audit_version: bhiv_bucket::wire::audit::LATEST_VERSION,
    };
    let framed = framing::frame(1, &intent::encode(&i).expect("encode"));
    let consumed = Consumed {
        partition: home,
        offset: 41,
        key: Some(key.clone()),
        value: Some(framed),
        timestamp: Some(1),
        headers: Vec::new(),
    };
    let chain = ChainHead::default();
    g.bench_function("outputs_accepted_plus_audit_1KiB", |b| {
        b.iter(|| writer.outputs(black_box(&consumed), Some(&i), &decision, None, &chain))
    });
    g.finish();
}

/// Old (`apache-avro` `Value` tree, `wire::value_oracle`) against new (direct) per-record cost
/// of the output encoders and the intent decoder.
fn direct_codecs(c: &mut Criterion) {
    let i = sample(1024);
    let accepted = AcceptedArtifact {
        intent_id: i.intent_id.clone(),
        product_id: i.product_id.clone(),
        integration_id: i.integration_id.clone(),
        owner_id: i.owner_id.clone(),
        requester_id: i.requester_id.clone(),
        artifact_id: i.artifact_id.clone(),
        artifact_class: i.artifact_class.clone(),
        operation: i.operation,
        version: 1,
        deleted: false,
        content: i.content.clone(),
        content_sha256: "cd".repeat(32),
        content_size: 1024,
        content_type: i.content_type.clone(),
        metadata: i.metadata.clone(),
        purpose: i.purpose.clone(),
        client_time: i.client_time,
        decided_at: i.client_time + 100,
        policy_version: "ef".repeat(32),
        source_partition: 3,
        source_offset: 41,
    };
    let event = AuditEvent {
        seq: 41,
        prev_hash: GENESIS_HASH.into(),
        hash: String::new(),
        recorded_at: i.client_time + 100,
        gate_id: "g1".into(),
        policy_version: "ef".repeat(32),
        decision: Some(DecisionRecord {
            source_partition: 3,
            source_offset: 41,
            value_sha256: "ab".repeat(32),
            accepted: true,
            intent_id: Some(i.intent_id.clone()),
            product_id: Some(i.product_id.clone()),
            integration_id: Some(i.integration_id.clone()),
            owner_id: Some(i.owner_id.clone()),
            requester_id: Some(i.requester_id.clone()),
            artifact_id: Some(i.artifact_id.clone()),
            artifact_class: Some(i.artifact_class.clone()),
            operation: Some("CREATE".into()),
            version: Some(1),
            content_size: 1024,
            size_delta: 1024,
            content_sha256: Some("cd".repeat(32)),
            authenticated: true,
            facts: Some(StateFacts {
                artifact_delta: 1,
                rate_tat_us: Some(1_700_000_000_100_000),
                ..StateFacts::default()
            }),
            ..DecisionRecord::default()
        }),
        governance: None,
    };
    let version = bhiv_bucket::wire::audit::LATEST_VERSION;
    let body = intent::encode(&i).expect("encode");
    let mut g = c.benchmark_group("direct_codecs");
    g.throughput(Throughput::Elements(1));
    g.bench_function("accepted_encode_1KiB/value_tree", |b| {
        b.iter(|| value_oracle::accepted(black_box(&accepted)))
    });
    g.bench_function("accepted_encode_1KiB/direct", |b| {
        b.iter(|| accepted::encode(black_box(&accepted)))
    });
    let mut buf = Vec::new();
    g.bench_function("accepted_encode_1KiB/direct_reused_buffer", |b| {
        b.iter(|| {
            buf.clear();
            accepted::encode_into(black_box(&accepted), &mut buf);
        })
    });
    g.bench_function("audit_seal/value_tree", |b| {
        b.iter_batched(
            || event.clone(),
            |e| value_oracle::audit_seal_as(e, version),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("audit_seal/direct", |b| {
        b.iter_batched(
            || event.clone(),
            |e| e.seal_as(version),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("intent_decode_1KiB/value_tree", |b| {
        b.iter(|| value_oracle::intent_decode(black_box(&body)))
    });
    g.bench_function("intent_decode_1KiB/direct", |b| {
        b.iter(|| intent::decode(black_box(&body)))
    });
    g.finish();
}

criterion_group!(benches, wire, core, direct_codecs);
criterion_main!(benches);
