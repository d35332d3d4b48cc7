//! Parsing throughput on the real captures: the scaler's filtered extraction, a full scan of
//! every sample with our scanner, and `prometheus-parse` (which drops `vllm:*`/`sglang:*`).
//!
//! `cargo bench --bench expo`; results in BENCHMARKS.md.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keda_llm_scaler::core::expo::scan;
use keda_llm_scaler::core::extract::{Engine, extract};

fn captures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real-metrics");
    let mut out = Vec::new();
    for name in [
        "vllm-0.19.1_v1_llama3.1-8b_a100_kvwarden.txt",
        "sglang-0.4.0era_llama3.1-8b_sglang-docs.txt",
        "dynamo-frontend_qwen3-0.6b_dynamo-docs.txt",
    ] {
        if let Ok(body) = std::fs::read_to_string(dir.join(name)) {
            out.push((name.split('_').next().unwrap_or(name).to_string(), body));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    for (label, body) in captures() {
        let mut group = c.benchmark_group(format!("parse/{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("extract (scaler path)", |b| {
            b.iter(|| extract(std::hint::black_box(&body), Engine::Auto, None))
        });
        group.bench_function("scan all samples", |b| {
            b.iter(|| {
                let mut n = 0usize;
                scan(std::hint::black_box(&body), |_| true, |_| n += 1);
                n
            })
        });
        group.bench_function("prometheus-parse", |b| {
            b.iter(|| {
                let lines = std::hint::black_box(&body)
                    .lines()
                    .map(|l| Ok(l.to_string()));
                prometheus_parse::Scrape::parse(lines)
                    .map(|s| s.samples.len())
                    .unwrap_or(0)
            })
        });
        group.finish();
    }
    // A synthetic 1,000-worker fleet: the vLLM capture rendered by a thousand simulated
    // engines (the simulator's renderer, every worker in a different state), parsed page by
    // page as one scrape cycle does.
    let params = keda_llm_scaler::sim::worker::EngineParams::default();
    let fleet: Vec<String> = (0..1000u64)
        .map(|i| {
            let mut w = keda_llm_scaler::sim::worker::Worker::new();
            for r in 0..(i % 50) {
                w.enqueue(r, 0, 512, 128);
            }
            let mut out = Vec::new();
            let mut t = 0;
            for _ in 0..(i % 7) {
                if let Some(d) = w.begin_step(&params) {
                    t += d;
                    w.end_step(t, &mut out);
                }
            }
            let mut page = String::new();
            w.render(&params, &mut page);
            page
        })
        .collect();
    let bytes: usize = fleet.iter().map(String::len).sum();
    let mut group = c.benchmark_group("parse/synthetic-1000-worker-fleet");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.bench_function("extract (scaler path)", |b| {
        b.iter(|| {
            fleet
                .iter()
                .map(|p| {
                    extract(std::hint::black_box(p), Engine::Vllm, None)
                        .stats
                        .lines
                })
                .sum::<usize>()
        })
    });
    group.bench_function("prometheus-parse", |b| {
        b.iter(|| {
            fleet
                .iter()
                .map(|p| {
                    prometheus_parse::Scrape::parse(p.lines().map(|l| Ok(l.to_string())))
                        .map(|s| s.samples.len())
                        .unwrap_or(0)
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
