//! What does publishing a new snapshot cost at N backends (a weight change, which rebuilds the eligible view
//! and the balancer's plan)? Run with `cargo bench -p rrlb-core --bench publish`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rrlb_core::{Algorithm, AnyBalancer, BackendSet, BackendSpec, SetOptions};

fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish/set_weight");
    g.sample_size(20);
    for algorithm in [Algorithm::RoundRobin, Algorithm::WeightedRoundRobin] {
        for n in [3usize, 100, 10_000] {
            let set = BackendSet::with_backends(
                AnyBalancer::new(algorithm),
                SetOptions::default(),
                (0..n).map(|i| {
                    BackendSpec::new(format!("b{i}"), format!("http://b{i}:80"))
                        .with_weight(1 + (i % 3) as u32)
                }),
            )
            .expect("valid backends");
            let mut w = 1;
            g.bench_function(BenchmarkId::new(algorithm.as_str(), n), |b| {
                b.iter(|| {
                    w = w % 3 + 1;
                    set.set_weight("b0", w).expect("b0 exists")
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = publish
}
criterion_main!(benches);
