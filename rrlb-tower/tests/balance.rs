//! The balancing service against `tower-test` mocks, in paused time: timeouts, retries on another
//! backend, the retry budget, cancellation, "no eligible backend", 5xx answers and `Served`.

mod support;

use std::time::Duration;

use rrlb_core::{BackendSet, Balancer, CircuitState, Member, RoundRobin};
use rrlb_tower::{
    Balance, BalanceConfig, BoxError, Error, FailureKind, ResponseFuture, RetryBudget, RetryOn,
    Routed,
};
use support::{Fail, ScriptedPolicy, never_trip, set_of, trip_after};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_test::mock::{self, Handle, Mock, SendResponse};

type Inner = Mock<Routed<&'static str>, u16>;
type Svc<B> = Balance<Inner, B, ScriptedPolicy>;
type Fut<B> = ResponseFuture<Inner, B, ScriptedPolicy, &'static str>;

/// A balance over `set` with a mock inner service and a budget that never runs out.
fn balance<B: Balancer>(
    set: &BackendSet<B>,
    config: BalanceConfig,
) -> (Svc<B>, Handle<Routed<&'static str>, u16>, ScriptedPolicy) {
    let (inner, handle) = mock::pair();
    let policy = ScriptedPolicy::default();
    let svc = Balance::new(inner, set.clone(), policy.clone(), config)
        .with_budget(RetryBudget::new(1000.0, 1000));
    (svc, handle, policy)
}

fn config(retries: u32, retry_on: RetryOn) -> BalanceConfig {
    BalanceConfig {
        timeout: Some(Duration::from_secs(1)),
        retries,
        retry_on,
    }
}

/// Starts one call on a spawned task (the mock's requests can then be answered from the test).
async fn spawn_call<B: Balancer>(
    svc: &mut Svc<B>,
    request: &'static str,
) -> tokio::task::JoinHandle<Result<u16, Error>> {
    let fut: Fut<B> = svc.ready().await.expect("ready").call(request);
    tokio::spawn(fut)
}

/// The next request the mock received: the backend it was routed to, and the responder.
async fn next(handle: &mut Handle<Routed<&'static str>, u16>) -> (String, SendResponse<u16>) {
    let (routed, send) = handle
        .next_request()
        .await
        .expect("a request reaches the mock");
    (routed.backend.name().to_owned(), send)
}

fn fail(send: SendResponse<u16>, kind: FailureKind) {
    send.send_error(Box::new(Fail(kind)) as BoxError);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_never_answers_times_out_and_counts_as_a_failure() {
    let set = set_of(RoundRobin::new(), trip_after(1), &["a", "b"]);
    let (mut svc, mut handle, _) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    let started = Instant::now();
    let task = spawn_call(&mut svc, "hello").await;
    let (backend, _never_answered) = next(&mut handle).await;
    assert_eq!(backend, "a");

    let err = task.await.unwrap().expect_err("the attempt times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.failure_kind(), Some(FailureKind::Timeout));
    assert_eq!(err.backend(), Some("a"));
    assert_eq!(err.attempts(), 1, "timeouts are not retried by default");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "exactly the per-attempt timeout"
    );
    assert!(err.to_string().contains("timed out"), "{err}");

    let a = set.get("a").unwrap();
    let stats = a.stats().snapshot();
    assert_eq!((stats.requests, stats.failures, stats.in_flight), (1, 1, 0));
    assert_eq!(
        a.circuit(),
        CircuitState::Open,
        "the breaker saw the failure"
    );
    assert_eq!(set.get("b").unwrap().stats().snapshot().requests, 0);
    assert!(
        matches!(handle.poll_request(), std::task::Poll::Pending),
        "no second attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_retried_elsewhere_when_asked() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b"]);
    let (mut svc, mut handle, policy) = balance(&set, config(1, RetryOn::TIMEOUT));
    let started = Instant::now();
    let task = spawn_call(&mut svc, "hello").await;
    let (first, _slow) = next(&mut handle).await;
    let (second, send) = next(&mut handle).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!((first.as_str(), second.as_str()), ("a", "b"));
    send.send_response(200);
    assert_eq!(task.await.unwrap().unwrap(), 200);
    assert_eq!(policy.served(), [("b".to_owned(), 2)]);
    // The timed-out attempt is told to the policy (it never reaches `classify_error`).
    assert_eq!(policy.failures(), [("a".to_owned(), FailureKind::Timeout)]);
}

#[tokio::test(start_paused = true)]
async fn a_connect_failure_is_retried_on_each_other_backend_once() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b", "c"]);
    let (mut svc, mut handle, policy) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    let task = spawn_call(&mut svc, "hello").await;
    let mut tried = Vec::new();
    for _ in 0..2 {
        let (backend, send) = next(&mut handle).await;
        tried.push(backend);
        fail(send, FailureKind::Connect);
    }
    let (last, send) = next(&mut handle).await;
    tried.push(last);
    send.send_response(200);

    assert_eq!(task.await.unwrap().unwrap(), 200);
    assert_eq!(tried, ["a", "b", "c"]);
    assert_eq!(policy.served(), [("c".to_owned(), 3)]);
    assert_eq!(
        policy.failures(),
        [
            ("a".to_owned(), FailureKind::Connect),
            ("b".to_owned(), FailureKind::Connect)
        ],
        "every failed attempt, retried ones included"
    );
    for (name, failures, successes) in [("a", 1, 0), ("b", 1, 0), ("c", 0, 1)] {
        let s = set.get(name).unwrap().stats().snapshot();
        assert_eq!(
            (s.failures, s.successes, s.in_flight),
            (failures, successes, 0),
            "{name}"
        );
    }
}

/// Always the first eligible backend: the balancer answers the backend that just failed again,
/// so the retry must come from the exclusion scan.
struct First;

impl Balancer for First {
    type Plan = ();
    fn plan(&self, _eligible: &[Member]) {}
    fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
        (!eligible.is_empty()).then_some(0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_goes_to_the_backend_that_just_failed() {
    let set = set_of(First, never_trip(), &["a", "b", "c"]);
    let (mut svc, mut handle, _) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    let task = spawn_call(&mut svc, "hello").await;
    let (first, send) = next(&mut handle).await;
    fail(send, FailureKind::Connect);
    let (second, send) = next(&mut handle).await;
    fail(send, FailureKind::Connect);
    let (third, send) = next(&mut handle).await;
    send.send_response(204);
    assert_eq!(task.await.unwrap().unwrap(), 204);
    assert_eq!([first, second, third], ["a", "b", "c"]);

    // With random picks as well: over many calls, the retry is never on the first backend.
    let set = set_of(
        rrlb_core::Random::with_seed(7),
        never_trip(),
        &["a", "b", "c", "d"],
    );
    let (mut svc, mut handle, _) = balance(&set, config(1, RetryOn::CONNECT_FAILURE));
    for _ in 0..200 {
        let task = spawn_call(&mut svc, "hello").await;
        let (first, send) = next(&mut handle).await;
        fail(send, FailureKind::Connect);
        let (second, send) = next(&mut handle).await;
        send.send_response(200);
        assert_eq!(task.await.unwrap().unwrap(), 200);
        assert_ne!(first, second);
    }
}

#[tokio::test(start_paused = true)]
async fn kinds_outside_retry_on_are_not_retried() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b", "c"]);
    let (mut svc, mut handle, _) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    for (kind, is_kind) in [
        (FailureKind::Reset, Error::is_reset as fn(&Error) -> bool),
        (FailureKind::Other, |e: &Error| {
            e.failure_kind() == Some(FailureKind::Other)
        }),
        (FailureKind::Timeout, Error::is_timeout),
    ] {
        let task = spawn_call(&mut svc, "hello").await;
        let (backend, send) = next(&mut handle).await;
        fail(send, kind);
        let err = task.await.unwrap().expect_err("not retried");
        assert!(is_kind(&err), "{kind:?}: {err}");
        assert_eq!(err.attempts(), 1);
        assert_eq!(err.backend(), Some(backend.as_str()));
        assert!(
            std::error::Error::source(&err).is_some(),
            "the inner error is kept as the source"
        );
        assert!(
            matches!(handle.poll_request(), std::task::Poll::Pending),
            "{kind:?} retried"
        );
    }
    // Without any retry kind the request is not even copied; a connect failure is returned as is.
    let (mut svc, mut handle, _) = balance(&set, config(2, RetryOn::NONE));
    let task = spawn_call(&mut svc, "hello").await;
    fail(next(&mut handle).await.1, FailureKind::Connect);
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_connect() && err.attempts() == 1, "{err}");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_configured_count() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b", "c", "d"]);
    let (mut svc, mut handle, _) = balance(&set, config(1, RetryOn::CONNECT_FAILURE));
    let task = spawn_call(&mut svc, "hello").await;
    let (first, send) = next(&mut handle).await;
    fail(send, FailureKind::Connect);
    let (second, send) = next(&mut handle).await;
    fail(send, FailureKind::Connect);
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert_eq!(err.attempts(), 2);
    assert_eq!(err.backend(), Some(second.as_str()));
    assert_ne!(first, second);
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
    assert!(matches!(handle.poll_request(), std::task::Poll::Pending));

    // Fewer backends than attempts: each is tried once, then the last error is returned.
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b"]);
    let (mut svc, mut handle, _) = balance(&set, config(5, RetryOn::CONNECT_FAILURE));
    let task = spawn_call(&mut svc, "hello").await;
    fail(next(&mut handle).await.1, FailureKind::Connect);
    fail(next(&mut handle).await.1, FailureKind::Connect);
    let err = task.await.unwrap().unwrap_err();
    assert_eq!((err.is_connect(), err.attempts()), (true, 2), "{err}");
}

/// `calls` calls whose first attempt fails to connect and whose retry (if any) succeeds; returns
/// how many were retried.
async fn retried_of(budget: RetryBudget, calls: usize) -> usize {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b"]);
    let (svc, mut handle, policy) = balance(&set, config(1, RetryOn::CONNECT_FAILURE));
    let mut svc = svc.with_budget(budget);
    let mut retried = 0;
    for _ in 0..calls {
        let mut task = spawn_call(&mut svc, "hello").await;
        fail(next(&mut handle).await.1, FailureKind::Connect);
        // Either the call ends with the connect error, or a retry reaches the mock.
        tokio::select! {
            result = &mut task => {
                assert!(result.unwrap().unwrap_err().is_connect());
            }
            retry = handle.next_request() => {
                retry.expect("a retry").1.send_response(200);
                retried += 1;
                assert_eq!(task.await.unwrap().unwrap(), 200);
            }
        }
    }
    assert_eq!(policy.served().len(), retried);
    retried
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_caps_retries() {
    // No ratio and no reserve: nothing is ever retried.
    assert_eq!(retried_of(RetryBudget::new(0.0, 0), 20).await, 0);
    // A quarter: every request deposits one token, a retry costs four, so every fourth call can
    // retry (time is paused, so nothing expires).
    assert_eq!(retried_of(RetryBudget::new(0.25, 0), 20).await, 5);
    // The reserve alone: 2 per second over the 10 s window is 20 retries.
    assert_eq!(retried_of(RetryBudget::new(0.0, 2), 30).await, 20);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_response_future_counts_as_cancelled() {
    let set = set_of(RoundRobin::new(), trip_after(1), &["a"]);
    let (mut svc, mut handle, _) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));

    // Dropped before it was ever polled.
    let fut = svc.ready().await.unwrap().call("hello");
    assert_eq!(set.get("a").unwrap().stats().in_flight(), 1);
    drop(fut);
    let _ = next(&mut handle).await;

    // Dropped while waiting for the answer.
    let mut fut = Box::pin(svc.ready().await.unwrap().call("hello"));
    let waited = tokio::time::timeout(Duration::from_millis(100), fut.as_mut()).await;
    assert!(waited.is_err(), "still waiting");
    drop(fut);
    let _ = next(&mut handle).await;

    let a = set.get("a").unwrap();
    let s = a.stats().snapshot();
    assert_eq!(
        (
            s.requests,
            s.cancelled,
            s.failures,
            s.successes,
            s.in_flight
        ),
        (2, 2, 0, 0, 0)
    );
    assert_eq!(
        a.circuit(),
        CircuitState::Closed,
        "a cancellation is not a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_half_open_probe_hands_its_permit_back() {
    let mut options = trip_after(1);
    options.breaker.half_open_max_calls = 1;
    let set = set_of(RoundRobin::new(), options, &["a", "b"]);
    set.pick().unwrap().failure(); // "a" opens
    let a = set.get("a").unwrap();
    assert_eq!(a.circuit(), CircuitState::Open);
    a.record_health_check(true); // a passing check: half-open, one probe allowed
    assert_eq!(a.circuit(), CircuitState::HalfOpen);

    let (mut svc, mut handle, _) = balance(&set, config(0, RetryOn::NONE));
    let probe = svc.ready().await.unwrap().call("probe");
    assert_eq!(next(&mut handle).await.0, "a", "the probe goes first");
    let task = spawn_call(&mut svc, "other").await;
    let (backend, send) = next(&mut handle).await;
    assert_eq!(backend, "b", "only one probe at a time");
    send.send_response(200);
    task.await.unwrap().unwrap();

    drop(probe);
    let task = spawn_call(&mut svc, "probe again").await;
    let (backend, send) = next(&mut handle).await;
    assert_eq!(backend, "a", "the permit came back");
    send.send_response(200);
    task.await.unwrap().unwrap();
    assert_eq!(a.circuit(), CircuitState::Closed, "the probe succeeded");
}

#[tokio::test(start_paused = true)]
async fn no_eligible_backend_is_a_typed_error() {
    let set = set_of(RoundRobin::new(), trip_after(1), &["a", "b"]);
    let (mut svc, mut handle, _) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    for name in ["a", "b"] {
        set.get(name).unwrap().set_healthy(false);
    }
    let err = svc.ready().await.unwrap().call("hello").await.unwrap_err();
    assert!(err.is_no_eligible_backend(), "{err}");
    assert_eq!(
        (err.attempts(), err.backend(), err.failure_kind()),
        (0, None, None)
    );
    assert_eq!(err.retry_at(), None, "no breaker is open");
    assert!(
        matches!(handle.poll_request(), std::task::Poll::Pending),
        "nothing was sent"
    );

    // Ejected by their breakers instead: the error says when the first may come back.
    for name in ["a", "b"] {
        set.get(name).unwrap().set_healthy(true);
    }
    let task = spawn_call(&mut svc, "hello").await;
    fail(next(&mut handle).await.1, FailureKind::Connect);
    fail(next(&mut handle).await.1, FailureKind::Connect);
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_connect() && err.attempts() == 2, "{err}");
    let err = svc.ready().await.unwrap().call("hello").await.unwrap_err();
    assert!(err.is_no_eligible_backend(), "{err}");
    let first_open = set.get("a").unwrap().breaker().open_until();
    assert_eq!(err.retry_at(), first_open);

    // An empty set says so.
    let empty = set_of(RoundRobin::new(), never_trip(), &[]);
    let (mut svc, _handle, _) = balance(&empty, config(2, RetryOn::CONNECT_FAILURE));
    let err = svc.ready().await.unwrap().call("hello").await.unwrap_err();
    assert!(err.is_no_eligible_backend());
    assert_eq!(err.to_string(), "no backend is configured");
}

#[tokio::test(start_paused = true)]
async fn a_5xx_answer_is_retried_when_asked_and_else_returned_as_a_recorded_failure() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b"]);
    let retry_5xx = RetryOn::CONNECT_FAILURE | RetryOn::STATUS_5XX;

    // Retried, and the retry succeeds.
    let (mut svc, mut handle, policy) = balance(&set, config(1, retry_5xx));
    let task = spawn_call(&mut svc, "hello").await;
    let (first, send) = next(&mut handle).await;
    send.send_response(503);
    let (second, send) = next(&mut handle).await;
    send.send_response(200);
    assert_eq!(task.await.unwrap().unwrap(), 200);
    assert_eq!((first.as_str(), second.as_str()), ("a", "b"));
    assert_eq!(policy.served(), [("b".to_owned(), 2)]);

    // Retries exhausted: the last 5xx answer is returned, and both are recorded as failures.
    let task = spawn_call(&mut svc, "hello").await;
    let (first, send) = next(&mut handle).await;
    send.send_response(502);
    let (second, send) = next(&mut handle).await;
    send.send_response(503);
    assert_eq!(
        task.await.unwrap().unwrap(),
        503,
        "the answer, not an error"
    );
    assert_ne!(first, second);
    assert_eq!(policy.served()[1], (second.clone(), 2));
    for name in ["a", "b"] {
        let s = set.get(name).unwrap().stats().snapshot();
        assert_eq!(s.requests, 2, "{name}");
        assert_eq!(s.in_flight, 0, "{name}");
    }
    let failures: u64 = ["a", "b"]
        .iter()
        .map(|n| set.get(n).unwrap().stats().snapshot().failures)
        .sum();
    assert_eq!(failures, 3, "503, 502 and 503");

    // Not asked to retry 5xx: returned at once, still a failure.
    let (mut svc, mut handle, policy) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    let task = spawn_call(&mut svc, "hello").await;
    let (backend, send) = next(&mut handle).await;
    send.send_response(500);
    assert_eq!(task.await.unwrap().unwrap(), 500);
    assert_eq!(policy.served(), [(backend, 1)]);
    assert!(matches!(handle.poll_request(), std::task::Poll::Pending));
}

#[tokio::test(start_paused = true)]
async fn served_names_the_answering_backend_and_the_attempts() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a", "b", "c"]);
    let (mut svc, mut handle, policy) = balance(&set, config(2, RetryOn::CONNECT_FAILURE));
    for _ in 0..3 {
        let task = spawn_call(&mut svc, "hello").await;
        let (_, send) = next(&mut handle).await;
        send.send_response(200);
        task.await.unwrap().unwrap();
    }
    let task = spawn_call(&mut svc, "hello").await;
    fail(next(&mut handle).await.1, FailureKind::Connect);
    next(&mut handle).await.1.send_response(200);
    task.await.unwrap().unwrap();
    let served = policy.served();
    assert_eq!(
        served,
        [
            ("a".to_owned(), 1),
            ("b".to_owned(), 1),
            ("c".to_owned(), 1),
            ("b".to_owned(), 2)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_service_that_fails_readiness_is_an_error() {
    let set = set_of(RoundRobin::new(), never_trip(), &["a"]);
    let (mut svc, mut handle, _) = balance(&set, config(0, RetryOn::NONE));
    handle.send_error(Box::new(Fail(FailureKind::Other)) as BoxError);
    let err = svc.ready().await.unwrap_err();
    assert_eq!(err.failure_kind(), Some(FailureKind::Other));
    assert_eq!(err.backend(), None);
    assert_eq!(set.get("a").unwrap().stats().snapshot().requests, 0);
}
