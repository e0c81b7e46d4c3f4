//! The label sets of rrlb's metric families.

use prometheus_client::encoding::EncodeLabelSet;

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
