//! Signature verification over a 1 KiB value, the per-intent cost the gate will pay once it
//! verifies `bucket-signature`: HMAC-SHA256, Ed25519 single, Ed25519 batch (per signature).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac_verify(c: &mut Criterion) {
    let key = [9u8; 32];
    let msg = vec![b'x'; 1024];
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("key");
    mac.update(&msg);
    let tag = mac.finalize().into_bytes();
    let mut g = c.benchmark_group("sig_1KiB");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hmac_sha256_verify", |b| {
        b.iter(|| {
            let mut m = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("key");
            m.update(black_box(&msg));
            m.verify_slice(black_box(&tag)).is_ok()
        })
    });
    g.finish();
}

fn ed25519(c: &mut Criterion) {
    let keys: Vec<SigningKey> = (0..64u8)
        .map(|i| SigningKey::from_bytes(&[i.wrapping_add(1); 32]))
        .collect();
    let msgs: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 1024]).collect();
    let sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let vks: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let mut g = c.benchmark_group("sig_1KiB");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            vks[0]
                .verify(black_box(&msgs[0]), black_box(&sigs[0]))
                .is_ok()
        })
    });
    g.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            vks[0]
                .verify_strict(black_box(&msgs[0]), black_box(&sigs[0]))
                .is_ok()
        })
    });
    g.finish();
    let mut g = c.benchmark_group("sig_1KiB_ed25519_batch");
    for n in [16usize, 64] {
        g.throughput(Throughput::Elements(n as u64));
        let m: Vec<&[u8]> = msgs[..n].iter().map(Vec::as_slice).collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| ed25519_dalek::verify_batch(black_box(&m), &sigs[..n], &vks[..n]).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, hmac_verify, ed25519);
criterion_main!(benches);
