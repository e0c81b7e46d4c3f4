//! Proves that picking and recording allocate nothing: a counting global allocator around 10,000 picks of
//! every algorithm.
//!
//! This file is its own test binary so that it alone runs on the counting allocator (rrlb-testkit's, which
//! counts per thread: the harness runs the other tests on other threads at the same time).

use rrlb_core::{
    Algorithm, AnyBalancer, BackendSet, BackendSpec, Balancer, LeastRequest, PeakEwma, Random,
    RoundRobin, SetOptions, WeightedRoundRobin,
};
use rrlb_testkit::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn set_of<B: Balancer>(balancer: B) -> BackendSet<B> {
    BackendSet::with_backends(
        balancer,
        SetOptions::default(),
        (0..10).map(|i| {
            BackendSpec::new(format!("b{i}"), format!("http://10.0.0.{i}:80")).with_weight(i + 1)
        }),
    )
    .unwrap()
}

/// Allocations made by 10,000 picks, each finished as a success, after a warm-up.
fn allocations_of_picks<B: Balancer>(set: &BackendSet<B>) -> u64 {
    for _ in 0..100 {
        set.pick().unwrap().success();
    }
    let before = allocations();
    for _ in 0..10_000 {
        let call = set.pick().unwrap();
        std::hint::black_box(call.backend().name());
        call.success();
    }
    let after = allocations();
    // Selection alone, without a call guard.
    for _ in 0..10_000 {
        std::hint::black_box(set.select(|m| m.weight()));
    }
    let end = allocations();
    // Through a picker (its cached snapshot is taken before counting).
    let mut picker = set.picker();
    picker.pick().unwrap().success();
    let picker_start = allocations();
    for _ in 0..10_000 {
        picker.pick().unwrap().success();
    }
    (after - before) + (end - after) + (allocations() - picker_start)
}

#[test]
fn picking_and_recording_allocate_nothing() {
    assert_eq!(
        allocations_of_picks(&set_of(RoundRobin::new())),
        0,
        "round robin"
    );
    assert_eq!(
        allocations_of_picks(&set_of(WeightedRoundRobin::new())),
        0,
        "weighted round robin"
    );
    assert_eq!(
        allocations_of_picks(&set_of(LeastRequest::with_seed(1))),
        0,
        "least request"
    );
    assert_eq!(
        allocations_of_picks(&set_of(Random::with_seed(1))),
        0,
        "random"
    );
    assert_eq!(
        allocations_of_picks(&set_of(PeakEwma::with_seed(1))),
        0,
        "peak-ewma"
    );
    for a in Algorithm::ALL {
        assert_eq!(allocations_of_picks(&set_of(AnyBalancer::new(a))), 0, "{a}");
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards against a counter that cannot fail: a Vec must be seen.
    let before = allocations();
    std::hint::black_box(vec![1u8; 64]);
    assert!(allocations() > before);
}

#[test]
fn picks_while_a_backend_ramps_up_allocate_nothing() {
    for a in Algorithm::ALL {
        let set = BackendSet::with_backends(
            AnyBalancer::new(a),
            SetOptions {
                slow_start: std::time::Duration::from_secs(3_600),
                ..SetOptions::default()
            },
            (0..10).map(|i| BackendSpec::new(format!("b{i}"), format!("http://10.0.0.{i}:80"))),
        )
        .unwrap();
        set.add(BackendSpec::new("new", "http://10.0.1.1:80"))
            .unwrap();
        assert!(set.load().is_ramping(), "{a}");
        assert_eq!(allocations_of_picks(&set), 0, "{a} while ramping");
    }
}

/// The hash lookups and the bounded-loads walk allocate nothing (the table and ring are built before
/// counting: they are built once per backend-set change, off the request path).
#[test]
fn hash_lookups_do_not_allocate() {
    use rrlb_core::hash::{KetamaRing, LoadBound, MaglevTable, crc32, hash64};
    let fleet: Vec<(String, u32)> = (0..10).map(|i| (format!("10.0.0.{i}:80"), i + 1)).collect();
    let ring = KetamaRing::build(&fleet);
    let maglev = MaglevTable::build(&fleet);
    let in_flight: Vec<u64> = (0..10).map(|i| i * 3).collect();
    let bound = LoadBound::new(Some(1.25), in_flight.iter().sum(), 10);
    let key = *b"user-00000";
    let before = allocations();
    let mut sum = 0usize;
    for i in 0..10_000u32 {
        let mut k = key;
        k[5..9].copy_from_slice(&i.to_le_bytes());
        sum += ring.lookup_key(&k).unwrap() + maglev.lookup_key(&k).unwrap();
        sum += ring
            .pick_bounded(crc32(&k), bound, |b| Some(in_flight[b]))
            .unwrap();
        sum += maglev
            .pick_bounded(hash64(&k), bound, |b| (b % 3 != 0).then_some(in_flight[b]))
            .unwrap();
    }
    std::hint::black_box(sum);
    assert_eq!(allocations() - before, 0);
}
