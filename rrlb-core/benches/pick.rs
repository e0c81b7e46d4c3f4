//! Which algorithm picks fastest at N backends, alone and with two threads contending, and how much do the
//! naive designs cost? Run with `cargo bench -p rrlb-core --bench pick`.

use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rrlb_core::backend::Timestamp;
use rrlb_core::{Algorithm, AnyBalancer, Backend, BackendSet, BackendSpec, SetOptions};

const SIZES: [usize; 3] = [3, 100, 10_000];

/// A set of `n` backends, each with one answered call behind it (latencies 1..=7 ms), so that peak-EWMA
/// compares real estimates rather than the no-estimate shortcut.
fn set(algorithm: Algorithm, n: usize) -> BackendSet<AnyBalancer> {
    let set = BackendSet::with_backends(
        AnyBalancer::new(algorithm),
        SetOptions::default(),
        (0..n).map(|i| {
            BackendSpec::new(format!("b{i}"), format!("http://b{i}:80"))
                .with_weight(1 + (i % 3) as u32)
        }),
    )
    .expect("valid backends");
    let now = Instant::now();
    for (i, m) in set.load().members().iter().enumerate() {
        m.backend().stats().ewma().observe(
            Duration::from_millis(1 + (i % 7) as u64),
            Timestamp::from_instant(now),
        );
    }
    set
}

/// Selection only: snapshot load + the algorithm.
fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("select/1-thread");
    for algorithm in Algorithm::ALL {
        for n in SIZES {
            let s = set(algorithm, n);
            g.bench_with_input(BenchmarkId::new(algorithm.as_str(), n), &s, |b, s| {
                b.iter(|| s.select(|m| black_box(m.weight())))
            });
        }
    }
    g.finish();
}

/// A whole call: pick (in-flight count, clock read) and record a success (histogram, breaker window).
fn pick_and_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick+record/1-thread");
    for algorithm in Algorithm::ALL {
        for n in SIZES {
            let s = set(algorithm, n);
            g.bench_with_input(BenchmarkId::new(algorithm.as_str(), n), &s, |b, s| {
                b.iter(|| s.pick().map(|call| call.success()))
            });
        }
    }
    g.finish();
}

/// Two threads picking from the same set at once; the time reported is per pick, per thread.
fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("select/2-threads");
    for algorithm in Algorithm::ALL {
        for n in SIZES {
            let s = set(algorithm, n);
            g.bench_with_input(BenchmarkId::new(algorithm.as_str(), n), &s, |b, s| {
                b.iter_custom(|iters| two_threads(iters, || s.select(|m| black_box(m.weight()))))
            });
        }
    }
    g.finish();
}

fn two_threads<R>(iters: u64, f: impl Fn() -> R + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let elapsed: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(f());
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    elapsed.into_iter().max().unwrap_or_default()
}

/// Baselines written here: a round robin behind a `Mutex<Vec<_>>`, and filtering the healthy backends into a
/// new `Vec` on every pick.
fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline");
    for n in SIZES {
        let backends: Vec<Arc<Backend>> = set(Algorithm::RoundRobin, n)
            .load()
            .members()
            .iter()
            .map(|m| m.backend().clone())
            .collect();
        let locked = Mutex::new((backends.clone(), 0usize));
        g.bench_with_input(
            BenchmarkId::new("mutex-vec-rr/1-thread", n),
            &locked,
            |b, l| {
                b.iter(|| {
                    let mut guard = l.lock().unwrap_or_else(|e| e.into_inner());
                    let (list, next) = &mut *guard;
                    *next = next.wrapping_add(1);
                    black_box(list[*next % list.len()].name().len())
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("mutex-vec-rr/2-threads", n),
            &locked,
            |b, l| {
                b.iter_custom(|iters| {
                    two_threads(iters, || {
                        let mut guard = l.lock().unwrap_or_else(|e| e.into_inner());
                        let (list, next) = &mut *guard;
                        *next = next.wrapping_add(1);
                        list[*next % list.len()].name().len()
                    })
                })
            },
        );
        let counter = std::sync::atomic::AtomicUsize::new(0);
        g.bench_with_input(
            BenchmarkId::new("filter-healthy-vec/1-thread", n),
            &backends,
            |b, list| {
                b.iter(|| {
                    let healthy: Vec<&Arc<Backend>> =
                        list.iter().filter(|b| b.is_eligible()).collect();
                    let i =
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % healthy.len();
                    black_box(healthy[i].name().len())
                })
            },
        );
    }
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
    targets = select, pick_and_record, contended, baselines
}
criterion_main!(benches);
