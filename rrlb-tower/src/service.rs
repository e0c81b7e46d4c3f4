//! The balancing [`Service`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rrlb_core::{Backend, BackendSet, Balancer, Picker};
use tower::Service;
use tower::retry::budget::{Budget, TpsBudget};

use crate::error::{BoxError, Error};
use crate::future::{ResponseFuture, RetryState};
use crate::policy::{Policy, RetryOn};

/// A request on its way to the backend that was picked for it: what the inner service receives.
#[derive(Debug)]
pub struct Routed<R> {
    /// The picked backend (for an HTTP upstream: where to send the request).
    pub backend: Arc<Backend>,
    /// The request.
    pub request: R,
}

/// Per-attempt timeout and retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceConfig {
    /// Timeout of each attempt (`None`: no timeout). Default 2 s.
    pub timeout: Option<Duration>,
    /// Extra attempts after the first, each on a backend not tried yet. Default 2.
    pub retries: u32,
    /// Which failures are retried. Default: connection failures only.
    pub retry_on: RetryOn,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            timeout: Some(Duration::from_secs(2)),
            retries: 2,
            retry_on: RetryOn::CONNECT_FAILURE,
        }
    }
}

/// Caps retries to a share of requests, so retries cannot multiply the load on an already failing fleet.
///
/// Every request that may be retried (of a [`Balance`] configured with retries) deposits `ratio` of a retry
/// token (kept for 10 s); every retry withdraws one; on top of that
/// `min_per_second` retries per second are always allowed, so that low traffic can still retry. This is
/// tower's [`TpsBudget`], shared by all clones of a [`Balance`].
#[derive(Debug, Clone)]
pub struct RetryBudget(Arc<TpsBudget>);

impl RetryBudget {
    /// Retries at most `ratio` (0.0..=1000.0) of requests plus `min_per_second` per second.
    pub fn new(ratio: f32, min_per_second: u32) -> Self {
        Self(Arc::new(TpsBudget::new(
            Duration::from_secs(10),
            min_per_second,
            ratio.clamp(0.0, 1000.0),
        )))
    }

    pub(crate) fn deposit(&self) {
        self.0.deposit();
    }

    pub(crate) fn withdraw(&self) -> bool {
        self.0.withdraw()
    }
}

impl Default for RetryBudget {
    /// 20 % of requests plus 10 retries per second.
    fn default() -> Self {
        Self::new(0.2, 10)
    }
}

/// Balances requests over a [`BackendSet`], calling the inner service with each request [`Routed`] to the
/// picked backend.
///
/// Picking takes `&self` and the set is shared, so `Balance` is cheap to clone and needs no
/// `tower::buffer::Buffer` in front of it. Each call:
///
/// 1. picks a backend (half-open probes first, then the balancer) or fails with
///    [`Error::is_no_eligible_backend`];
/// 2. calls the inner service under the per-attempt timeout;
/// 3. classifies the result with the [`Policy`] and records it on the backend (statistics, latency histogram,
///    circuit breaker) — or, if the response future is dropped first, records the call as cancelled;
/// 4. on a failure the policy's [`RetryOn`] covers, if the [`RetryBudget`] allows, retries on a backend that
///    was not tried yet.
pub struct Balance<S, B: Balancer, P> {
    pub(crate) inner: S,
    pub(crate) set: BackendSet<B>,
    /// Each clone picks through its own cached snapshot (see [`Picker`]).
    pub(crate) picker: Picker<B>,
    pub(crate) policy: P,
    pub(crate) config: BalanceConfig,
    pub(crate) budget: RetryBudget,
}

impl<S: Clone, B: Balancer, P: Clone> Clone for Balance<S, B, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            set: self.set.clone(),
            picker: self.picker.clone(),
            policy: self.policy.clone(),
            config: self.config,
            budget: self.budget.clone(),
        }
    }
}

impl<S, B: Balancer, P> std::fmt::Debug for Balance<S, B, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balance")
            .field("set", &self.set)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B: Balancer, P> Balance<S, B, P> {
    /// Balances over `set`, calling `inner`, classifying with `policy`.
    pub fn new(inner: S, set: BackendSet<B>, policy: P, config: BalanceConfig) -> Self {
        Self {
            inner,
            picker: set.picker(),
            set,
            policy,
            config,
            budget: RetryBudget::default(),
        }
    }

    /// The same service with another retry budget.
    pub fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The backend set.
    pub fn set(&self) -> &BackendSet<B> {
        &self.set
    }

    /// The timeout and retry settings.
    pub fn config(&self) -> BalanceConfig {
        self.config
    }
}

impl<S, B, P, Req> Service<Req> for Balance<S, B, P>
where
    S: Service<Routed<Req>> + Clone,
    S::Error: Into<BoxError>,
    B: Balancer,
    P: Policy<Req, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, B, P, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::inner(e.into()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // A service that never retries has no use for the budget: skip its lock and clock read.
        let may_retry = self.config.retries > 0 && !self.config.retry_on.is_empty();
        if may_retry {
            self.budget.deposit();
        }
        let call = match self.picker.pick() {
            Ok(call) => call,
            Err(e) => {
                return ResponseFuture::failed(Error::no_eligible(e, 0, None), self.policy.clone());
            }
        };
        let retry = if may_retry {
            self.policy.clone_request(&request).map(|saved| RetryState {
                saved,
                left: self.config.retries,
                retry_on: self.config.retry_on,
                tried: Box::default(),
                inner: self.inner.clone(),
                set: self.set.clone(),
                budget: self.budget.clone(),
            })
        } else {
            None
        };
        let backend = Arc::clone(call.backend());
        let fut = self.inner.call(Routed { backend, request });
        ResponseFuture::new(fut, call, self.config.timeout, self.policy.clone(), retry)
    }
}
