//! Which per-backend series exist, so that those of a backend gone from the set can be removed.

use std::collections::{HashMap, HashSet};
use std::sync::PoisonError;
use std::sync::atomic::Ordering::Relaxed;

use rrlb_core::{AnyBalancer, BackendSet};

use super::Metrics;
use super::labels::{BackendLabel, HealthCheckLabels, RequestLabels, UpstreamErrorLabels};

/// The label values of the per-backend series made for one backend, so that they can be removed when the
/// backend is gone (discovered backends come and go with every rolling update).
#[derive(Debug, Default)]
pub(super) struct Keys {
    /// `rrlb_requests_total` codes.
    pub(super) codes: HashSet<u16>,
    /// `rrlb_request_duration_seconds` has a series.
    pub(super) duration: bool,
    /// `rrlb_upstream_errors_total` kinds.
    pub(super) kinds: HashSet<&'static str>,
    /// `rrlb_health_checks_total` results.
    pub(super) checks: HashSet<&'static str>,
    /// `rrlb_upstream_tls_handshakes_total` has a series.
    pub(super) tls_handshakes: bool,
}

/// Which per-backend series exist, and which backends were already missing from the set at the last render.
#[derive(Debug, Default)]
pub(super) struct Series {
    by_backend: HashMap<String, Keys>,
    /// Backends not in the set at the last render: their series are removed at the next one if still gone,
    /// so that a scrape sees each removed backend's final counts once.
    missing: HashSet<String>,
}

impl Series {
    /// The keys of `backend` (made on a cache miss or a health check only, never per request).
    pub(super) fn keys(&mut self, backend: &str) -> &mut Keys {
        self.by_backend.entry(backend.to_owned()).or_default()
    }
}

impl Metrics {
    pub(super) fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the series of backends that were missing from `set` at the last render and still are.
    pub(super) fn prune(&self, series: &mut Series, set: &BackendSet<AnyBalancer>) {
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
            if keys.tls_handshakes {
                self.upstream_tls_handshakes.remove(&BackendLabel {
                    backend: backend.clone(),
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
}
