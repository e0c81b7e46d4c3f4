//! The guard that tracks one call from pick to outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Timestamp};

/// How a call ended.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, Outcome, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081")],
/// )?;
/// let status = 503;
/// set.pick()?.finish(if status >= 500 { Outcome::Failure } else { Outcome::Success });
/// assert_eq!(set.get("a").ok_or("a is in the set")?.stats().snapshot().failures, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend answered acceptably.
    Success,
    /// The call failed (transport error, timeout, or an answer the classifier counts as a failure).
    Failure,
}

/// One call to a picked backend, counted in flight until it is finished.
///
/// Give it an outcome with [`success`](Call::success), [`failure`](Call::failure), [`finish`](Call::finish) or,
/// keeping the guard, [`complete`](Call::complete): that records the latency in the backend's statistics and
/// feeds its circuit breaker (which may eject the backend). A call dropped without an outcome (the client went
/// away, a timeout elsewhere cancelled it) counts as cancelled: it leaves the in-flight count but is neither a
/// success nor a failure, and if it was a half-open probe its permit is handed back.
///
/// Latency is measured with a TSC-based clock (`quanta`, ~10 ns a read where `Instant::now()` costs ~25 ns on
/// a VM); the wall-clock `Instant` the breaker needs is read only when the outcome changes the breaker's state.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rrlb_core::{BackendSet, BackendSpec, Outcome, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081")],
/// )?;
/// let call = set.pick()?;
/// assert!(!call.is_probe());
/// call.finish_with_latency(Outcome::Success, Duration::from_millis(12), Instant::now());
///
/// // A call dropped without an outcome is counted as cancelled, not as a failure.
/// drop(set.pick()?);
/// let stats = set.get("a").ok_or("a is in the set")?.stats().snapshot();
/// assert_eq!((stats.successes, stats.failures, stats.cancelled), (1, 0, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a call counts as in flight until it is finished or dropped"]
pub struct Call {
    backend: Arc<Backend>,
    started: quanta::Instant,
    probe: bool,
    finished: bool,
}

impl Call {
    pub(crate) fn start(backend: Arc<Backend>, probe: bool) -> Self {
        backend.stats().start();
        Self {
            backend,
            started: quanta::Instant::now(),
            probe,
            finished: false,
        }
    }

    /// The picked backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether an outcome was recorded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Finishes the call as a success, now.
    pub fn success(self) {
        self.finish(Outcome::Success);
    }

    /// Finishes the call as a failure, now.
    pub fn failure(self) {
        self.finish(Outcome::Failure);
    }

    /// Finishes the call, now.
    pub fn finish(mut self, outcome: Outcome) {
        self.complete(outcome);
    }

    /// Records the outcome now but keeps the guard (and its backend) for the caller; dropping it afterwards
    /// changes nothing. A second outcome is ignored.
    pub fn complete(&mut self, outcome: Outcome) {
        let end = quanta::Instant::now();
        let latency = end.saturating_duration_since(self.started);
        self.record(outcome, latency, Timestamp::from_quanta(end), Instant::now);
    }

    /// Finishes the call with `now` as the time the breaker sees (for tests that step through time); the
    /// latency is still measured from the start of the call.
    pub fn finish_at(mut self, outcome: Outcome, now: Instant) {
        let latency = self.started.elapsed();
        self.record(outcome, latency, Timestamp::from_instant(now), || now);
    }

    /// Finishes the call with an explicitly measured latency, at `now` (the breaker's time and the end of the
    /// call for the latency estimate: a simulation in virtual time passes both).
    pub fn finish_with_latency(mut self, outcome: Outcome, latency: Duration, now: Instant) {
        self.record(outcome, latency, Timestamp::from_instant(now), || now);
    }

    fn record(
        &mut self,
        outcome: Outcome,
        latency: Duration,
        end: Timestamp,
        now: impl FnOnce() -> Instant,
    ) {
        if self.finished {
            return;
        }
        self.finished = true;
        let success = outcome == Outcome::Success;
        self.backend.stats().finish(success, latency, end);
        if self
            .backend
            .breaker()
            .record_with(success, latency, self.probe, now)
            .is_some()
        {
            self.backend.notify_owner();
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.backend.stats().cancel();
            if self.probe {
                self.backend.breaker().release_probe();
            }
        }
    }
}
