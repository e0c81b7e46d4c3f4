//! Prometheus metrics (`GET /metrics`) and the request counters behind `/admin/metrics`.
//!
//! Per-request counters are updated on the proxy path; the per-backend gauges (health, circuit state, in
//! flight) are read from the backend set at scrape time, so they are never stale.
//!
//! The families are registered in `registry.rs`, counted in `record.rs` (through each thread's handle cache,
//! `cache.rs`), tracked per backend in `series.rs` so that a gone backend's series can be removed, and exposed
//! by `render.rs`; `labels.rs` holds their label sets.

mod cache;
mod labels;
mod record;
mod registry;
mod render;
mod series;
mod state;
#[cfg(test)]
mod tests;
mod tls;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rrlb_tower::discovery::DiscoveryStats;

use self::labels::{
    BackendLabel, GroupLabel, HealthCheckLabels, ReasonLabel, RequestLabels, UpstreamErrorLabels,
};
use self::series::Series;

/// Every metric rrlb exports.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<BackendLabel, Histogram, fn() -> Histogram>,
    healthy: Family<BackendLabel, Gauge>,
    circuit: Family<BackendLabel, Gauge>,
    in_flight: Family<BackendLabel, Gauge>,
    retries: Counter,
    rejected: Family<ReasonLabel, Counter>,
    /// Access log lines dropped because its writer could not keep up.
    pub(crate) access_log_dropped: Counter,
    /// Dashboard event streams (`GET /admin/events`) open on the admin listener.
    pub(crate) event_streams: Gauge,
    /// Breaker openings refused by `circuit_breaker.max_ejection_percent` (mirrors the set's count).
    ejections_skipped: Counter,
    discovery_backends: Family<GroupLabel, Gauge>,
    discovery_errors: Family<GroupLabel, Counter>,
    /// The discovered groups and their counters, read at scrape time.
    groups: Mutex<Vec<(String, DiscoveryStats)>>,
    reloads_ok: Counter,
    reloads_failed: Counter,
    last_reload: Gauge<f64, AtomicU64>,
    /// Open client connections on the proxy listener (`rrlb_connections{side="client"}`).
    pub(crate) client_connections: Gauge,
    /// rrlb's own HTTP/1.1 upstream connections, plain and TLS, pooled or in use (counted by its pool);
    /// `rrlb_connections{side="upstream"}`.
    pub(crate) upstream_connections: Gauge,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// The proxy listener's TLS handshakes and certificates.
    pub(crate) tls: tls::TlsMetrics,
    /// The runtime state's revision, the fleet's size and the store's errors.
    pub(crate) state: state::StateMetrics,
    /// `rrlb_upstream_tls_handshakes_total{backend}`: completed TLS handshakes with `https://` backends.
    upstream_tls_handshakes: Family<BackendLabel, Counter>,
    health_checks: Family<HealthCheckLabels, Counter>,
    /// One count per thread that answered requests (each written by its thread only), summed when read.
    totals: Mutex<Vec<Arc<AtomicU64>>>,
    /// The per-backend series made so far; held for a whole render, so renders never interleave.
    series: Mutex<Series>,
    /// Bumped when series of gone backends are removed: each thread then drops its cached handles.
    generation: AtomicU64,
    /// Tells this instance's handles apart in the per-thread cache (tests run several in one process).
    id: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("total", &self.total_requests())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
