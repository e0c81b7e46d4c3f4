//! Prometheus metrics (`GET /metrics`) and the request counters behind `/admin/metrics`.
//!
//! Per-request counters are updated on the proxy path; the per-backend gauges (health, circuit state, in
//! flight) are read from the backend set at scrape time, so they are never stale.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rrlb_core::{AnyBalancer, BackendSet};
use rrlb_tower::FailureKind;
use rrlb_tower::discovery::{DiscoveryStats, group_of};

/// Labels of `rrlb_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// Backend name, or `none` when no backend answered.
    pub backend: String,
    /// HTTP status code sent to the client.
    pub code: u16,
}

/// A `backend` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabel {
    pub backend: String,
}

/// A `group` label (a discovered group).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabel {
    pub group: String,
}

/// A `reason` label of `rrlb_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    /// Why: `rate_limit`, `body_too_large`, `no_backend`, `bad_request`.
    pub reason: &'static str,
}

/// A `version` label of `rrlb_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VersionLabel {
    pub version: &'static str,
}

/// A `result` label: `success`/`failure` (reloads), `pass`/`fail` (health checks, with a backend).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub result: &'static str,
}

/// A `side` label of `rrlb_connections`: `client` or `upstream`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SideLabel {
    pub side: &'static str,
}

/// Labels of `rrlb_upstream_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamErrorLabels {
    pub backend: String,
    /// `connect`, `timeout`, `reset` or `protocol`.
    pub kind: &'static str,
}

/// Labels of `rrlb_health_checks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HealthCheckLabels {
    pub backend: String,
    /// `pass` or `fail`.
    pub result: &'static str,
}

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

fn duration_histogram() -> Histogram {
    // 0.5 ms .. ~33 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

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
    /// rrlb's own HTTP/1.1 upstream connections, pooled or in use (counted by its pool).
    pub(crate) upstream_connections: Gauge,
    /// The connections of the hyper client that serves `https://` backends (counted by its connector).
    pub(crate) https_connections: rrlb_tower::http::ConnectionCount,
    /// `rrlb_connections{side="upstream"}`: the sum of both, set when rendered.
    upstream_exported: Gauge,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
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

/// Each thread's handles on the per-backend series, so that counting a request neither allocates label
/// strings nor hashes and locks the families' maps: a short list scanned by backend name and code. The
/// series of the families and the handles are the same objects (`prometheus_client` metrics are shared
/// handles), so the exposition sees every count.
#[derive(Default)]
struct Handles {
    owner: u64,
    /// The instance's `generation` these handles were made in.
    generation: u64,
    total: Arc<AtomicU64>,
    /// `rrlb_requests_total` series by backend and status code.
    requests: Vec<((Box<str>, u16), Counter)>,
    /// `rrlb_request_duration_seconds` series by backend (the code slot is unused: 0).
    durations: Vec<((Box<str>, u16), Histogram)>,
    /// `rrlb_upstream_errors_total` series by backend and kind (its slot in `error_kind`).
    errors: Vec<((Box<str>, u16), Counter)>,
}

/// The label values of the per-backend series made for one backend, so that they can be removed when the
/// backend is gone (discovered backends come and go with every rolling update).
#[derive(Debug, Default)]
struct Keys {
    /// `rrlb_requests_total` codes.
    codes: HashSet<u16>,
    /// `rrlb_request_duration_seconds` has a series.
    duration: bool,
    /// `rrlb_upstream_errors_total` kinds.
    kinds: HashSet<&'static str>,
    /// `rrlb_health_checks_total` results.
    checks: HashSet<&'static str>,
}

/// Which per-backend series exist, and which backends were already missing from the set at the last render.
#[derive(Debug, Default)]
struct Series {
    by_backend: HashMap<String, Keys>,
    /// Backends not in the set at the last render: their series are removed at the next one if still gone,
    /// so that a scrape sees each removed backend's final counts once.
    missing: HashSet<String>,
}

/// Beyond this many series a thread's cache starts over (backends come and go; codes are few).
const MAX_HANDLES: usize = 256;

/// The cached handle for (`backend`, `code`), made with `make` on a miss.
fn cached<'a, T>(
    list: &'a mut Vec<((Box<str>, u16), T)>,
    backend: &str,
    code: u16,
    make: impl FnOnce() -> T,
) -> &'a T {
    let found = list
        .iter()
        .position(|((b, c), _)| *c == code && &**b == backend);
    let i = match found {
        Some(i) => i,
        None => {
            if list.len() >= MAX_HANDLES {
                list.clear();
            }
            list.push(((backend.into(), code), make()));
            list.len() - 1
        }
    };
    &list[i].1
}

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::new(Handles::default());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
        let upstream_exported = connections
            .get_or_create(&SideLabel { side: "upstream" })
            .clone();
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let health_checks = Family::<HealthCheckLabels, Counter>::default();
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
            upstream_connections: Gauge::default(),
            https_connections: rrlb_tower::http::ConnectionCount::new(),
            upstream_exported,
            upstream_errors,
            health_checks,
            totals: Mutex::default(),
            series: Mutex::default(),
            generation: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Relaxed),
        }
    }

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

    /// Makes this thread's handle cache this instance's (it serves one instance at a time), and drops its
    /// handles on series that were removed since they were made.
    fn own(&self, h: &mut Handles) {
        let generation = self.generation.load(Relaxed);
        if h.owner != self.id {
            let total = Arc::new(AtomicU64::new(0));
            self.totals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&total));
            *h = Handles {
                owner: self.id,
                generation,
                total,
                ..Handles::default()
            };
        } else if h.generation != generation {
            h.generation = generation;
            h.requests.clear();
            h.durations.clear();
            h.errors.clear();
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the series of backends that were missing from `set` at the last render and still are.
    fn prune(&self, series: &mut Series, set: &BackendSet<AnyBalancer>) {
        let snap = set.load();
        let present: HashSet<&str> = snap.members().iter().map(|m| m.name()).collect();
        let gone: Vec<String> = series
            .by_backend
            .keys()
            .filter(|b| b.as_str() != "none" && !present.contains(b.as_str()))
            .cloned()
            .collect();
        let mut removed = false;
        let mut missing = HashSet::new();
        for backend in gone {
            if !series.missing.contains(&backend) {
                missing.insert(backend);
                continue;
            }
            let Some(keys) = series.by_backend.remove(&backend) else {
                continue;
            };
            for code in keys.codes {
                self.requests.remove(&RequestLabels {
                    backend: backend.clone(),
                    code,
                });
            }
            if keys.duration {
                self.durations.remove(&BackendLabel {
                    backend: backend.clone(),
                });
            }
            for kind in keys.kinds {
                self.upstream_errors.remove(&UpstreamErrorLabels {
                    backend: backend.clone(),
                    kind,
                });
            }
            for result in keys.checks {
                self.health_checks.remove(&HealthCheckLabels {
                    backend: backend.clone(),
                    result,
                });
            }
            removed = true;
        }
        series.missing = missing;
        if removed {
            self.generation.fetch_add(1, Relaxed);
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

    /// The discovered groups whose series `/metrics` shows (replaced on every reload).
    pub(crate) fn set_discovery_groups(&self, groups: Vec<(String, DiscoveryStats)>) {
        *self.groups.lock().unwrap_or_else(PoisonError::into_inner) = groups;
    }

    /// Brings the discovery series up to date: backends counted in `set` now, errors from the groups' counters.
    fn discovery(&self, set: &BackendSet<AnyBalancer>) {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        self.discovery_backends.clear();
        let snap = set.load();
        for (group, stats) in groups.iter() {
            let label = GroupLabel {
                group: group.clone(),
            };
            let count = snap
                .members()
                .iter()
                .filter(|m| !m.is_draining() && group_of(m.name()) == Some(group.as_str()))
                .count();
            self.discovery_backends
                .get_or_create(&label)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
            let errors = self.discovery_errors.get_or_create(&label);
            errors.inc_by(stats.errors().saturating_sub(errors.get()));
        }
    }

    /// The Prometheus text exposition, with the per-backend gauges read from `set` now.
    ///
    /// Series of backends that left the set are removed once a render has shown their final counts.
    pub(crate) fn render(&self, set: &BackendSet<AnyBalancer>) -> String {
        let mut series = self.series();
        self.prune(&mut series, set);
        self.healthy.clear();
        self.circuit.clear();
        self.in_flight.clear();
        self.discovery(set);
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
        self.upstream_exported.set(
            self.upstream_connections
                .get()
                .saturating_add(i64::try_from(self.https_connections.get()).unwrap_or(i64::MAX)),
        );
        // The set counts skips; the counter catches up with it (one set per process, so both only grow).
        let skipped = set.ejections().skipped();
        let exported = self.ejections_skipped.get();
        if skipped > exported {
            self.ejections_skipped.inc_by(skipped - exported);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        drop(series);
        out
    }
}

impl Series {
    /// The keys of `backend` (made on a cache miss or a health check only, never per request).
    fn keys(&mut self, backend: &str) -> &mut Keys {
        self.by_backend.entry(backend.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use rrlb_core::{Algorithm, SetOptions};

    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(series))
    }

    #[test]
    fn each_instance_counts_its_own_requests_through_the_thread_cache() {
        let set = BackendSet::new(
            AnyBalancer::new(Algorithm::RoundRobin),
            SetOptions::default(),
        );
        let a = Metrics::new();
        let b = Metrics::new();
        for _ in 0..3 {
            a.observe(Some("x"), 200, 0.001, 0);
        }
        b.observe(Some("x"), 200, 0.001, 0);
        a.observe(Some("x"), 503, 0.002, 1);
        a.observe(None, 502, 0.002, 0);
        assert_eq!((a.total_requests(), b.total_requests()), (5, 1));
        let (a, b) = (a.render(&set), b.render(&set));
        assert_eq!(
            line(&a, "rrlb_requests_total{backend=\"x\",code=\"200\"}"),
            Some("rrlb_requests_total{backend=\"x\",code=\"200\"} 3")
        );
        assert_eq!(
            line(&a, "rrlb_requests_total{backend=\"x\",code=\"503\"}"),
            Some("rrlb_requests_total{backend=\"x\",code=\"503\"} 1")
        );
        assert_eq!(
            line(&a, "rrlb_requests_total{backend=\"none\",code=\"502\"}"),
            Some("rrlb_requests_total{backend=\"none\",code=\"502\"} 1")
        );
        assert_eq!(
            line(&a, "rrlb_request_duration_seconds_count{backend=\"x\"}"),
            Some("rrlb_request_duration_seconds_count{backend=\"x\"} 4")
        );
        assert_eq!(line(&a, "rrlb_retries_total"), Some("rrlb_retries_total 1"));
        assert_eq!(
            line(&b, "rrlb_requests_total{backend=\"x\",code=\"200\"}"),
            Some("rrlb_requests_total{backend=\"x\",code=\"200\"} 1")
        );
    }

    #[test]
    fn the_thread_cache_starts_over_when_full_without_losing_counts() {
        let set = BackendSet::new(
            AnyBalancer::new(Algorithm::RoundRobin),
            SetOptions::default(),
        );
        // "y" is in the set: its series are kept from render to render.
        set.add(rrlb_core::BackendSpec::new("y", "http://127.0.0.1:1"))
            .ok();
        let m = Metrics::new();
        for round in 0..2 {
            for code in 0..(MAX_HANDLES as u16 + 10) {
                m.observe(Some("y"), 100 + code, 0.001, 0);
            }
            let text = m.render(&set);
            let want = format!(
                "rrlb_requests_total{{backend=\"y\",code=\"100\"}} {}",
                round + 1
            );
            assert_eq!(
                line(&text, "rrlb_requests_total{backend=\"y\",code=\"100\"}"),
                Some(want.as_str())
            );
        }
    }

    #[test]
    fn a_gone_backends_series_are_shown_once_more_then_removed() {
        let set = BackendSet::new(
            AnyBalancer::new(Algorithm::RoundRobin),
            SetOptions::default(),
        );
        set.add(rrlb_core::BackendSpec::new("stays", "http://127.0.0.1:1"))
            .ok();
        let m = Metrics::new();
        for backend in ["stays", "gone"] {
            m.observe(Some(backend), 200, 0.001, 0);
            m.upstream_error(backend, FailureKind::Connect);
            m.health_check(backend, true);
        }
        m.observe(None, 503, 0.001, 0);
        let has = |text: &str, backend: &str| {
            let label = format!("backend=\"{backend}\"");
            [
                "rrlb_requests_total{",
                "rrlb_request_duration_seconds_count{",
                "rrlb_upstream_errors_total{",
                "rrlb_health_checks_total{",
            ]
            .iter()
            .filter(|metric| {
                text.lines()
                    .any(|l| l.starts_with(**metric) && l.contains(&label))
            })
            .count()
        };
        // The first render after "gone" left still shows its final counts.
        let first = m.render(&set);
        assert_eq!((has(&first, "stays"), has(&first, "gone")), (4, 4));
        let second = m.render(&set);
        assert_eq!((has(&second, "stays"), has(&second, "gone")), (4, 0));
        assert_eq!(has(&second, "none"), 2, "the no-backend series stay");
        // A backend of that name that comes back counts from zero, through fresh handles.
        m.observe(Some("gone"), 200, 0.001, 0);
        let third = m.render(&set);
        assert_eq!(
            line(&third, "rrlb_requests_total{backend=\"gone\",code=\"200\"}"),
            Some("rrlb_requests_total{backend=\"gone\",code=\"200\"} 1")
        );
        assert_eq!(
            line(
                &third,
                "rrlb_requests_total{backend=\"stays\",code=\"200\"}"
            ),
            Some("rrlb_requests_total{backend=\"stays\",code=\"200\"} 1")
        );
    }

    /// `rrlb_connections{side="upstream"}` adds the https client's connections (counted by its connector) to
    /// rrlb's own pool's.
    #[tokio::test(flavor = "current_thread")]
    async fn the_upstream_connection_gauge_adds_the_hyper_clients_connections() {
        use http_body_util::Full;
        use rrlb_tower::Routed;
        use rrlb_tower::http::{HttpUpstream, UpstreamConfig};
        use tower::ServiceExt;

        let set = BackendSet::new(
            AnyBalancer::new(Algorithm::RoundRobin),
            SetOptions::default(),
        );
        let m = Metrics::new();
        m.upstream_connections.inc();
        m.upstream_connections.inc();
        let gauge = "rrlb_connections{side=\"upstream\"}";
        assert_eq!(
            line(&m.render(&set), gauge),
            Some("rrlb_connections{side=\"upstream\"} 2")
        );
        let echo = echo_rs::EchoServer::start("127.0.0.1:0", echo_rs::Config::new("e"))
            .await
            .unwrap();
        let backend = rrlb_core::Backend::new(
            "e",
            echo.url(),
            true,
            rrlb_core::BreakerParams::default(),
            rrlb_core::HealthParams::default(),
        );
        let upstream =
            HttpUpstream::new(UpstreamConfig::default()).counting(m.https_connections.clone());
        let request = http::Request::post("/echo")
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap();
        let response = upstream
            .oneshot(Routed {
                backend: backend.into(),
                request,
                attempt: 1,
            })
            .await
            .unwrap();
        assert!(response.status().is_success());
        assert_eq!(
            line(&m.render(&set), gauge),
            Some("rrlb_connections{side=\"upstream\"} 3")
        );
    }

    #[test]
    fn the_total_sums_every_thread() {
        let m = Metrics::new();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..100 {
                        m.observe(Some("z"), 200, 0.001, 0);
                    }
                });
            }
        });
        m.observe(Some("z"), 200, 0.001, 0);
        assert_eq!(m.total_requests(), 301);
    }
}
