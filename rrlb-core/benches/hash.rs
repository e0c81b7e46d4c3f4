//! What do the consistent-hashing structures of `rrlb_core::hash` cost: a lookup (plain, and the
//! bounded-loads walk) at N = 3, 100, 10,000 backends, and a build at N = 10, 1,000? Run with
//! `cargo bench -p rrlb-core --bench hash`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rrlb_core::hash::{KetamaRing, LoadBound, MaglevTable, crc32, hash64};

const SIZES: [usize; 3] = [3, 100, 10_000];

/// `n` backends "10.x.y.z:80" with weights 1..=3 (as `benches/pick.rs`).
fn fleet(n: usize) -> Vec<(String, u32)> {
    (0..n)
        .map(|i| {
            (
                format!("10.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255),
                1 + (i % 3) as u32,
            )
        })
        .collect()
}

/// 1,024 keys to cycle through, so the lookups do not all hit one cache line.
fn keys() -> Vec<String> {
    (0..1024).map(|i| format!("user-{i}")).collect()
}

/// A lookup: hashing the key and finding its backend.
fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("hash/lookup");
    for n in SIZES {
        let backends = fleet(n);
        let maglev = MaglevTable::build(&backends);
        let ring = KetamaRing::build(&backends);
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("maglev", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                maglev.lookup_key(black_box(keys[i].as_bytes()))
            })
        });
        g.bench_function(BenchmarkId::new("ketama", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                ring.lookup_key(black_box(keys[i].as_bytes()))
            })
        });
        // Bounded loads (c = 1.25) with every third backend full and one in ten ineligible.
        let in_flight: Vec<u64> = (0..n).map(|j| if j % 3 == 0 { 100 } else { 1 }).collect();
        let bound = LoadBound::new(Some(1.25), in_flight.iter().sum(), n);
        let load = |b: usize| (b % 10 != 9).then_some(in_flight[b]);
        g.bench_function(BenchmarkId::new("maglev-bounded", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                maglev.pick_bounded(hash64(black_box(keys[i].as_bytes())), bound, load)
            })
        });
        g.bench_function(BenchmarkId::new("ketama-bounded", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                ring.pick_bounded(crc32(black_box(keys[i].as_bytes())), bound, load)
            })
        });
    }
    g.finish();
}

/// A build: what a change of the backend set costs (Envoy publishes ~10 ms for a 65,537 entry Maglev
/// table and 9–55 ms for a 64K-point ring).
fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash/build");
    for n in [10usize, 1_000] {
        let backends = fleet(n);
        g.bench_with_input(BenchmarkId::new("maglev-65537", n), &backends, |b, f| {
            b.iter(|| MaglevTable::build(f))
        });
        g.bench_with_input(BenchmarkId::new("ketama", n), &backends, |b, f| {
            b.iter(|| KetamaRing::build(f))
        });
    }
    // Maglev's weighted fill runs rounds until the heaviest backend has its share: the worst case is one
    // heavy backend among many light ones (rounds ≈ M · w_max / Σw, each over every backend).
    let mut skewed = fleet(1_000);
    for b in &mut skewed {
        b.1 = 1;
    }
    skewed[0].1 = 1_000;
    g.bench_with_input(
        BenchmarkId::new("maglev-65537-skewed", 1_000),
        &skewed,
        |b, f| b.iter(|| MaglevTable::build(f)),
    );
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup, build
}
criterion_main!(benches);
