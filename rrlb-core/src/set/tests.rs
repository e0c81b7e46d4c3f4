use std::time::Duration;

use super::*;
use crate::Algorithm;
use crate::balancer::{AnyBalancer, RoundRobin, WeightedRoundRobin};
use crate::breaker::{BreakerParams, CircuitState};

fn names<B: Balancer>(set: &BackendSet<B>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let call = set.pick().unwrap();
            let name = call.backend().name().to_owned();
            call.success();
            name
        })
        .collect()
}

fn three() -> BackendSet<RoundRobin> {
    BackendSet::with_backends(
        RoundRobin::new(),
        SetOptions::default(),
        ["a", "b", "c"].map(|n| BackendSpec::new(n, format!("http://{n}:80"))),
    )
    .unwrap()
}

#[test]
fn round_robin_rotates() {
    assert_eq!(names(&three(), 6), ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn unhealthy_backends_leave_the_rotation_and_the_rest_share_exactly() {
    let set = three();
    set.get("b").unwrap().backend().set_healthy(false);
    let picks = names(&set, 100);
    assert_eq!(picks.iter().filter(|n| *n == "a").count(), 50);
    assert_eq!(picks.iter().filter(|n| *n == "c").count(), 50);
    set.get("b").unwrap().backend().set_healthy(true);
    let picks = names(&set, 99);
    assert_eq!(picks.iter().filter(|n| *n == "b").count(), 33);
}

#[test]
fn empty_and_all_down_sets_say_why() {
    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    assert_eq!(set.pick().unwrap_err().members(), 0);
    let set = three();
    for n in ["a", "b", "c"] {
        set.get(n).unwrap().backend().set_healthy(false);
    }
    let err = set.pick().unwrap_err();
    assert_eq!(err.members(), 3);
    assert!(err.to_string().contains("none of the 3"));
}

#[test]
fn duplicates_unknown_names_and_bad_weights_are_refused() {
    let set = three();
    assert!(
        set.add(BackendSpec::new("a", "http://x:1"))
            .unwrap_err()
            .is_duplicate()
    );
    assert!(
        set.add(BackendSpec::new("x", "http://a:80"))
            .unwrap_err()
            .is_duplicate()
    );
    assert!(set.remove("zzz").unwrap_err().is_not_found());
    assert!(set.set_weight("a", 0).unwrap_err().is_invalid_weight());
    assert!(set.set_weight("a", 10_001).unwrap_err().is_invalid_weight());
    let dup = [
        BackendSpec::new("x", "http://x:1"),
        BackendSpec::new("x", "http://y:1"),
    ];
    assert!(set.update(dup).unwrap_err().is_duplicate());
    assert_eq!(
        set.load().members().len(),
        3,
        "a refused change changes nothing"
    );
}

#[test]
fn update_keeps_state_of_surviving_backends() {
    let set = three();
    let a = set.get("a").unwrap().backend().clone();
    names(&set, 3);
    let diff = set
        .update([
            BackendSpec::new("a", "http://a:80").with_weight(3),
            BackendSpec::new("d", "http://d:80"),
        ])
        .unwrap();
    assert_eq!(diff.added.len(), 1);
    assert_eq!(diff.removed.len(), 2);
    let a2 = set.get("a").unwrap();
    assert!(Arc::ptr_eq(&a, a2.backend()), "same Arc, same state");
    assert_eq!(a2.weight(), 3);
    assert_eq!(a.stats().snapshot().requests, 1);
}

#[test]
fn update_draining_publishes_the_list_with_its_drains_in_one_step() {
    let set = three();
    set.drain("a", true, false).unwrap();
    let before = set.load().version();
    set.update_draining(
        ["a", "b", "d"].map(|n| BackendSpec::new(n, format!("http://{n}:80"))),
        |name| name == "b" || name == "d",
    )
    .unwrap();
    assert_eq!(set.load().version(), before + 1, "one publication");
    let draining: Vec<(String, bool)> = set
        .load()
        .members()
        .iter()
        .map(|m| (m.name().to_owned(), m.is_draining()))
        .collect();
    assert_eq!(
        draining,
        [("a".into(), false), ("b".into(), true), ("d".into(), true)]
    );
    assert!(names(&set, 4).iter().all(|n| n == "a"));
}

#[test]
fn drain_stops_new_calls_and_removes_when_idle() {
    let set = three();
    let call = set.pick().unwrap(); // a, in flight
    set.drain("a", true, true).unwrap();
    assert!(set.get("a").unwrap().is_draining());
    assert!(names(&set, 10).iter().all(|n| n != "a"));
    assert!(!set.refresh(Instant::now()), "still in flight");
    call.success();
    assert!(set.refresh(Instant::now()));
    assert!(set.get("a").is_none());
    // Drain without removal can be lifted.
    set.drain("b", true, false).unwrap();
    set.drain("b", false, false).unwrap();
    assert!(names(&set, 2).contains(&"b".to_owned()));
}

#[test]
fn breaker_ejects_then_probes_then_readmits() {
    let options = SetOptions {
        breaker: BreakerParams {
            consecutive_failures: 2,
            half_open_max_calls: 2,
            ..BreakerParams::default()
        },
        ..SetOptions::default()
    };
    let set = BackendSet::with_backends(
        RoundRobin::new(),
        options,
        ["a", "b"].map(|n| BackendSpec::new(n, format!("http://{n}:80"))),
    )
    .unwrap();
    let t0 = Instant::now();
    // Fail "a" twice.
    for _ in 0..4 {
        let call = set.pick().unwrap();
        if call.backend().name() == "a" {
            call.finish_at(Outcome::Failure, t0);
        } else {
            call.success();
        }
    }
    assert_eq!(set.get("a").unwrap().circuit(), CircuitState::Open);
    assert!(names(&set, 5).iter().all(|n| n == "b"));
    let deadline = set.load().next_deadline().unwrap();
    assert!(set.refresh(deadline));
    assert_eq!(set.load().probing().len(), 1);
    // Two probes go to "a", then it is full; b takes the rest.
    let p1 = set.pick().unwrap();
    let p2 = set.pick().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(set.pick().unwrap().backend().name(), "b");
    p1.success();
    p2.success();
    assert_eq!(set.get("a").unwrap().circuit(), CircuitState::Closed);
    assert!(names(&set, 4).contains(&"a".to_owned()));
}

#[test]
fn dropped_calls_are_cancelled_not_failed() {
    let set = three();
    let call = set.pick().unwrap();
    let backend = call.backend().clone();
    drop(call);
    let s = backend.stats().snapshot();
    assert_eq!(
        (s.requests, s.failures, s.cancelled, s.in_flight),
        (1, 0, 1, 0)
    );
}

#[test]
fn panic_threshold_balances_over_everyone() {
    let options = SetOptions {
        panic_threshold: 50,
        ..SetOptions::default()
    };
    let set = BackendSet::with_backends(
        RoundRobin::new(),
        options,
        ["a", "b", "c", "d"].map(|n| BackendSpec::new(n, format!("http://{n}:80"))),
    )
    .unwrap();
    set.get("a").unwrap().backend().set_healthy(false);
    assert!(!set.load().is_panic(), "3 of 4 eligible");
    set.get("b").unwrap().backend().set_healthy(false);
    assert!(!set.load().is_panic(), "2 of 4 = 50% is not below 50%");
    set.get("c").unwrap().backend().set_healthy(false);
    assert!(set.load().is_panic());
    assert_eq!(set.load().eligible().len(), 4);
}

#[test]
fn pick_excluding_never_returns_the_excluded() {
    let set = three();
    for _ in 0..10 {
        let call = set.pick_excluding(&["a"]).unwrap();
        assert_ne!(call.backend().name(), "a");
    }
    assert!(set.pick_excluding(&["a", "b", "c"]).is_err());
}

#[test]
fn health_checks_flip_eligibility_and_half_open_breakers() {
    let set = three();
    let b = set.get("b").unwrap().backend().clone();
    for _ in 0..3 {
        b.record_health_check(false);
    }
    assert!(set.load().get("b").is_some());
    assert_eq!(set.load().eligible().len(), 2);
    b.record_health_check(true);
    b.record_health_check(true);
    assert_eq!(set.load().eligible().len(), 3);
}

#[test]
fn algorithm_can_change_and_weights_apply() {
    let set = BackendSet::with_backends(
        AnyBalancer::new(Algorithm::RoundRobin),
        SetOptions::default(),
        [
            BackendSpec::new("a", "http://a:80").with_weight(5),
            BackendSpec::new("b", "http://b:80"),
            BackendSpec::new("c", "http://c:80"),
        ],
    )
    .unwrap();
    assert_eq!(names(&set, 3).concat(), "abc");
    set.set_balancer(AnyBalancer::new(Algorithm::WeightedRoundRobin));
    assert_eq!(names(&set, 7).concat(), "aabacaa");
    let wrr = BackendSet::with_backends(
        WeightedRoundRobin::new(),
        SetOptions::default(),
        [
            BackendSpec::new("a", "http://a:80").with_weight(2),
            BackendSpec::new("b", "http://b:80"),
        ],
    )
    .unwrap();
    wrr.set_weight("b", 2).unwrap();
    assert_eq!(names(&wrr, 4).concat(), "abab");
}

#[test]
fn slow_calls_eject() {
    let options = SetOptions {
        breaker: BreakerParams {
            min_calls: 4,
            window: 4,
            slow_call_rate: 0.5,
            slow_call_duration: Duration::from_millis(100),
            ..BreakerParams::default()
        },
        ..SetOptions::default()
    };
    let set = BackendSet::with_backends(
        RoundRobin::new(),
        options,
        [BackendSpec::new("a", "http://a:80")],
    )
    .unwrap();
    let now = Instant::now();
    for _ in 0..4 {
        let call = set.pick().unwrap();
        call.finish_with_latency(Outcome::Success, Duration::from_millis(300), now);
    }
    assert_eq!(set.get("a").unwrap().circuit(), CircuitState::Open);
    assert!(set.pick().is_err());
}

#[test]
fn a_picker_sees_every_change_published_before_its_pick() {
    let set = three();
    let mut picker = set.picker();
    let pick = |picker: &mut Picker<RoundRobin>| {
        let call = picker.pick().unwrap();
        let name = call.backend().name().to_owned();
        call.success();
        name
    };
    assert_eq!(pick(&mut picker), "a");
    set.remove("b").unwrap();
    // The counter goes on (1, 2, 3, ...) over the new eligible view [a, c].
    let after: Vec<String> = (0..4).map(|_| pick(&mut picker)).collect();
    assert_eq!(after, ["c", "a", "c", "a"]);
    set.get("c").unwrap().backend().set_healthy(false);
    assert_eq!(pick(&mut picker), "a");
    set.get("a").unwrap().backend().set_healthy(false);
    assert!(picker.pick().is_err(), "nothing eligible");
    // A clone is independent but sees the same set.
    set.get("a").unwrap().backend().set_healthy(true);
    let mut clone = picker.clone();
    assert_eq!(pick(&mut clone), "a");
    assert_eq!(picker.snapshot().version(), set.load().version());
}

#[test]
fn a_backend_carries_the_extension_of_its_spec() {
    #[derive(Debug, PartialEq)]
    struct Port(u16);
    let set = BackendSet::with_backends(
        RoundRobin::new(),
        SetOptions::default(),
        [BackendSpec::new("a", "http://a:81").with_ext(Port(81))],
    )
    .unwrap();
    let a = set.get("a").unwrap();
    assert_eq!(a.ext::<Port>(), Some(&Port(81)));
    assert_eq!(a.ext::<u16>(), None);
    let b = set.add(BackendSpec::new("b", "http://b:80")).unwrap();
    assert_eq!(b.ext::<Port>(), None);
    // A backend that survives an update keeps its state, and so its extension.
    set.update([BackendSpec::new("a", "http://a:81").with_ext(Port(1))])
        .unwrap();
    assert!(Arc::ptr_eq(set.get("a").unwrap().backend(), a.backend()));
    assert_eq!(set.get("a").unwrap().ext::<Port>(), Some(&Port(81)));
}

/// A clock that tests move by hand.
#[derive(Clone)]
struct VirtualClock {
    base: Instant,
    offset_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl VirtualClock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_ms: Arc::default(),
        }
    }
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.offset_ms.load(std::sync::atomic::Ordering::Relaxed))
    }
    fn set(&self, ms: u64) {
        self.offset_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

fn slow_start_set(algorithm: Algorithm, clock: &VirtualClock) -> BackendSet<AnyBalancer> {
    let c = clock.clone();
    let set = BackendSet::with_clock(
        AnyBalancer::new(algorithm),
        SetOptions {
            slow_start: Duration::from_secs(10),
            ..SetOptions::default()
        },
        move || c.now(),
    );
    set.update(["a", "b", "c"].map(|n| BackendSpec::new(n, format!("http://{n}:80"))))
        .unwrap();
    set
}

/// `d`'s picks per pick of an average other backend, over `n` picks that all take 1 ms (so that peak-EWMA's
/// estimates are equal and its own shares uniform).
fn ramp_ratio<B: Balancer>(set: &BackendSet<B>, n: usize) -> f64 {
    let now = Instant::now();
    let d = (0..n)
        .filter(|_| {
            let call = set.pick().unwrap();
            let is_d = call.backend().name() == "d";
            call.finish_with_latency(Outcome::Success, Duration::from_millis(1), now);
            is_d
        })
        .count() as f64;
    d / ((n as f64 - d) / 3.0)
}

#[test]
fn the_initial_backends_do_not_ramp_but_an_added_one_does_for_every_algorithm() {
    for algorithm in Algorithm::ALL {
        let clock = VirtualClock::new();
        let set = slow_start_set(algorithm, &clock);
        assert!(
            !set.load().is_ramping(),
            "{algorithm}: nothing to protect at start"
        );
        set.add(BackendSpec::new("d", "http://d:80")).unwrap();
        assert!(set.load().is_ramping());
        let start = ramp_ratio(&set, 20_000);
        clock.set(5_000);
        let middle = ramp_ratio(&set, 20_000);
        clock.set(10_000);
        let end = ramp_ratio(&set, 20_000);
        assert!((0.07..0.13).contains(&start), "{algorithm}: {start}");
        assert!((0.48..0.62).contains(&middle), "{algorithm}: {middle}");
        assert!((0.93..1.07).contains(&end), "{algorithm}: {end}");
    }
}

#[test]
fn a_backend_back_from_unhealthy_or_an_open_breaker_ramps_and_refresh_ends_the_ramp() {
    let clock = VirtualClock::new();
    let set = slow_start_set(Algorithm::RoundRobin, &clock);
    set.add(BackendSpec::new("d", "http://d:80")).unwrap();
    clock.set(10_000);
    let deadline = set.load().next_deadline().unwrap();
    assert_eq!(deadline, clock.now(), "the ramp's end is a deadline");
    assert!(set.refresh(clock.now()));
    assert!(!set.load().is_ramping());
    assert_eq!(set.load().next_deadline(), None);

    let d = set.get("d").unwrap().backend().clone();
    d.set_healthy(false);
    d.set_healthy(true);
    assert!(set.load().is_ramping(), "healthy again: ramps");
    assert_eq!(set.get("d").unwrap().slow_start_since(), Some(clock.now()));
    assert!(ramp_ratio(&set, 20_000) < 0.13);
}

#[test]
fn a_set_without_slow_start_never_ramps() {
    let set = three();
    set.add(BackendSpec::new("d", "http://d:80")).unwrap();
    assert!(!set.load().is_ramping());
    let picks = names(&set, 400);
    assert_eq!(picks.iter().filter(|n| *n == "d").count(), 100);
}

#[test]
fn the_ejection_limit_counts_the_set_and_lets_go_of_removed_backends() {
    let options = SetOptions {
        breaker: BreakerParams {
            consecutive_failures: 1,
            max_ejection_percent: 50,
            ..BreakerParams::default()
        },
        ..SetOptions::default()
    };
    let set = BackendSet::with_backends(
        RoundRobin::new(),
        options,
        ["a", "b", "c", "d"].map(|n| BackendSpec::new(n, format!("http://{n}:80"))),
    )
    .unwrap();
    for _ in 0..8 {
        if let Ok(call) = set.pick() {
            call.failure();
        }
    }
    let open = set
        .load()
        .members()
        .iter()
        .filter(|m| m.circuit() != CircuitState::Closed)
        .count();
    assert_eq!(open, 2);
    assert_eq!(set.ejections().ejected(), 2);
    assert!(set.ejections().skipped() >= 2);
    let ejected = set
        .load()
        .members()
        .iter()
        .find(|m| m.circuit() == CircuitState::Open)
        .map(|m| m.name().to_owned())
        .unwrap();
    set.remove(&ejected).unwrap();
    assert_eq!(
        set.ejections().ejected(),
        1,
        "a removed backend's ejection is handed back"
    );
}
