//! Prometheus metrics (`GET /metrics`) and the request counters behind `/admin/metrics`.
//!
//! Per-request counters are updated on the proxy path; the per-backend gauges (health, circuit state, in
//! flight) are read from the backend set at scrape time, so they are never stale.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rrlb_core::{AnyBalancer, BackendSet};

/// Labels of `rrlb_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Backend name, or `none` when no backend answered.
    pub backend: String,
    /// HTTP status code sent to the client.
    pub code: u16,
}

/// A `backend` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// Backend name.
    pub backend: String,
}

/// A `reason` label of `rrlb_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why: `rate_limit`, `body_too_large`, `no_backend`, `bad_request`.
    pub reason: &'static str,
}

fn duration_histogram() -> Histogram {
    // 0.5 ms .. ~33 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// Every metric rrlb exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<BackendLabel, Histogram, fn() -> Histogram>,
    healthy: Family<BackendLabel, Gauge>,
    circuit: Family<BackendLabel, Gauge>,
    in_flight: Family<BackendLabel, Gauge>,
    retries: Counter,
    rejected: Family<ReasonLabel, Counter>,
    total: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<BackendLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let healthy = Family::<BackendLabel, Gauge>::default();
        let circuit = Family::<BackendLabel, Gauge>::default();
        let in_flight = Family::<BackendLabel, Gauge>::default();
        let retries = Counter::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "rrlb_requests",
            "Requests answered, by backend and status code",
            requests.clone(),
        );
        registry.register(
            "rrlb_request_duration_seconds",
            "Time from receiving a request to answering it, by backend",
            durations.clone(),
        );
        registry.register(
            "rrlb_backend_healthy",
            "1 if the backend passes its health checks",
            healthy.clone(),
        );
        registry.register(
            "rrlb_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            circuit.clone(),
        );
        registry.register(
            "rrlb_in_flight",
            "Requests in flight to the backend",
            in_flight.clone(),
        );
        registry.register(
            "rrlb_retries",
            "Attempts retried on another backend",
            retries.clone(),
        );
        registry.register(
            "rrlb_rejected",
            "Requests rejected before reaching a backend, by reason",
            rejected.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            healthy,
            circuit,
            in_flight,
            retries,
            rejected,
            total: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, backend: Option<&str>, code: u16, seconds: f64, retries: u32) {
        self.total.fetch_add(1, Relaxed);
        let backend = backend.unwrap_or("none");
        self.requests
            .get_or_create(&RequestLabels {
                backend: backend.to_owned(),
                code,
            })
            .inc();
        self.durations
            .get_or_create(&BackendLabel {
                backend: backend.to_owned(),
            })
            .observe(seconds);
        if retries > 0 {
            self.retries.inc_by(u64::from(retries));
        }
    }

    /// Counts one rejected request.
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Requests answered on the proxy listener since start.
    pub fn total_requests(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// The Prometheus text exposition, with the per-backend gauges read from `set` now.
    pub fn render(&self, set: &BackendSet<AnyBalancer>) -> String {
        self.healthy.clear();
        self.circuit.clear();
        self.in_flight.clear();
        for m in set.load().members() {
            let label = BackendLabel {
                backend: m.name().to_owned(),
            };
            self.healthy
                .get_or_create(&label)
                .set(i64::from(m.is_healthy()));
            self.circuit
                .get_or_create(&label)
                .set(i64::from(m.circuit().as_metric()));
            self.in_flight
                .get_or_create(&label)
                .set(i64::try_from(m.stats().in_flight()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
