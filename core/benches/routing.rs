//! Criterion benchmarks of the engine at `--scale large` (≈300k LERG blocks, 1M LNP,
//! 1M DNO, 50 vendors with ≈1M rate rows, 1k customers). The snapshot is generated once
//! into target/bench-data and reused. Per-call percentiles come from `warp bench-route`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::Duration;
use warp_core::model::Dataset;
use warp_core::snapshot::{compile, publish, RouteRequest, Snapshot};
use warp_core::Number;
use warp_datagen::{generate, sample_calls, Scale};

/// The large dataset, and its snapshot (compiled once, kept in target/bench-data).
fn large() -> (PathBuf, Dataset) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    let path = dir.join("large-7.snap");
    let data = generate(Scale::LARGE, 7);
    if Snapshot::open_verified(&path).is_err() {
        publish(&compile(&data, 1).expect("compiles"), &path).expect("writes");
    }
    (path, data)
}

fn benches(c: &mut Criterion) {
    let (path, data) = large();
    let calls = sample_calls(&data, 10_000, 7);
    let snap = Snapshot::open(&path).unwrap();
    let at = "2026-03-04T15:00:00Z".parse().unwrap();

    let mut i = 0usize;
    c.bench_function("route/full_decision_large", |b| {
        b.iter(|| {
            let (ban, ani, dnis) = &calls[i % calls.len()];
            i += 1;
            let trunk = snap.trunk_by_ip("127.0.0.1".parse().unwrap());
            let req = RouteRequest::new(ban, Some(ani), dnis, at);
            black_box((trunk, snap.route(&req).map(|d| d.routes.len())))
        })
    });

    // Half listed numbers, half not, spread over the whole 1M-entry set so lookups
    // miss the CPU cache the way live traffic does.
    let numbers: Vec<Number> = data
        .dno
        .iter()
        .step_by(4)
        .copied()
        .zip(data.lnp.iter().step_by(4).map(|(n, _)| *n))
        .flat_map(|(a, b)| [a, b])
        .collect();
    let mut j = 0usize;
    c.bench_function("dno/lookup_1M", |b| {
        b.iter(|| {
            j += 1;
            black_box(snap.is_dno(numbers[j % numbers.len()]))
        })
    });

    c.bench_function("snapshot/open_large", |b| {
        b.iter(|| black_box(Snapshot::open(&path).unwrap().generation()))
    });
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("open_and_verify_large", |b| {
        b.iter(|| black_box(Snapshot::open_verified(&path).unwrap().generation()))
    });
    g.bench_function("compile_large_1M_rate_rows", |b| {
        b.iter(|| black_box(compile(&data, 2).unwrap().len()))
    });
    g.finish();
}

criterion_group!(routing, benches);
criterion_main!(routing);
