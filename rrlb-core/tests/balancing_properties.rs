//! Property tests of the balancing additions, over long random sequences with fixed seeds:
//!
//! * peak-EWMA never picks the candidate that is strictly more expensive of the two it drew (checked against a
//!   reference that redraws the same two candidates and costs them from the public estimates);
//! * slow start: a ramping backend's realised share follows the ramp and ends at exactly its weight's share;
//! * the ejection limit: breakers never hold more than `max_ejection_percent` of the set open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rrlb_core::backend::Timestamp;
use rrlb_core::breaker::{BreakerParams, CircuitState};
use rrlb_core::{BackendSet, BackendSpec, Call, Outcome, PeakEwma, SetOptions, WeightedRoundRobin};

fn config(cases: u32, seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The draws of `PeakEwma::with_seed`: SplitMix64 over a counter, two distinct indices by multiply-shift.
struct Draws(u64);

impl Draws {
    fn pair(&mut self, n: usize) -> (usize, usize) {
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let r = z ^ (z >> 31);
        let below = |bits: u32, n: usize| ((u64::from(bits) * n as u64) >> 32) as usize;
        let a = below(r as u32, n);
        let mut b = below((r >> 32) as u32, n - 1);
        if b >= a {
            b += 1;
        }
        (a, b)
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A call to backend `i` that took `ms`, ending `dt` ms after the previous event.
    Observe { i: usize, ms: u64, dt: u64 },
    /// A call to backend `i` starts (and stays in flight).
    Start(usize),
    /// One of backend `i`'s calls in flight ends without an outcome.
    End(usize),
    /// A pick, checked against the reference.
    Pick,
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..n, 0u64..500, 0u64..2_000).prop_map(|(i, ms, dt)| Op::Observe { i, ms, dt }),
        1 => (0..n).prop_map(Op::Start),
        1 => (0..n).prop_map(Op::End),
        4 => Just(Op::Pick),
    ]
}

fn ewma_case() -> impl Strategy<Value = (usize, u64, Vec<Op>)> {
    (2usize..12).prop_flat_map(|n| (Just(n), any::<u64>(), prop::collection::vec(op(n), 1..400)))
}

proptest! {
    #![proptest_config(config(300, 0x00E3_3A11))]

    #[test]
    fn peak_ewma_never_picks_the_strictly_dearer_candidate((n, seed, ops) in ewma_case()) {
        let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
        let set = BackendSet::with_backends(
            PeakEwma::with_seed(seed),
            SetOptions { ewma_decay: Duration::from_secs(1), ..SetOptions::default() },
            (0..n).map(|i| BackendSpec::new(format!("b{i}"), format!("http://b{i}:80"))),
        ).unwrap();
        let snap = set.snapshot();
        let members = snap.members();
        let t0 = Instant::now();
        let mut t = t0;
        let mut in_flight: Vec<Vec<Call>> = (0..n).map(|_| Vec::new()).collect();
        let mut draws = Draws(seed);
        for op in ops {
            match op {
                Op::Observe { i, ms, dt } => {
                    t += Duration::from_millis(dt);
                    members[i].stats().ewma().observe(Duration::from_millis(ms), Timestamp::from_instant(t));
                }
                Op::Start(i) => {
                    // A call to exactly `i`: every other backend excluded. The balancer still draws once.
                    draws.pair(n);
                    let others: Vec<&str> =
                        names.iter().filter(|x| **x != names[i]).map(String::as_str).collect();
                    in_flight[i].push(set.pick_excluding(&others).unwrap());
                }
                Op::End(i) => { in_flight[i].pop(); }
                Op::Pick => {
                    let (a, b) = draws.pair(n);
                    let chosen = set.select(|m| m.name()[1..].parse::<usize>().unwrap()).unwrap();
                    prop_assert!(chosen == a || chosen == b, "picked {chosen}, drew {a} and {b}");
                    let other = if chosen == a { b } else { a };
                    // Cost both at the latest instant anything happened; an unobserved backend is costed at
                    // its peer's estimate (so load alone decides).
                    let at = Timestamp::from_instant(t);
                    let est = |i: usize| members[i].stats().ewma().estimate(at).map(|d| d.as_nanos() as f64);
                    let load = |i: usize| (members[i].stats().in_flight() + 1) as f64;
                    let (ec, eo) = match (est(chosen), est(other)) {
                        (Some(x), Some(y)) => (x, y),
                        _ => (1.0, 1.0),
                    };
                    let (cost_chosen, cost_other) = (ec * load(chosen), eo * load(other));
                    // The reference rounds estimates to whole nanoseconds: allow that much per call in flight.
                    let slack = load(chosen) + load(other);
                    prop_assert!(
                        cost_chosen <= cost_other * (1.0 + 1e-9) + slack,
                        "picked {chosen} at cost {cost_chosen} over {other} at {cost_other}"
                    );
                }
            }
        }
    }
}

/// A clock the tests move by hand.
#[derive(Clone)]
struct VirtualClock {
    base: Instant,
    ms: Arc<AtomicU64>,
}

impl VirtualClock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            ms: Arc::default(),
        }
    }
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
    fn set(&self, ms: u64) {
        self.ms.store(ms, Ordering::Relaxed);
    }
}

proptest! {
    #![proptest_config(config(24, 0x5105_7A27))]

    /// A backend added under slow start (weighted round robin, window 10 s) gets `f · w / (W + f · w)` of the
    /// picks at ramp share `f`, and exactly its weight's share over whole periods once the window has passed.
    #[test]
    fn slow_start_share_follows_the_ramp_and_converges_to_the_weight(
        weights in prop::collection::vec(1u32..6, 1..5),
        w in 1u32..6,
        tenth in 0u64..10,
    ) {
        let clock = VirtualClock::new();
        let c = clock.clone();
        let set = BackendSet::with_clock(
            WeightedRoundRobin::new(),
            SetOptions { slow_start: Duration::from_secs(10), ..SetOptions::default() },
            move || c.now(),
        );
        set.update(weights.iter().enumerate().map(|(i, &wi)| {
            BackendSpec::new(format!("b{i}"), format!("http://b{i}:80")).with_weight(wi)
        })).unwrap();
        set.add(BackendSpec::new("new", "http://new:80").with_weight(w)).unwrap();
        let total: u32 = weights.iter().sum();

        clock.set(tenth * 1_000);
        let f = 0.1 + 0.9 * tenth as f64 / 10.0;
        let expected = f * f64::from(w) / (f64::from(total) + f * f64::from(w));
        let picks = 6_000;
        let got = (0..picks).filter(|_| set.select(|m| m.name() == "new").unwrap()).count();
        let share = got as f64 / f64::from(picks);
        prop_assert!((share - expected).abs() < 0.03, "share {share:.3}, expected {expected:.3} at f = {f}");

        clock.set(10_000);
        prop_assert!(set.refresh(clock.now()));
        prop_assert!(!set.load().is_ramping());
        let periods = 20;
        let picks = (total + w) * periods;
        let got = (0..picks).filter(|_| set.select(|m| m.name() == "new").unwrap()).count();
        prop_assert_eq!(got as u32, w * periods);
    }
}

#[derive(Debug, Clone)]
enum BreakerOp {
    /// A call to backend `i` (ordinary, or a probe if it is half-open) with this outcome.
    Call { i: usize, ok: bool },
    /// A passing health check on backend `i` (an open breaker goes half-open).
    HealthPass(usize),
    /// Time passes by this many milliseconds and the set is refreshed.
    Advance(u64),
}

fn breaker_op(n: usize) -> impl Strategy<Value = BreakerOp> {
    prop_oneof![
        6 => (0..n, prop::bool::weighted(0.3)).prop_map(|(i, ok)| BreakerOp::Call { i, ok }),
        1 => (0..n).prop_map(BreakerOp::HealthPass),
        1 => (0u64..3_000).prop_map(BreakerOp::Advance),
    ]
}

fn ejection_case() -> impl Strategy<Value = (usize, u8, u32, Vec<BreakerOp>)> {
    (1usize..10).prop_flat_map(|n| {
        (
            Just(n),
            0u8..=100,
            1u32..4,
            prop::collection::vec(breaker_op(n), 1..300),
        )
    })
}

proptest! {
    #![proptest_config(config(200, 0x000E_7EC7))]

    /// Whatever fails, recovers or times out, the breakers that are not closed are never more than
    /// `max_ejection_percent` of the set, and the set's count of ejections is exactly their number.
    #[test]
    fn ejections_never_exceed_the_limit((n, pct, failures, ops) in ejection_case()) {
        let options = SetOptions {
            breaker: BreakerParams {
                consecutive_failures: failures,
                open_duration: Duration::from_secs(1),
                max_open_duration: Duration::from_secs(4),
                half_open_max_calls: 1,
                max_ejection_percent: pct,
                ..BreakerParams::default()
            },
            ..SetOptions::default()
        };
        let set = BackendSet::with_backends(
            rrlb_core::RoundRobin::new(),
            options,
            (0..n).map(|i| BackendSpec::new(format!("b{i}"), format!("http://b{i}:80"))),
        ).unwrap();
        let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
        let allowed = usize::from(pct) * n / 100;
        let mut now = Instant::now();
        for op in ops {
            match op {
                BreakerOp::Call { i, ok } => {
                    let others: Vec<&str> =
                        names.iter().filter(|x| **x != names[i]).map(String::as_str).collect();
                    if let Ok(call) = set.pick_excluding(&others) {
                        let outcome = if ok { Outcome::Success } else { Outcome::Failure };
                        call.finish_with_latency(outcome, Duration::from_millis(1), now);
                    }
                }
                BreakerOp::HealthPass(i) => {
                    set.get(&names[i]).unwrap().backend().record_health_check(true);
                }
                BreakerOp::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    set.refresh(now);
                }
            }
            let ejected = set.load().members().iter().filter(|m| m.circuit() != CircuitState::Closed).count();
            prop_assert!(ejected <= allowed, "{ejected} ejected, {allowed} allowed ({pct} % of {n})");
            prop_assert_eq!(set.ejections().ejected(), ejected);
        }
    }
}
