//! Recording: the counts the proxy path, the health checker and reloads add as things happen.

use std::sync::PoisonError;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use rrlb_tower::FailureKind;

use super::Metrics;
use super::cache::{HANDLES, cached};
use super::labels::{
    BackendLabel, HealthCheckLabels, ReasonLabel, RequestLabels, UpstreamErrorLabels,
};

/// The `kind` label of an upstream error, and its slot in a thread's handle cache; `None` for a failure that
/// is an answer (a 5xx), not a transport error.
fn error_kind(kind: FailureKind) -> Option<(&'static str, u16)> {
    match kind {
        FailureKind::Connect => Some(("connect", 0)),
        FailureKind::Timeout => Some(("timeout", 1)),
        FailureKind::Reset => Some(("reset", 2)),
        // rrlb's own upstream reports an answer that broke the HTTP/1.1 rules as `Other`.
        FailureKind::Other => Some(("protocol", 3)),
        FailureKind::Status5xx => None,
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn observe(&self, backend: Option<&str>, code: u16, seconds: f64, retries: u32) {
        let backend = backend.unwrap_or("none");
        HANDLES.with_borrow_mut(|h| {
            self.own(h);
            h.total.fetch_add(1, Relaxed);
            cached(&mut h.requests, backend, code, || {
                let mut series = self.series();
                series.keys(backend).codes.insert(code);
                self.requests.get_or_create_owned(&RequestLabels {
                    backend: backend.to_owned(),
                    code,
                })
            })
            .inc();
            cached(&mut h.durations, backend, 0, || {
                let mut series = self.series();
                series.keys(backend).duration = true;
                self.durations.get_or_create_owned(&BackendLabel {
                    backend: backend.to_owned(),
                })
            })
            .observe(seconds);
        });
        if retries > 0 {
            self.retries.inc_by(u64::from(retries));
        }
    }

    /// Counts one failed attempt to `backend` (5xx answers are not upstream errors and are not counted).
    pub(crate) fn upstream_error(&self, backend: &str, kind: FailureKind) {
        let Some((kind, slot)) = error_kind(kind) else {
            return;
        };
        HANDLES.with_borrow_mut(|h| {
            self.own(h);
            cached(&mut h.errors, backend, slot, || {
                let mut series = self.series();
                series.keys(backend).kinds.insert(kind);
                self.upstream_errors
                    .get_or_create_owned(&UpstreamErrorLabels {
                        backend: backend.to_owned(),
                        kind,
                    })
            })
            .inc();
        });
    }

    /// Counts one completed TLS handshake with `backend` (a new pooled connection, not a request: taken under
    /// the series lock, like a health check).
    pub(crate) fn upstream_tls_handshake(&self, backend: &str) {
        let mut series = self.series();
        series.keys(backend).tls_handshakes = true;
        self.upstream_tls_handshakes
            .get_or_create(&BackendLabel {
                backend: backend.to_owned(),
            })
            .inc();
    }

    /// Counts one health check of `backend`.
    pub(crate) fn health_check(&self, backend: &str, passed: bool) {
        let result = if passed { "pass" } else { "fail" };
        // Under the series lock, so that a render cannot remove the series between its creation and its count.
        let mut series = self.series();
        series.keys(backend).checks.insert(result);
        self.health_checks
            .get_or_create(&HealthCheckLabels {
                backend: backend.to_owned(),
                result,
            })
            .inc();
    }

    /// Counts a configuration reload by its result; a successful one sets the last-success time.
    pub(crate) fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.inc();
            self.config_applied();
        } else {
            self.reloads_failed.inc();
        }
    }

    /// Sets the last-success time to now: at start-up (as Prometheus does for its own) and on a reload.
    pub(crate) fn config_applied(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reload.set(now);
    }

    /// Counts one rejected request.
    pub(crate) fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Requests answered on the proxy listener since start.
    pub(crate) fn total_requests(&self) -> u64 {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|t| t.load(Relaxed))
            .sum()
    }
}
