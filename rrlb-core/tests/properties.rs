//! Property tests: fairness, smoothness against a reference NGINX implementation, exact shares among the
//! eligible under random masks, and the circuit breaker against a model.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rrlb_core::breaker::{Breaker, BreakerParams, CircuitState};
use rrlb_core::{
    BackendSet, BackendSpec, Balancer, RoundRobin, SetOptions, WeightedPlan, WeightedRoundRobin,
};

fn set_with<B: Balancer>(balancer: B, weights: &[u32]) -> BackendSet<B> {
    BackendSet::with_backends(
        balancer,
        SetOptions::default(),
        weights.iter().enumerate().map(|(i, &w)| {
            BackendSpec::new(format!("b{i}"), format!("http://10.0.0.{i}:80")).with_weight(w)
        }),
    )
    .unwrap()
}

/// Index of the backend each of `n` picks went to.
fn pick_indices<B: Balancer>(set: &BackendSet<B>, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            let call = set.pick().unwrap();
            let i = call.backend().name()[1..].parse().unwrap();
            call.success();
            i
        })
        .collect()
}

fn counts(indices: &[usize], n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for &i in indices {
        c[i] += 1;
    }
    c
}

/// NGINX's smooth weighted round robin, straight from `ngx_http_upstream_get_peer`, run for `steps` picks.
fn nginx_reference(weights: &[u32], steps: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut best: Option<usize> = None;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best.unwrap();
        current[b] -= total;
        out.push(b);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Over any window of k·n sequential picks, each of n backends gets exactly k, wherever the window starts.
    #[test]
    fn round_robin_is_exactly_fair(n in 1usize..12, k in 1usize..6, offset in 0usize..50) {
        let set = set_with(RoundRobin::new(), &vec![1; n]);
        pick_indices(&set, offset);
        let c = counts(&pick_indices(&set, k * n), n);
        prop_assert!(c.iter().all(|&x| x == k), "{c:?}");
    }

    /// The weighted schedule is NGINX's sequence, for three whole periods.
    #[test]
    fn weighted_matches_nginx(weights in prop::collection::vec(1u32..20, 1..8)) {
        let total: u32 = weights.iter().sum();
        let set = set_with(WeightedRoundRobin::new(), &weights);
        let got = pick_indices(&set, 3 * total as usize);
        prop_assert_eq!(got, nginx_reference(&weights, 3 * total as usize));
    }

    /// Over one period of sum(weights) picks each backend gets exactly its weight, and the sequence is smooth:
    /// after any number t of picks no backend is more than one pick ahead of its ideal share t·w/W (NGINX's
    /// running weights sum to zero, so none falls below -W). The bursty a a a a a b c breaks this at t = 5.
    #[test]
    fn weighted_is_exact_and_smooth_per_period(weights in prop::collection::vec(1u32..50, 2..10)) {
        let plan = WeightedPlan::build(&weights);
        let total: u32 = weights.iter().sum();
        prop_assert!(plan.is_exact());
        let picks: Vec<usize> = plan.schedule().iter().map(|&i| i as usize).collect();
        prop_assert_eq!(picks.len() as u32 * weights.iter().fold(0, |g, &w| gcd(g, w)), total);
        let set = set_with(WeightedRoundRobin::new(), &weights);
        let c = counts(&pick_indices(&set, total as usize), weights.len());
        let expected: Vec<usize> = weights.iter().map(|&w| w as usize).collect();
        prop_assert_eq!(&c, &expected);
        let mut seen = vec![0u64; weights.len()];
        for (t, i) in pick_indices(&set, 2 * total as usize).into_iter().enumerate() {
            seen[i] += 1;
            let t = t as u64 + 1;
            for (j, &w) in weights.iter().enumerate() {
                // seen_j <= t·w_j/W + 1, in integers.
                prop_assert!(
                    seen[j] * u64::from(total) <= t * u64::from(w) + u64::from(total),
                    "backend {j} is {} picks in after {t}, more than one ahead of {}·{w}/{total} for {weights:?}",
                    seen[j], t
                );
            }
        }
    }

    /// With a random set of backends out, the rest share exactly: equally under round robin, by weight under
    /// weighted round robin.
    #[test]
    fn shares_are_exact_among_the_eligible(
        weights in prop::collection::vec(1u32..10, 2..10),
        mask in prop::collection::vec(any::<bool>(), 10),
        k in 1usize..4,
    ) {
        let n = weights.len();
        let down: Vec<bool> = mask[..n].to_vec();
        prop_assume!(down.iter().any(|d| !d));
        let eligible: Vec<usize> = (0..n).filter(|&i| !down[i]).collect();

        let rr = set_with(RoundRobin::new(), &weights);
        let wrr = set_with(WeightedRoundRobin::new(), &weights);
        for (i, &d) in down.iter().enumerate() {
            if d {
                rr.get(&format!("b{i}")).unwrap().backend().set_healthy(false);
                wrr.get(&format!("b{i}")).unwrap().backend().set_healthy(false);
            }
        }
        let c = counts(&pick_indices(&rr, k * eligible.len()), n);
        for i in 0..n {
            prop_assert_eq!(c[i], if down[i] { 0 } else { k }, "rr {:?}", c);
        }
        let total: u32 = eligible.iter().map(|&i| weights[i]).sum();
        let c = counts(&pick_indices(&wrr, k * total as usize), n);
        for i in 0..n {
            prop_assert_eq!(c[i], if down[i] { 0 } else { k * weights[i] as usize }, "wrr {:?}", c);
        }
    }

    /// The breaker follows a plain model over random sequences of calls, slow calls, probes and time.
    #[test]
    fn breaker_matches_model(events in prop::collection::vec(event(), 1..200), p in params()) {
        let t0 = Instant::now();
        let real = Breaker::new(p);
        let mut model = Model::new(p);
        let mut now = t0;
        for (step, e) in events.iter().enumerate() {
            match *e {
                Event::Call { ok, ms } => {
                    real.record(ok, Duration::from_millis(ms), false, now);
                    model.call(ok, ms, now);
                }
                Event::Probe { ok, ms } => {
                    let granted = real.try_acquire_probe();
                    prop_assert_eq!(granted, model.acquire(), "probe grant at step {}", step);
                    if granted {
                        real.record(ok, Duration::from_millis(ms), true, now);
                        model.probe(ok, ms, now);
                    }
                }
                Event::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    real.refresh(now);
                    model.refresh(now);
                }
                Event::HealthPass => {
                    real.on_health_check_passed();
                    model.health_pass();
                }
            }
            prop_assert_eq!(real.state(), model.state, "state after step {} ({:?})", step, e);
            prop_assert_eq!(real.open_until(), model.until.filter(|_| model.state == CircuitState::Open));
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Call { ok: bool, ms: u64 },
    Probe { ok: bool, ms: u64 },
    Advance(u64),
    HealthPass,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (any::<bool>(), prop_oneof![0u64..50, 150u64..400]).prop_map(|(ok, ms)| Event::Call { ok, ms }),
        3 => (prop::bool::weighted(0.8), prop_oneof![0u64..50, 150u64..400]).prop_map(|(ok, ms)| Event::Probe { ok, ms }),
        2 => (0u64..3_000).prop_map(Event::Advance),
        1 => Just(Event::HealthPass),
    ]
}

fn params() -> impl Strategy<Value = BreakerParams> {
    (
        0u32..6,
        prop_oneof![Just(0.0), 0.2f64..1.0],
        1u32..12,
        0u32..12,
        prop_oneof![Just(0.0), 0.2f64..1.0],
        1u32..4,
    )
        .prop_map(|(cf, fr, window, min_calls, sr, half)| BreakerParams {
            consecutive_failures: cf,
            failure_rate: fr,
            window,
            min_calls: min_calls.min(window),
            slow_call_duration: Duration::from_millis(100),
            slow_call_rate: sr,
            open_duration: Duration::from_millis(500),
            max_open_duration: Duration::from_millis(3_000),
            half_open_max_calls: half,
            max_ejection_percent: 100,
        })
}

/// The breaker as plainly as it can be written: a VecDeque window and no atomics.
struct Model {
    p: BreakerParams,
    state: CircuitState,
    consecutive: u32,
    window: VecDeque<(bool, bool)>,
    opens: u32,
    until: Option<Instant>,
    admitted: u32,
    successes: u32,
}

impl Model {
    fn new(p: BreakerParams) -> Self {
        Self {
            p,
            state: CircuitState::Closed,
            consecutive: 0,
            window: VecDeque::new(),
            opens: 0,
            until: None,
            admitted: 0,
            successes: 0,
        }
    }

    fn open(&mut self, now: Instant) {
        self.opens += 1;
        let d = (self.p.open_duration * 2u32.pow(self.opens - 1)).min(self.p.max_open_duration);
        self.until = Some(now + d);
        self.state = CircuitState::Open;
    }

    fn call(&mut self, ok: bool, ms: u64, now: Instant) {
        if self.state != CircuitState::Closed {
            return;
        }
        let slow = ms > 100;
        self.consecutive = if ok { 0 } else { self.consecutive + 1 };
        self.window.push_back((!ok, slow));
        if self.window.len() > self.p.window as usize {
            self.window.pop_front();
        }
        let calls = self.window.len() as f64;
        let fails = self.window.iter().filter(|x| x.0).count() as f64;
        let slows = self.window.iter().filter(|x| x.1).count() as f64;
        let enough = self.window.len() as u32 >= self.p.min_calls.max(1);
        let trip = (!ok
            && self.p.consecutive_failures > 0
            && self.consecutive >= self.p.consecutive_failures)
            || (enough && self.p.failure_rate > 0.0 && fails / calls >= self.p.failure_rate)
            || (enough && self.p.slow_call_rate > 0.0 && slows / calls >= self.p.slow_call_rate);
        if trip {
            self.open(now);
        }
    }

    fn acquire(&mut self) -> bool {
        if self.state == CircuitState::HalfOpen && self.admitted < self.p.half_open_max_calls {
            self.admitted += 1;
            true
        } else {
            false
        }
    }

    fn probe(&mut self, ok: bool, ms: u64, now: Instant) {
        if self.state != CircuitState::HalfOpen {
            return;
        }
        if !ok || ms > 100 {
            self.open(now);
            return;
        }
        self.successes += 1;
        if self.successes >= self.p.half_open_max_calls {
            *self = Model::new(self.p);
        }
    }

    fn half_open(&mut self) {
        self.state = CircuitState::HalfOpen;
        self.until = None;
        self.admitted = 0;
        self.successes = 0;
    }

    fn refresh(&mut self, now: Instant) {
        if self.state == CircuitState::Open && self.until.is_some_and(|u| now >= u) {
            self.half_open();
        }
    }

    fn health_pass(&mut self) {
        if self.state == CircuitState::Open {
            self.half_open();
        }
    }
}
