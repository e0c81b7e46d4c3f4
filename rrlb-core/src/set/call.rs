//! The guard that tracks one call from pick to outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Backend;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend answered acceptably.
    Success,
    /// The call failed (transport error, timeout, or an answer the classifier counts as a failure).
    Failure,
}

/// One call to a picked backend, counted in flight until it is finished.
///
/// Give it an outcome with [`success`](Call::success), [`failure`](Call::failure) or [`finish`](Call::finish):
/// that records the latency in the backend's statistics and feeds its circuit breaker (which may eject the
/// backend). A call dropped without an outcome (the client went away, a timeout elsewhere cancelled it) counts
/// as cancelled: it leaves the in-flight count but is neither a success nor a failure, and if it was a
/// half-open probe its permit is handed back.
#[derive(Debug)]
#[must_use = "a call counts as in flight until it is finished or dropped"]
pub struct Call {
    backend: Arc<Backend>,
    started: Instant,
    probe: bool,
    finished: bool,
}

impl Call {
    pub(crate) fn start(backend: Arc<Backend>, probe: bool) -> Self {
        backend.stats().start();
        Self {
            backend,
            started: Instant::now(),
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

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
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
    pub fn finish(self, outcome: Outcome) {
        self.finish_at(outcome, Instant::now());
    }

    /// Finishes the call at `now` (for tests and callers that already read the clock).
    pub fn finish_at(self, outcome: Outcome, now: Instant) {
        let latency = now.saturating_duration_since(self.started);
        self.finish_with_latency(outcome, latency, now);
    }

    /// Finishes the call with an explicitly measured latency.
    pub fn finish_with_latency(mut self, outcome: Outcome, latency: Duration, now: Instant) {
        self.finished = true;
        let success = outcome == Outcome::Success;
        self.backend.stats().finish(success, latency);
        if self
            .backend
            .breaker()
            .record(success, latency, self.probe, now)
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
