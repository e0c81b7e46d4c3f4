//! Rendering `GET /metrics`: the gauges read from the backend set at scrape time, the discovery series, and
//! the text exposition.

use std::sync::PoisonError;

use prometheus_client::encoding::text::encode;
use rrlb_core::{AnyBalancer, BackendSet};
use rrlb_tower::discovery::{DiscoveryStats, group_of};

use super::Metrics;
use super::labels::{BackendLabel, GroupLabel};

impl Metrics {
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
