//! Masking on the log path: 1 MiB of step output with ten secrets, masked whole and as a
//! stream of 4 KiB chunks, against the no-secret fast path; and the cost of building the
//! masker (deriving every encoded pattern and compiling the searcher).
//!
//! `cargo bench -p baton-core --bench mask`. Throughput is reported in bytes of log per
//! second; CI only compiles this (`cargo bench --no-run`).

use std::fmt::Write as _;
use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_core::mask::Masker;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Bytes of log masked per iteration.
const LOG_BYTES: usize = 1 << 20;

/// Chunk size of the streaming case: what a pipe read typically returns.
const CHUNK: usize = 4096;

/// Ten secrets of the usual shapes: tokens, passwords, a URL with credentials.
fn secrets() -> Vec<String> {
    (0..10)
        .map(|i| match i % 3 {
            0 => format!("ghp_{i}x9ZkQ2vLmN4pR7sT1uW3yB5dF8hJ0kA"),
            1 => format!("hunter{i}-correct horse battery"),
            _ => format!("postgres://app:s3cr3t{i}@db.internal:5432/app"),
        })
        .collect()
}

/// About 1 MiB of ordinary log lines, one in 500 holding a secret (plain or base64).
fn log(secrets: &[String]) -> Vec<u8> {
    let mut out = String::with_capacity(LOG_BYTES + 200);
    let mut line = 0usize;
    while out.len() < LOG_BYTES {
        line += 1;
        let _ = write!(
            out,
            "2026-12-02T16:48:{:02}.{:03}Z INFO worker: processed item {line} of batch {} in {} ms",
            line % 60,
            line % 1000,
            line / 100,
            line % 97
        );
        if line.is_multiple_of(500) {
            let secret = &secrets[line / 500 % secrets.len()];
            if line.is_multiple_of(1000) {
                let _ = write!(out, " auth={}", STANDARD.encode(secret));
            } else {
                let _ = write!(out, " using {secret}");
            }
        }
        out.push('\n');
    }
    out.truncate(LOG_BYTES);
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let secrets = secrets();
    let text = log(&secrets);
    let masker = Masker::new(&secrets).expect("ten short secrets build a matcher");
    let none = Masker::new(Vec::<String>::new()).expect("no secrets build an empty masker");

    let mut group = c.benchmark_group("mask_1mib");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(30);
    group.bench_function("whole_10_secrets", |b| {
        b.iter(|| black_box(masker.mask(black_box(&text))).len())
    });
    group.bench_function("stream_4k_chunks_10_secrets", |b| {
        b.iter(|| {
            let mut stream = masker.stream();
            let mut n = 0;
            for chunk in text.chunks(CHUNK) {
                n += stream.push(black_box(chunk)).len();
            }
            n + stream.finish().len()
        })
    });
    group.bench_function("whole_no_secrets", |b| {
        b.iter(|| black_box(none.mask(black_box(&text))).len())
    });
    group.finish();

    c.bench_function("build_masker_10_secrets", |b| {
        b.iter(|| Masker::new(black_box(&secrets)).map(|m| m.pattern_count()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
