//! What does `Balance` add to a call? Per-call time and allocations of an always-ready inner
//! service called directly, through rrlb's `Balance` (three backends), and through tower's
//! `p2c::Balance` over three such services, all on one thread (a current-thread runtime).
//!
//! Each measurement is a loop of `ready().await` + `call(request).await` over one service, timed
//! as a whole (`iter_custom`), so the figure is the cost of one call including readiness, the
//! pick, outcome recording and, for the default configuration, the timeout and retry bookkeeping.
//! After criterion's timings, a summary times the same variants again in interleaved rounds (so
//! that other work on a shared machine disturbs them alike) and prints, per variant, the fastest
//! and the median round, the time added over the direct call, the allocations per call (from a
//! counting global allocator, over 100,000 calls), and how many times cheaper than tower's p2c the
//! added cost is.
//!
//! Run with `cargo bench -p rrlb-tower --bench overhead`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rrlb_core::{BackendSet, BackendSpec, Balancer, LeastRequest, RoundRobin, SetOptions};
use rrlb_testkit::{CountingAllocator, allocations};
use rrlb_tower::{Balance, BalanceConfig, BasicPolicy, RetryOn, Routed};
use tokio::runtime::Runtime;
use tower::discover::ServiceList;
use tower::load::Constant;
use tower::{Service, ServiceExt, service_fn};

/// Counts allocations per thread (the summary's "allocations" column).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The pure overhead: no timeout, no retries.
const BARE: BalanceConfig = BalanceConfig {
    timeout: None,
    retries: 0,
    retry_on: RetryOn::NONE,
};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

fn set_of<B: Balancer>(balancer: B) -> BackendSet<B> {
    BackendSet::with_backends(
        balancer,
        SetOptions::default(),
        (1..=3).map(|i| BackendSpec::new(format!("b{i}"), format!("http://10.0.0.{i}:80"))),
    )
    .expect("three backends")
}

/// The always-ready inner service, as the baseline calls it.
fn direct() -> impl Service<u64, Response = u64, Error = Infallible> {
    service_fn(|r: u64| async move { Ok::<_, Infallible>(r) })
}

/// The same, taking the request with its picked backend.
fn routed() -> impl Service<Routed<u64>, Response = u64, Error = Infallible> + Clone {
    service_fn(|r: Routed<u64>| async move { Ok::<_, Infallible>(r.request) })
}

fn rrlb<B: Balancer>(
    balancer: B,
    config: BalanceConfig,
) -> impl Service<u64, Response = u64, Error = rrlb_tower::Error> {
    Balance::new(routed(), set_of(balancer), BasicPolicy, config)
}

fn tower_p2c() -> impl Service<u64, Response = u64, Error = tower::BoxError> {
    let services: Vec<_> = (0..3).map(|_| Constant::new(direct(), 0u32)).collect();
    tower::balance::p2c::Balance::new(ServiceList::new(services))
}

/// `n` calls, each `ready()` then `call()`, awaited one after the other.
async fn calls<S>(svc: &mut S, n: u64)
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    for i in 0..n {
        let ready = svc.ready().await.expect("always ready");
        let answer = ready.call(black_box(i)).await.expect("always answers");
        black_box(answer);
    }
}

fn measure<S>(c: &mut Criterion, rt: &Runtime, name: &str, mut svc: S)
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    // Warm up (tower's p2c discovers its services on the first call).
    rt.block_on(calls(&mut svc, 1_000));
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                calls(&mut svc, iters).await;
                start.elapsed()
            })
        })
    });
}

/// Allocations per call, over 100,000 calls after a warm-up.
fn allocations_per_call<S>(rt: &Runtime, svc: &mut S) -> f64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    const N: u64 = 100_000;
    rt.block_on(async {
        calls(svc, 1_000).await;
        let before = allocations();
        calls(svc, N).await;
        (allocations() - before) as f64 / N as f64
    })
}

fn default_config() -> BalanceConfig {
    BalanceConfig::default()
}

const DIRECT: &str = "direct call (baseline)";
const RR_BARE: &str = "rrlb Balance, round robin, no timeout, no retries";
const LR_BARE: &str = "rrlb Balance, least request, no timeout, no retries";
const RR_DEFAULT: &str = "rrlb Balance, round robin, default config (2 s timeout, 2 retries)";
const P2C: &str = "tower p2c Balance";

fn overhead(c: &mut Criterion) {
    let rt = runtime();
    measure(c, &rt, DIRECT, direct());
    measure(c, &rt, RR_BARE, rrlb(RoundRobin::new(), BARE));
    measure(c, &rt, LR_BARE, rrlb(LeastRequest::with_seed(1), BARE));
    measure(
        c,
        &rt,
        RR_DEFAULT,
        rrlb(RoundRobin::new(), default_config()),
    );
    measure(c, &rt, P2C, tower_p2c());
}

/// One variant of the summary: a closure timing `n` calls, and the allocations per call.
struct Variant<'a> {
    name: &'static str,
    time: Box<dyn FnMut(u64) -> Duration + 'a>,
    allocations: f64,
    samples: Vec<f64>,
}

fn variant<'a, S>(rt: &'a Runtime, name: &'static str, mut svc: S) -> Variant<'a>
where
    S: Service<u64, Response = u64> + 'a,
    S::Error: std::fmt::Debug,
{
    let allocations = allocations_per_call(rt, &mut svc);
    Variant {
        name,
        time: Box::new(move |n| {
            rt.block_on(async {
                let start = Instant::now();
                calls(&mut svc, n).await;
                start.elapsed()
            })
        }),
        allocations,
        samples: Vec::new(),
    }
}

/// A summary that holds up on a shared machine: the variants are timed in interleaved rounds, so
/// that a burst of other work slows all of them alike, and the fastest round of each (the least
/// disturbed) is reported next to the median.
fn summary(_c: &mut Criterion) {
    const ROUNDS: usize = 21;
    const CALLS: u64 = 200_000;
    let rt = runtime();
    let mut variants = [
        variant(&rt, DIRECT, direct()),
        variant(&rt, RR_BARE, rrlb(RoundRobin::new(), BARE)),
        variant(&rt, LR_BARE, rrlb(LeastRequest::with_seed(1), BARE)),
        variant(&rt, RR_DEFAULT, rrlb(RoundRobin::new(), default_config())),
        variant(&rt, P2C, tower_p2c()),
    ];
    for _ in 0..ROUNDS {
        for v in &mut variants {
            let elapsed = (v.time)(CALLS);
            v.samples.push(elapsed.as_nanos() as f64 / CALLS as f64);
        }
    }
    let stats: Vec<(f64, f64)> = variants
        .iter_mut()
        .map(|v| {
            v.samples.sort_by(f64::total_cmp);
            (v.samples[0], v.samples[v.samples.len() / 2])
        })
        .collect();
    let (base_min, base_median) = stats[0];
    let p2c_added = stats[4].0 - base_min;
    println!(
        "\nsummary: {ROUNDS} interleaved rounds of {CALLS} calls each (ns per call; added = over the direct call)"
    );
    println!(
        "{:<70} {:>8} {:>8} {:>10} {:>12} {:>14}",
        "", "min", "median", "added", "allocations", "p2c added / x"
    );
    for (v, &(min, median)) in variants.iter().zip(&stats) {
        let added = min - base_min;
        let ratio = if v.name == DIRECT {
            String::from("-")
        } else {
            format!("{:.2}", p2c_added / added)
        };
        println!(
            "{:<70} {min:>8.1} {median:>8.1} {added:>10.1} {:>12.2} {ratio:>14}",
            v.name, v.allocations
        );
    }
    println!("(direct call median: {base_median:.1} ns)");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = overhead, summary
}
criterion_main!(benches);
