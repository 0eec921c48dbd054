//! The secret scan over an intent's content (the rule that reads every byte of it): the bench
//! workload's content and prose-like text, 1 KiB and 64 KiB.
//!
//! `cargo bench --bench secret_scan`

use std::hint::black_box;

use bhiv_bucket::core::rules::secrets::find_secret;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Content as `bucket-bench` makes it: bytes cycling through the alphabet.
fn workload_content(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Text with the letters and dashes the token prefixes start with, and no secret.
fn prose(len: usize) -> Vec<u8> {
    let line: &[u8] =
        b"ghosts of xoxo and AKIAN gh-pages -----BEGIN CERTIFICATE----- the quick fox\n";
    line.iter().copied().cycle().take(len).collect()
}

fn scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("secret_scan");
    for (name, len) in [("1KiB", 1024), ("64KiB", 64 * 1024)] {
        g.throughput(Throughput::Bytes(len as u64));
        let content = workload_content(len);
        assert_eq!(find_secret(&content), None);
        g.bench_function(format!("workload_{name}"), |b| {
            b.iter(|| find_secret(black_box(&content)))
        });
        let text = prose(len);
        assert_eq!(find_secret(&text), None);
        g.bench_function(format!("prose_{name}"), |b| {
            b.iter(|| find_secret(black_box(&text)))
        });
    }
    g.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
