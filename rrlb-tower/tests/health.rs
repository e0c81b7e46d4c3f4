//! Active health checks with a scripted probe, breaker housekeeping and discovery, in paused time.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use rrlb_core::{Backend, BackendSet, BackendSpec, CircuitState, HealthParams, RoundRobin};
use rrlb_tower::{HealthCheckConfig, HealthChecker, Maintenance, apply_changes};
use support::{ProbeScript, set_of, trip_after};
use tokio::time::{Instant, sleep_until};
use tower::discover::Change;

const SECOND: Duration = Duration::from_secs(1);

/// Probe rounds every second, at t = 0 s, 1 s, 2 s, ... (no jitter).
fn every_second() -> HealthCheckConfig {
    HealthCheckConfig {
        interval: SECOND,
        timeout: Duration::from_millis(100),
        jitter: 0.0,
    }
}

fn checker(
    set: &BackendSet<RoundRobin>,
    script: &ProbeScript,
    config: HealthCheckConfig,
) -> HealthChecker {
    let script = script.clone();
    HealthChecker::spawn(
        set.clone(),
        move |backend: Arc<Backend>| {
            let passed = script.probe(backend.name());
            async move { passed }
        },
        config,
    )
}

/// Sleeps until `secs` seconds after `t0` (half-way between rounds, so nothing races a round).
async fn at(t0: Instant, secs: f64) {
    sleep_until(t0 + Duration::from_secs_f64(secs)).await;
}

fn eligible(set: &BackendSet<RoundRobin>) -> Vec<String> {
    set.load()
        .eligible()
        .iter()
        .map(|m| m.backend().name().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn rise_and_fall_thresholds_flip_eligibility_on_the_right_round() {
    let mut options = trip_after(5);
    options.health = HealthParams {
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    };
    let set = set_of(RoundRobin::new(), options, &["a", "b"]);
    let script = ProbeScript::default();
    script.set("a", false);
    let t0 = Instant::now();
    let _checker = checker(&set, &script, every_second());

    // Failures at rounds 0 and 1: still healthy (fall = 3).
    at(t0, 1.5).await;
    assert_eq!(script.count("a"), 2);
    assert!(set.get("a").unwrap().is_healthy());
    assert_eq!(eligible(&set), ["a", "b"]);
    // The third failure, at round 2, ejects it.
    at(t0, 2.5).await;
    assert_eq!(script.count("a"), 3);
    assert!(!set.get("a").unwrap().is_healthy());
    assert_eq!(eligible(&set), ["b"]);

    // Passing again from round 3: one pass is not enough (rise = 2), the second restores it.
    script.set("a", true);
    at(t0, 3.5).await;
    assert!(!set.get("a").unwrap().is_healthy());
    at(t0, 4.5).await;
    assert!(set.get("a").unwrap().is_healthy());
    assert_eq!(eligible(&set), ["a", "b"]);
    assert_eq!((script.count("a"), script.count("b")), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn a_new_interval_applies_from_a_round_that_starts_at_once() {
    let set = set_of(RoundRobin::new(), trip_after(5), &["a"]);
    let script = ProbeScript::default();
    let t0 = Instant::now();
    let checker = checker(&set, &script, every_second());
    at(t0, 2.5).await;
    assert_eq!(script.count("a"), 3, "rounds at 0, 1 and 2 s");

    let fast = HealthCheckConfig {
        interval: Duration::from_millis(200),
        ..every_second()
    };
    checker.set_config(fast);
    assert_eq!(checker.config(), fast);
    // A round at once (2.5 s), then every 200 ms: 2.7, 2.9, 3.1, 3.3.
    at(t0, 3.4).await;
    assert_eq!(script.count("a"), 3 + 5);

    // Back to one second: a round at once (3.4 s), the next at 4.4 s.
    checker.set_config(every_second());
    at(t0, 4.3).await;
    assert_eq!(script.count("a"), 9);
    at(t0, 4.5).await;
    assert_eq!(script.count("a"), 10);
}

#[tokio::test(start_paused = true)]
async fn probes_follow_the_set_membership() {
    let set = set_of(RoundRobin::new(), trip_after(5), &["a"]);
    let script = ProbeScript::default();
    let t0 = Instant::now();
    let _checker = checker(&set, &script, every_second());
    at(t0, 0.5).await;
    assert_eq!((script.count("a"), script.count("b")), (1, 0));

    set.add(BackendSpec::new("b", "http://10.0.0.2:80"))
        .unwrap();
    at(t0, 1.5).await;
    assert_eq!(
        (script.count("a"), script.count("b")),
        (2, 1),
        "b is probed from the next round"
    );

    set.remove("a").unwrap();
    at(t0, 3.5).await;
    assert_eq!(
        (script.count("a"), script.count("b")),
        (2, 3),
        "a is no longer probed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_passing_probe_moves_an_open_breaker_to_half_open() {
    let set = set_of(RoundRobin::new(), trip_after(1), &["a", "b"]);
    let script = ProbeScript::default();
    let t0 = Instant::now();
    let _checker = checker(&set, &script, every_second());
    at(t0, 0.5).await;
    script.set("a", false);
    let call = set.pick().unwrap();
    assert_eq!(call.backend().name(), "a");
    call.failure();
    let a = set.get("a").unwrap();
    assert_eq!(a.circuit(), CircuitState::Open);

    // A failing probe leaves it open; a passing one half-opens it long before its 60 s are over.
    at(t0, 1.5).await;
    assert_eq!(a.circuit(), CircuitState::Open);
    script.set("a", true);
    at(t0, 2.5).await;
    assert_eq!(a.circuit(), CircuitState::HalfOpen);
    assert!(
        a.is_healthy(),
        "one failed probe is below the fall threshold of 2"
    );
    assert_eq!(set.load().probing().len(), 1);
    assert_eq!(set.pick().unwrap().backend().name(), "a", "probes go first");
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_fails() {
    let set = set_of(RoundRobin::new(), trip_after(5), &["a"]);
    set.set_options(rrlb_core::SetOptions {
        health: HealthParams {
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        },
        ..set.options()
    });
    let _checker = HealthChecker::spawn(
        set.clone(),
        |_backend: Arc<Backend>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            true
        },
        every_second(),
    );
    let t0 = Instant::now();
    at(t0, 0.5).await;
    assert!(
        !set.get("a").unwrap().is_healthy(),
        "the probe timed out after 100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn maintenance_half_opens_an_open_breaker_at_its_deadline() {
    let set = set_of(RoundRobin::new(), trip_after(1), &["a", "b"]);
    set.pick().unwrap().failure();
    let a = set.get("a").unwrap();
    let until = Instant::from_std(a.breaker().open_until().expect("open"));
    let _maintenance = Maintenance::spawn(set.clone(), Duration::from_secs(3600));

    sleep_until(until - Duration::from_millis(1)).await;
    assert_eq!(a.circuit(), CircuitState::Open);
    assert_eq!(eligible(&set), ["b"]);
    sleep_until(until + Duration::from_millis(1)).await;
    assert_eq!(
        a.circuit(),
        CircuitState::HalfOpen,
        "on time, not at the next hourly tick"
    );
    assert_eq!(set.load().probing().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn maintenance_catches_a_breaker_that_opened_while_it_slept() {
    let mut options = trip_after(1);
    options.breaker.open_duration = Duration::from_millis(300);
    let set = set_of(RoundRobin::new(), options, &["a", "b"]);
    let tick = SECOND;
    let t0 = Instant::now();
    let _maintenance = Maintenance::spawn(set.clone(), tick);
    tokio::task::yield_now().await; // the task now sleeps for a whole tick: no deadline yet
    set.pick().unwrap().failure();
    let a = set.get("a").unwrap();
    assert_eq!(a.circuit(), CircuitState::Open);
    // The task cannot know of a deadline published while it sleeps: the breaker half-opens at
    // the next tick at the latest (rrlb uses a 250 ms tick).
    sleep_until(t0 + tick + Duration::from_millis(1)).await;
    assert_eq!(a.circuit(), CircuitState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn maintenance_removes_idle_drained_backends() {
    let set = set_of(RoundRobin::new(), trip_after(5), &["a", "b"]);
    let call = set.pick().unwrap();
    assert_eq!(call.backend().name(), "a");
    set.drain("a", true, true).unwrap();
    let _maintenance = Maintenance::spawn(set.clone(), SECOND);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(set.get("a").is_some(), "a call is still in flight");
    call.success();
    tokio::time::sleep(SECOND).await;
    assert!(set.get("a").is_none(), "removed once idle");
}

#[tokio::test]
async fn discovery_changes_are_applied_in_order() {
    let set = BackendSet::new(RoundRobin::new(), trip_after(5));
    let spec = |url: &str, weight: u32| BackendSpec::new("ignored", url).with_weight(weight);
    let changes = stream::iter([
        Change::Insert("a".to_owned(), spec("http://10.0.0.1:80", 1)),
        Change::Insert("b".to_owned(), spec("http://10.0.0.2:80", 1)),
        Change::Insert("c".to_owned(), spec("http://10.0.0.3:80", 1)),
        // Same name and URL: a weight change that keeps the backend's state.
        Change::Insert("a".to_owned(), spec("http://10.0.0.1:80", 7)),
        // Same name, new URL: the backend is replaced.
        Change::Insert("b".to_owned(), spec("http://10.0.0.22:80", 2)),
        // Refused and skipped: a duplicate URL, a zero weight, an unknown name.
        Change::Insert("d".to_owned(), spec("http://10.0.0.3:80", 1)),
        Change::Insert("e".to_owned(), spec("http://10.0.0.5:80", 0)),
        Change::Remove("nope".to_owned()),
        Change::Remove("c".to_owned()),
    ]);
    let a_before = set_state_after(&set, "a", changes).await;
    let snap = set.load();
    let members: Vec<(&str, &str, u32)> = snap
        .members()
        .iter()
        .map(|m| (m.backend().name(), m.backend().url(), m.weight()))
        .collect();
    assert_eq!(
        members,
        [
            ("a", "http://10.0.0.1:80", 7),
            ("b", "http://10.0.0.22:80", 2)
        ]
    );
    assert!(
        Arc::ptr_eq(&a_before, set.get("a").unwrap().backend()),
        "a kept its state"
    );
}

/// Applies `changes` after the first three inserts made "a", and returns "a" as it was then.
async fn set_state_after(
    set: &BackendSet<RoundRobin>,
    name: &str,
    changes: impl futures_util::Stream<Item = Change<String, BackendSpec>>,
) -> Arc<Backend> {
    let mut changes = std::pin::pin!(changes);
    let first: Vec<_> = {
        use futures_util::StreamExt;
        changes.as_mut().take(3).collect().await
    };
    assert_eq!(apply_changes(set, stream::iter(first)).await, 3);
    let before = Arc::clone(set.get(name).unwrap().backend());
    // Six more changes, of which three are refused.
    assert_eq!(apply_changes(set, changes).await, 3);
    before
}

#[tokio::test]
async fn a_refused_replacement_keeps_the_backend_it_would_have_replaced() {
    let set = set_of(RoundRobin::new(), trip_after(5), &["a", "b"]);
    let b_before = Arc::clone(set.get("b").unwrap().backend());
    let changes = stream::iter([
        // "b" moving to "a"'s address, or to an out-of-range weight: both refused.
        Change::Insert("b".to_owned(), BackendSpec::new("b", "http://10.0.0.1:80")),
        Change::Insert(
            "b".to_owned(),
            BackendSpec::new("b", "http://10.0.0.9:80").with_weight(0),
        ),
    ]);
    assert_eq!(apply_changes(&set, changes).await, 0);
    let b = set.get("b").expect("b is still there");
    assert!(Arc::ptr_eq(&b_before, b.backend()), "and kept its state");
    assert_eq!(b.url(), "http://10.0.0.2:80");
}
