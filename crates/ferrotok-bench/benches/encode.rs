//! Criterion benchmarks of the core: real text when ../shared/corpus is there (else the
//! vendored testdata), and the worst cases that must stay linear.
//!
//! cargo bench -p ferrotok-bench

#![expect(clippy::unwrap_used, reason = "a benchmark may abort when its setup fails")]
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrotok::registry;

fn corpus_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/corpus/english.jsonl");
    let path = if shared.exists() { shared } else { root.join("testdata/corpus.jsonl") };
    let raw = std::fs::read_to_string(&path).unwrap_or_default();
    raw.split('\n').filter_map(serde_json_text).take(200).collect::<Vec<_>>().join("\n")
}

/// The "text" field of one JSON line, without a JSON dependency in this crate.
fn serde_json_text(line: &str) -> Option<String> {
    let start = line.find("\"text\": \"")? + 9;
    let body = &line[start..line.rfind('"')?];
    Some(body.replace("\\n", "\n").replace("\\\"", "\"").replace("\\t", "\t"))
}

fn real_text(c: &mut Criterion) {
    let text = corpus_text();
    let mut g = c.benchmark_group("encode_ordinary");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    for name in ["cl100k_base", "o200k_base", "gpt2"] {
        let enc = registry::get(name).unwrap();
        g.bench_with_input(BenchmarkId::new(name, "english"), &text, |b, t| {
            b.iter(|| enc.encode_ordinary(black_box(t)))
        });
    }
    g.finish();
}

fn worst_cases(c: &mut Criterion) {
    let enc = registry::get("cl100k_base").unwrap();
    let mut g = c.benchmark_group("worst_case_cl100k");
    g.sample_size(10);
    let mut seed = 12345u64;
    for n in [100_000usize, 1_000_000] {
        let random: String = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (b'a' + ((seed >> 33) % 26) as u8) as char
            })
            .collect();
        for (case, text) in
            [("a", "a".repeat(n)), ("caret", "^".repeat(n)), ("random_letters", random), ("spaces", " ".repeat(n))]
        {
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_with_input(BenchmarkId::new(case, n), &text, |b, t| b.iter(|| enc.encode_ordinary(black_box(t))));
        }
    }
    g.finish();
}

criterion_group!(benches, real_text, worst_cases);
criterion_main!(benches);
