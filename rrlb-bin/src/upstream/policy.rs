//! What the balancer counts as a failed attempt on either request path.

use std::sync::Arc;

use rrlb_core::Backend;
use rrlb_tower::{FailureKind, Policy};

use super::{RawError, RawRequest, RawResponse};
use crate::metrics::Metrics;

/// The fast path's policy: as rrlb-tower's `HttpPolicy` (5xx answers and transport errors are failures,
/// requests are copied for retries), the serving backend is noted in the answer, and every failed attempt is
/// counted in `rrlb_upstream_errors_total`.
#[derive(Debug, Clone)]
pub(crate) struct RawPolicy {
    pub(crate) metrics: Arc<Metrics>,
}

impl Policy<RawRequest, RawResponse, RawError> for RawPolicy {
    fn classify_response(&self, response: &RawResponse) -> Option<FailureKind> {
        (500..600)
            .contains(&response.status)
            .then_some(FailureKind::Status5xx)
    }

    fn classify_error(&self, error: &RawError) -> FailureKind {
        error.kind
    }

    fn clone_request(&self, request: &RawRequest) -> Option<RawRequest> {
        Some(request.clone())
    }

    fn on_served(&self, response: &mut RawResponse, backend: &Arc<Backend>, attempts: u32) {
        response.served = Some((Arc::clone(backend), attempts));
    }

    fn on_failure(&self, backend: &Arc<Backend>, kind: FailureKind) {
        self.metrics.upstream_error(backend.name(), kind);
    }
}
