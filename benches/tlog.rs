//! The verifiable audit log's costs (issue 17, docs/audit.md "Proofs"): what the gate pays per
//! decision (leaf hash + frontier append), per checkpoint (root + Ed25519 note signature), and
//! what a proof costs to produce from tiles on disk.

use std::hint::black_box;

use bhiv_bucket::core::signature::SignKey;
use bhiv_bucket::tlog::checkpoint::{key_name, origin};
use bhiv_bucket::tlog::proof::prove_inclusion;
use bhiv_bucket::tlog::{
    Frontier, FsTileStore, NoteSigner, TileBuilder, TileHashReader, TreeHead, leaf_hash,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A typical stored audit link is a few hundred bytes.
const LINK: usize = 600;

fn per_decision(c: &mut Criterion) {
    let link = vec![b'x'; LINK];
    let mut g = c.benchmark_group("tlog_per_decision");
    g.throughput(Throughput::Elements(1));
    g.bench_function("frontier_append_leaf_hash", |b| {
        let mut f = Frontier::new();
        b.iter(|| f.append(black_box(leaf_hash(b"x"))))
    });
    g.bench_function("frontier_append_600B_link", |b| {
        let mut f = Frontier::new();
        b.iter(|| f.append_bytes(black_box(&link)))
    });
    g.finish();
}

fn per_checkpoint(c: &mut Criterion) {
    let mut f = Frontier::new();
    for i in 0..10_000_000u64 {
        if i.count_ones() > 20 {
            break;
        }
        f.append(leaf_hash(&i.to_le_bytes()));
    }
    let signer =
        NoteSigner::new(&key_name("bench"), &SignKey::ed25519_from_seed(&[1; 32])).expect("signer");
    let mut g = c.benchmark_group("tlog_per_checkpoint");
    g.bench_function("root_and_signed_note", |b| {
        b.iter(|| {
            let head = TreeHead::new(origin("bench", 0), f.size(), f.root());
            signer.sign(&head.to_text().expect("text")).expect("sign")
        })
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    const N: u64 = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsTileStore::new(dir.path());
    let mut tb = TileBuilder::new();
    for i in 0..N {
        for (id, bytes) in tb.push(&i.to_le_bytes()).expect("push") {
            store.write(&id, &bytes).expect("write");
        }
    }
    for (id, bytes) in tb.partial_tiles().expect("partials") {
        store.write(&id, &bytes).expect("write");
    }
    let reader = TileHashReader::new(N, &store);
    let mut g = c.benchmark_group("tlog_proof");
    let mut i = 0u64;
    g.bench_function("inclusion_from_fs_tiles_1M", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            prove_inclusion(N, black_box(i), &reader).expect("proof")
        })
    });
    g.finish();
}

criterion_group!(benches, per_decision, per_checkpoint, proofs);
criterion_main!(benches);
