//! The runtime state and the fleet: the revision in force, the live replicas, and the store's errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `rrlb_state_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    /// `write` (the store could not keep a change) or `left_out` (a runtime backend the set could not take).
    kind: &'static str,
}

/// The state families.
#[derive(Debug, Default)]
pub(crate) struct StateMetrics {
    revision: Gauge,
    members: Gauge,
    errors: Family<KindLabel, Counter>,
}

impl StateMetrics {
    /// Registers the families in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "rrlb_state_revision",
            "The revision of the runtime state (the admin API's changes) this replica has applied",
            self.revision.clone(),
        );
        registry.register(
            "rrlb_fleet_members",
            "Live replicas sharing the runtime state (1 without a shared store)",
            self.members.clone(),
        );
        registry.register(
            "rrlb_state_errors",
            "Errors of the runtime state, by kind (write: a change the store could not keep; left_out: a \
             runtime backend the set could not take)",
            self.errors.clone(),
        );
    }

    /// The revision applied now.
    pub(crate) fn applied(&self, revision: u64) {
        self.revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// The live replicas now.
    pub(crate) fn set_members(&self, n: usize) {
        self.members.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts an error of `kind`.
    pub(crate) fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }
}
