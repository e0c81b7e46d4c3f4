//! The registry: every family rrlb exports, registered with its name and help text.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Metrics;
use super::cache::NEXT_ID;
use super::labels::{
    BackendLabel, GroupLabel, HealthCheckLabels, ReasonLabel, RequestLabels, ResultLabel,
    SideLabel, UpstreamErrorLabels, VersionLabel,
};

fn duration_histogram() -> Histogram {
    // 0.5 ms .. ~33 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

impl Metrics {
    /// Registers every metric.
    pub(crate) fn new() -> Self {
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
        let access_log_dropped = Counter::default();
        let event_streams = Gauge::default();
        let ejections_skipped = Counter::default();
        let discovery_backends = Family::<GroupLabel, Gauge>::default();
        let discovery_errors = Family::<GroupLabel, Counter>::default();
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let reloads = Family::<ResultLabel, Counter>::default();
        // Both series exist from the start, so that `increase(...{result="failure"}[5m])` sees the first one.
        let reloads_ok = reloads
            .get_or_create(&ResultLabel { result: "success" })
            .clone();
        let reloads_failed = reloads
            .get_or_create(&ResultLabel { result: "failure" })
            .clone();
        let last_reload = Gauge::<f64, AtomicU64>::default();
        let connections = Family::<SideLabel, Gauge>::default();
        let client_connections = connections
            .get_or_create(&SideLabel { side: "client" })
            .clone();
        let upstream_connections = connections
            .get_or_create(&SideLabel { side: "upstream" })
            .clone();
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let upstream_tls_handshakes = Family::<BackendLabel, Counter>::default();
        let health_checks = Family::<HealthCheckLabels, Counter>::default();
        let tls = super::tls::TlsMetrics::default();
        tls.register(&mut registry);
        let state = super::state::StateMetrics::default();
        state.register(&mut registry);
        registry.register(
            "rrlb_build_info",
            "Always 1; the version of the running rrlb in its label",
            build_info,
        );
        registry.register(
            "rrlb_config_reloads",
            "Configuration reloads (SIGHUP, file change, admin API), by result",
            reloads,
        );
        registry.register(
            "rrlb_config_last_reload_success_timestamp_seconds",
            "When the configuration in force was applied (start-up or the last successful reload), Unix time",
            last_reload.clone(),
        );
        registry.register(
            "rrlb_connections",
            "Open connections: client (on the proxy listener) and upstream (to backends, pooled or in use)",
            connections,
        );
        registry.register(
            "rrlb_upstream_errors",
            "Failed attempts to backends, by backend and kind (connect, timeout, reset, protocol)",
            upstream_errors.clone(),
        );
        registry.register(
            "rrlb_upstream_tls_handshakes",
            "Completed TLS handshakes with https:// backends, by backend (pooled connections are reused: under \
             steady load the rate falls to about 0)",
            upstream_tls_handshakes.clone(),
        );
        registry.register(
            "rrlb_health_checks",
            "Active health checks, by backend and result (pass, fail)",
            health_checks.clone(),
        );
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
        registry.register(
            "rrlb_access_log_dropped",
            "Access log lines dropped because the log's writer could not keep up",
            access_log_dropped.clone(),
        );
        registry.register(
            "rrlb_admin_event_streams",
            "Dashboard event streams (GET /admin/events) open on the admin listener",
            event_streams.clone(),
        );
        registry.register(
            "rrlb_ejections_skipped",
            "Breaker openings refused because circuit_breaker.max_ejection_percent of the backends were ejected",
            ejections_skipped.clone(),
        );
        registry.register(
            "rrlb_discovery_backends",
            "Backends of a discovered group that take new requests (not draining)",
            discovery_backends.clone(),
        );
        registry.register(
            "rrlb_discovery_errors",
            "Failed lookups, timeouts and empty answers of a discovered group (its last good addresses stay)",
            discovery_errors.clone(),
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
            access_log_dropped,
            event_streams,
            ejections_skipped,
            discovery_backends,
            discovery_errors,
            groups: Mutex::default(),
            reloads_ok,
            reloads_failed,
            last_reload,
            client_connections,
            upstream_connections,
            upstream_errors,
            tls,
            state,
            upstream_tls_handshakes,
            health_checks,
            totals: Mutex::default(),
            series: Mutex::default(),
            generation: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Relaxed),
        }
    }
}
